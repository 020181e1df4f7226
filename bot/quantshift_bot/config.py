"""The bot's settings, from the environment (systemd's EnvironmentFile, the release's `.env`).

Every problem is named by its variable and reported before the bot connects anywhere (exit 2).
Secrets are kept out of repr() so they never reach a log line or a traceback.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantshift_bot.errors import UserError
from quantshift_bot.failpoints import POINTS as FAILPOINTS
from quantshift_bot.models import Mode

BROKERS = ("alpaca", "coinbase", "sim")
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9./-]{0,19}$")


class ConfigError(UserError, ValueError):
    """Invalid settings; the message names each bad variable."""


@dataclass(frozen=True)
class AlpacaSettings:
    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    trading_url: str | None  # None: Alpaca's own paper/live endpoint for the mode
    data_url: str | None


@dataclass(frozen=True)
class CoinbaseSettings:
    api_key: str  # the key name (organizations/.../apiKeys/...), not secret by itself
    private_key: str = field(repr=False)  # PEM, EC P-256 or Ed25519
    base_url: str  # host[:port]; the SDK always speaks https
    ca_bundle: str | None  # a CA to trust (the lab's); None: the system store


@dataclass(frozen=True)
class BotConfig:
    name: str
    mode: Mode
    broker: str
    symbols: tuple[str, ...]
    account_id: str
    strategy: str
    strategy_params: dict[str, float]
    max_position: float  # notional per symbol, in the account's currency
    max_exposure: float  # notional over all symbols
    kelly_fraction: float
    canary_fraction: float
    close_on_shutdown: bool
    redis_url: str = field(repr=False)  # may carry the Redis password
    metrics_host: str
    metrics_port: int
    release: str
    slot: str  # the systemd slot (a | b) this process runs in; "" outside the role's units
    tick_seconds: float
    lease_ttl_ms: int
    lease_symbols: tuple[str, ...]  # the slice this bot trades (canary); default all symbols
    bars_lookback: int
    max_retries: int
    broker_timeout_s: float = 10.0  # one broker HTTP call at most; a hung exchange counts as an error, then retried
    reconcile_every: int = 10  # ticks between reconciliations of orders and positions with the broker
    stall_ticks: int = 5  # the loop counts as stalled when no tick completed for this many tick intervals (at least 1 s)
    stop_timeout_s: float = 5.0  # SIGTERM to exit at most this long, even with a stuck loop (then a hard exit)
    failpoints: tuple[str, ...] = ()  # lab chaos tests only: where the bot stops itself (bot.failpoints)
    alpaca: AlpacaSettings | None = None
    coinbase: CoinbaseSettings | None = None

    @property
    def stall_after_s(self) -> float:
        """No tick completed for this long: the loop is stalled (leases handed back, /healthz 503)."""
        return max(1.0, self.stall_ticks * self.tick_seconds)

    @property
    def watchdog_s(self) -> int:
        """systemd's watchdog: a loop with no completed tick for this long is killed. A stall, plus a tick's
        broker calls (about four) each at its timeout with its retries (a slow or hung exchange must not
        get the bot killed: it only loses its leases), plus a tick."""
        calls = BROKER_CALLS_PER_TICK * self.broker_timeout_s * (self.max_retries + 1)
        return math.ceil(self.stall_after_s + calls + self.tick_seconds + 1)

    @property
    def needs_lease(self) -> bool:
        return self.mode is not Mode.SHADOW

    @property
    def size_factor(self) -> float:
        return self.canary_fraction if self.mode is Mode.CANARY else 1.0

    @property
    def state_account(self) -> str:
        """Shadow keeps its would-be book apart from the real one of the same account."""
        return f"{self.account_id}:shadow" if self.mode is Mode.SHADOW else self.account_id

    def public(self) -> dict[str, Any]:
        """The settings that are safe to show (health, logs)."""
        return {
            "name": self.name,
            "mode": self.mode.value,
            "broker": self.broker,
            "symbols": list(self.symbols),
            "account_id": self.account_id,
            "strategy": self.strategy,
            "release": self.release,
            "lease_symbols": list(self.lease_symbols),
            "canary_fraction": self.canary_fraction,
        }


BROKER_CALLS_PER_TICK = 4  # clock, bars, and an order with its lookup: what one tick may wait on at most, roughly


def _installed_release() -> str:
    """The release id written next to the venv the bot runs from (releases/<id>/RELEASE), else `dev`."""
    import sys

    marker = Path(sys.prefix).parent / "RELEASE"
    try:
        return marker.read_text().strip() or "dev"
    except OSError:
        return "dev"


def _release_strategy_doc() -> dict[str, Any]:
    """The release's strategy.json (releases/<id>/wheelhouse/, written when its wheelhouse was built: name,
    params, distribution, version); {} when the bot runs outside a release or the file is unreadable."""
    import sys

    try:
        doc = json.loads((Path(sys.prefix).parent / "wheelhouse" / "strategy.json").read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _release_strategy() -> tuple[str, dict[str, float]]:
    """The strategy and parameters the release names, else the example `ma_cross` with its defaults."""
    from quantshift_bot.strategy import DEFAULT

    doc = _release_strategy_doc()
    try:
        return str(doc["name"]), {str(k): float(v) for k, v in dict(doc.get("params") or {}).items()}
    except (ValueError, KeyError, TypeError):
        return DEFAULT, {}


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile reads them (quotes stripped, # comments)."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{n}: not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value.replace("\\n", "\n")
    return out


class _Reader:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.errors: list[str] = []

    def text(self, key: str, default: str | None = None) -> str:
        value = self.env.get(key, default)
        if value is None or value == "":
            self.errors.append(f"{key} is required")
            return ""
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.text(key, default)
        if value and value not in choices:
            self.errors.append(f"{key}={value!r} must be one of {', '.join(choices)}")
        return value

    def num(self, key: str, default: str, low: float, high: float, integer: bool = False) -> float:
        raw = self.env.get(key) or default
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            self.errors.append(f"{key}={raw!r} must be {'an integer' if integer else 'a number'}")
            return float(low)
        if not low <= value <= high:
            self.errors.append(f"{key}={raw} must be between {low:g} and {high:g}")
        return value

    def flag(self, key: str, default: str) -> bool:
        raw = (self.env.get(key) or default).strip().lower()
        if raw not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            self.errors.append(f"{key}={raw!r} must be true or false")
        return raw in ("1", "true", "yes", "on")

    def symbols(self, key: str, default: str | None = None) -> tuple[str, ...]:
        raw = self.text(key, default)
        items = tuple(s.strip().upper() for s in raw.split(",") if s.strip())
        bad = [s for s in items if not _SYMBOL.match(s)]
        if bad:
            self.errors.append(f"{key}: not symbols: {', '.join(bad)}")
        if len(set(items)) != len(items):
            self.errors.append(f"{key}: a symbol is listed twice")
        return items


def load(environ: dict[str, str] | None = None) -> BotConfig:
    """Read QS_* (and the broker's) variables; raise ConfigError naming every bad one."""
    env = dict(os.environ if environ is None else environ)
    r = _Reader(env)
    mode = r.choice("QS_MODE", tuple(m.value for m in Mode))
    broker = r.choice("QS_BROKER", BROKERS)
    symbols = r.symbols("QS_SYMBOLS")
    lease_symbols = r.symbols("QS_LEASE_SYMBOLS", ",".join(symbols) or None) if env.get("QS_LEASE_SYMBOLS") else symbols
    if set(lease_symbols) - set(symbols):
        r.errors.append(f"QS_LEASE_SYMBOLS: {', '.join(sorted(set(lease_symbols) - set(symbols)))} not in QS_SYMBOLS")
    release_name, release_params = _release_strategy()
    params: dict[str, float] = dict(release_params)
    raw_params = env.get("QS_STRATEGY_PARAMS", "{}")
    try:
        loaded = json.loads(raw_params)
        if not isinstance(loaded, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in loaded.values()):
            raise ValueError
        params.update({str(k): float(v) for k, v in loaded.items()})  # the host's own over the release's
    except ValueError:
        r.errors.append(f"QS_STRATEGY_PARAMS must be a JSON object of numbers, got {raw_params!r}")
    strategy = r.text("QS_STRATEGY", release_name)
    max_position = r.num("QS_MAX_POSITION", "10000", 1, 1e12)
    max_exposure = r.num("QS_MAX_EXPOSURE", "50000", 1, 1e12)
    if max_exposure < max_position:
        r.errors.append("QS_MAX_EXPOSURE must be at least QS_MAX_POSITION")
    lookback = int(r.num("QS_BARS_LOOKBACK", "60", 5, 10000, integer=True))
    if strategy:
        from quantshift_bot import strategy as contract

        try:
            contract.check(contract.load(strategy, params), strategy, lookback)
        except contract.StrategyError as err:
            r.errors.append(f"{'QS_STRATEGY_PARAMS' if isinstance(err, contract.ParamsError) else 'QS_STRATEGY'}: {err}")
    cfg_alpaca = cfg_coinbase = None
    if broker == "alpaca":
        cfg_alpaca = AlpacaSettings(
            api_key=r.text("ALPACA_API_KEY"),
            secret_key=r.text("ALPACA_SECRET_KEY"),
            trading_url=env.get("ALPACA_TRADING_URL") or None,
            data_url=env.get("ALPACA_DATA_URL") or None,
        )
        for key in ("ALPACA_TRADING_URL", "ALPACA_DATA_URL"):
            if env.get(key, "").rstrip("/").endswith("/v2"):
                r.errors.append(f"{key} must not end in /v2 (the SDK adds it)")
    elif broker == "coinbase":
        pem = r.text("COINBASE_API_SECRET").replace("\\n", "\n")
        if pem and "BEGIN" not in pem:
            r.errors.append("COINBASE_API_SECRET must be a PEM private key (EC P-256 or Ed25519)")
        cfg_coinbase = CoinbaseSettings(
            api_key=r.text("COINBASE_API_KEY"),
            private_key=pem,
            base_url=env.get("COINBASE_BASE_URL", "api.coinbase.com"),
            ca_bundle=env.get("COINBASE_CA_BUNDLE") or None,
        )
        if cfg_coinbase.base_url.startswith(("http://", "https://")):
            r.errors.append("COINBASE_BASE_URL is host[:port] only; the SDK always uses https")
        if cfg_coinbase.ca_bundle and not Path(cfg_coinbase.ca_bundle).is_file():
            r.errors.append(f"COINBASE_CA_BUNDLE={cfg_coinbase.ca_bundle} does not exist")
    failpoints = tuple(p.strip() for p in env.get("QS_FAILPOINTS", "").split(",") if p.strip())
    unknown = sorted(set(failpoints) - set(FAILPOINTS))
    if unknown:
        r.errors.append(f"QS_FAILPOINTS: unknown point(s) {', '.join(unknown)}; known: {', '.join(FAILPOINTS)}")
    redis_url = r.text("QS_REDIS_URL", "redis://127.0.0.1:6379/0")
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        r.errors.append("QS_REDIS_URL must start with redis://, rediss:// or unix://")
    cfg = BotConfig(
        name=r.text("QS_BOT_NAME", "equity"),
        mode=Mode(mode) if mode in {m.value for m in Mode} else Mode.SHADOW,
        broker=broker,
        symbols=symbols,
        account_id=r.text("QS_ACCOUNT_ID"),
        strategy=strategy,
        strategy_params=params,
        max_position=max_position,
        max_exposure=max_exposure,
        kelly_fraction=r.num("QS_KELLY_FRACTION", "0.5", 0.01, 1),
        canary_fraction=r.num("QS_CANARY_FRACTION", "0.1", 0.001, 1),
        close_on_shutdown=r.flag("QS_CLOSE_ON_SHUTDOWN", "false"),
        redis_url=redis_url,
        metrics_host=env.get("QS_METRICS_HOST", "127.0.0.1"),
        metrics_port=int(r.num("QS_METRICS_PORT", "9108", 0, 65535, integer=True)),
        release=r.text("QS_RELEASE", _installed_release()),
        slot=env.get("QS_SLOT", ""),
        tick_seconds=r.num("QS_TICK_SECONDS", "1", 0.01, 3600),
        lease_ttl_ms=int(r.num("QS_LEASE_TTL_MS", "3000", 200, 600000, integer=True)),
        lease_symbols=lease_symbols,
        bars_lookback=lookback,
        max_retries=int(r.num("QS_MAX_RETRIES", "3", 0, 10, integer=True)),
        broker_timeout_s=r.num("QS_BROKER_TIMEOUT_S", "10", 0.1, 300),
        reconcile_every=int(r.num("QS_RECONCILE_EVERY", "10", 1, 100000, integer=True)),
        stall_ticks=int(r.num("QS_STALL_TICKS", "5", 2, 1000, integer=True)),
        stop_timeout_s=r.num("QS_STOP_TIMEOUT_S", "5", 0.5, 600),
        failpoints=failpoints,
        alpaca=cfg_alpaca,
        coinbase=cfg_coinbase,
    )
    if r.errors:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  - {e}" for e in r.errors))
    return cfg
