"""Brokers behind one interface: Alpaca (alpaca-py), Coinbase (coinbase-advanced-py), and an in-process sim."""

from __future__ import annotations

from quantshift_bot.brokers.base import Broker, BrokerError, OrderRejected
from quantshift_bot.config import BotConfig

__all__ = ["Broker", "BrokerError", "OrderRejected", "make"]


def make(cfg: BotConfig) -> Broker:
    """The broker for this config; SDKs are imported only when chosen (they are slow to import)."""
    if cfg.broker == "alpaca":
        from quantshift_bot.brokers.alpaca import AlpacaBroker

        assert cfg.alpaca is not None
        return AlpacaBroker(cfg.alpaca, paper=cfg.mode.value == "paper", timeout_s=cfg.broker_timeout_s)
    if cfg.broker == "coinbase":
        from quantshift_bot.brokers.coinbase import CoinbaseBroker

        assert cfg.coinbase is not None
        return CoinbaseBroker(cfg.coinbase, timeout_s=cfg.broker_timeout_s)
    from quantshift_bot.brokers.sim import SimBroker

    return SimBroker(cfg.symbols)
