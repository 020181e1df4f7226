"""The QuantShift trading bot: one strategy, four modes (paper, shadow, canary, live), state in Redis."""
