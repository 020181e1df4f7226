"""QuantShift: ship improvements to live trading bots without gaps, losses or split brain."""

__version__ = "0.1.0"
