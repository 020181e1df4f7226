"""Exchanges the real SDKs accept: Alpaca-compatible HTTP (`alpaca`), Coinbase-compatible HTTPS
(`coinbase`), over one order book model (`state`) and one market on a controllable clock (`market`);
`python -m lab.exchanges` serves them with the webhook receiver (`server`)."""
