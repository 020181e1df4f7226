"""`quantshift strategy new|check` and `quantshift replay`: the user's own strategy, from a scaffold to a
verdict against production on recorded market data, before it reaches any host.

A TARGET (what `check` and `replay` judge) is a release: its wheelhouse archive (build/wheelhouse-*.tar),
or its manifest (the wheelhouse is built from it first, as a deploy would). Each release runs in its
own venv built from its own wheelhouse (quantshift/releasevenv.py), in its own process: the code the
hosts would run, the production release's own sizing included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from quantshift_bot.errors import EXIT_INCONCLUSIVE, EXIT_NO, EXIT_OK, InputError, UserError, existing_file, state_file, text

ROOT = Path(__file__).resolve().parent.parent
RELEASES = ROOT / "build" / "releases"  # <release>.tar -> the wheelhouse it was deployed from (the replay baseline)
EXIT = {"pass": EXIT_OK, "marginal": EXIT_OK, "fail": EXIT_NO, "inconclusive": EXIT_INCONCLUSIVE}


def release_label(target: Path) -> str:
    """What to call a release in the output: its manifest's id, its id under build/releases, or the file."""
    if target.suffix in (".yml", ".yaml"):
        from quantshift import manifest

        return manifest.load(target).release
    return target.stem if target.parent.resolve() == RELEASES.resolve() else target.name


def wheelhouse_of(target: Path) -> Path:
    """The wheelhouse archive of a release given as an archive or as a manifest (built from it)."""
    if target.suffix == ".tar":
        return target
    if target.suffix not in (".yml", ".yaml"):
        raise InputError(f"{target}: give a release's wheelhouse archive (.tar) or its manifest (.yml)")
    from dataclasses import asdict

    from quantshift import manifest

    spec = manifest.load(target).strategy
    done = subprocess.run(
        [str(ROOT / "scripts" / "build-wheelhouse.sh")],
        env={**os.environ, "QUANTSHIFT_STRATEGY": json.dumps(asdict(spec))},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip() or "no output").splitlines()[-1]
        raise InputError(f"{target}: its wheelhouse does not build: {last.removeprefix('build-wheelhouse: ')}")
    return Path(done.stdout.split()[-1])


def check(archive: Path) -> dict[str, Any]:
    """The release's strategy loaded and checked against the contract in the release's own venv; a pass is
    kept beside that venv (the archive's content names it), so the next stage's deploy and the replay gate
    right after the check do not load it again."""
    from quantshift import releasevenv

    venv = releasevenv.ensure(archive)
    passed = venv.home / ".strategy-check.json"
    try:
        kept: dict[str, Any] = json.loads(passed.read_text())
        return kept
    except (OSError, ValueError):
        pass
    done = subprocess.run([str(venv.python), "-m", "quantshift_bot", "strategy", "--json"], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise InputError(f"the release in {archive.name} is refused: {last.removeprefix('bot: ').removeprefix('quantshift: ')}")
    found: dict[str, Any] = json.loads(done.stdout)
    passed.write_text(done.stdout)
    return found


def _check(args: argparse.Namespace) -> int:
    found = check(wheelhouse_of(args.target))
    if args.json:
        print(json.dumps(found))
    else:
        print(
            f"strategy {found['name']} ({found.get('distribution', '?')} {found.get('version', '?')}): the contract holds "
            f"(warmup {found['warmup']} bars, parameters {json.dumps(found['params'])})"
        )
    return EXIT_OK


def _new(args: argparse.Namespace) -> int:
    from quantshift import scaffold

    made = scaffold.new(args.name, args.dir)
    print(f"created {made}: test it with `python -m pytest {made}`; name it in a release manifest (a path relative to the manifest) as")
    print(f"  strategy: {{name: {args.name}, package: {made}}}")
    return EXIT_OK


# --- replay -----------------------------------------------------------------------------------------
def production_release(records: list[Any]) -> str | None:
    """The release production runs, from the audit history: the last one deployed or promoted to
    production, minus those rolled back since (a rollback returns to the one before)."""
    running: list[str] = []
    for r in sorted((r for r in records if r.stage == "production"), key=lambda r: r.when):
        if r.kind in ("deploy", "promotion") and r.outcome == "ok":
            if running and running[-1] == r.release:
                continue
            running.append(r.release)
        elif r.kind == "rollback" and r.outcome == "ok" and running and running[-1] == r.release:
            running.pop()
    return running[-1] if running else None


def bars_from_redis(url: str, out: Path) -> dict[str, Path]:
    """The bars the bots recorded (bot/quantshift_bot/marketdata.py), one CSV per market: {market: file}."""
    import redis

    from quantshift_bot import marketdata

    try:
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10)
        found = marketdata.export(client, out)
    except redis.RedisError as err:
        raise UserError(f"cannot read the recorded bars from Redis: {err.__class__.__name__}: {err}") from None
    return found


def replay_side(archive: Path, bars: Path, market: str, out: Path) -> dict[str, Any]:
    from quantshift import releasevenv

    venv = releasevenv.ensure(archive)
    argv = [str(venv.python), "-m", "quantshift_bot", "replay", "--bars", str(bars), "--market", market, "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        last = (done.stderr.strip() or "no output").splitlines()[-1]
        if "invalid choice: 'replay'" in done.stderr:
            last = "its bot has no replay (built before replay existed)"
        raise UserError(f"replay of {archive.name} failed: {last}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def replay(
    candidate: Path, production: Path, bars: dict[str, Path], args: argparse.Namespace, labels: tuple[str, str]
) -> tuple[str, str, list[dict[str, Any]]]:
    """Both releases over the same bars, each market in turn; the worst verdict over the markets."""
    from concurrent.futures import ThreadPoolExecutor

    from quantshift import releasevenv
    from quantshift_bot import compare, report

    with ThreadPoolExecutor(2) as pool:  # the two venvs build at once the first time
        list(pool.map(releasevenv.ensure, (candidate, production)))
    order = ["pass", "marginal", "inconclusive", "fail"]
    worst, reasons, details = "pass", [], []
    for market, csv in sorted(bars.items()):
        with tempfile.TemporaryDirectory() as tmp:
            began = time.monotonic()
            with ThreadPoolExecutor(2) as pool:
                sides = list(
                    pool.map(
                        lambda a, c=csv, m=market: replay_side(a[0], c, m, Path(tmp) / a[1]),
                        ((candidate, "c.json"), (production, "p.json")),
                    )
                )
            took = time.monotonic() - began
        cand, prod = sides
        cand["release"], prod["release"] = labels
        settings = compare.Settings(market=market, min_trades=args.min_trades, min_intervals=args.min_intervals)
        result = compare.compare(cand["trades"], prod["trades"], settings, cand["orders"], prod["orders"])
        verdict = result.verdict
        if order.index(verdict.result) > order.index(worst):
            worst = verdict.result
        reasons.append(f"{market}: {verdict.result}: {verdict.reason.replace('shadow', 'candidate')}")
        details.append(
            {
                "market": market,
                "bars": cand["bars"],
                "symbols": cand["symbols"],
                "seconds": round(took, 2),
                "candidate": {k: cand[k] for k in ("release", "strategy", "seconds", "bars_per_second", "peak_rss_kb")},
                "production": {k: prod[k] for k in ("release", "strategy", "seconds", "bars_per_second", "peak_rss_kb")},
                "comparison": result.as_dict(),
            }
        )
        if not args.json:
            print(
                f"== {market}: {cand['bars']:,} bars of {', '.join(cand['symbols'])} replayed by both releases in {took:.1f} s "
                f"(candidate {cand['release']} {cand['strategy']['name']}: {cand['bars_per_second']:,.0f} bars/s, "
                f"{cand['peak_rss_kb'] / 1024:.0f} MiB; production {prod['release']} {prod['strategy']['name']}: "
                f"{prod['bars_per_second']:,.0f} bars/s, {prod['peak_rss_kb'] / 1024:.0f} MiB)"
            )
            print(compare.render_table(result).replace("shadow", "candidate"))
        if args.html:
            html = args.html if len(bars) == 1 else args.html.with_name(f"{args.html.stem}-{market}{args.html.suffix}")
            try:
                html.parent.mkdir(parents=True, exist_ok=True)
                html.write_text(
                    report.render(result, title=f"Replay ({market}): candidate {cand['release']} versus production {prod['release']}")
                )
            except OSError as err:
                raise UserError(f"cannot write the report {html} ({err.strerror})") from None
            if not args.json:
                print(f"report: {html}")
    return worst, "; ".join(reasons), details


def _replay(args: argparse.Namespace) -> int:
    from quantshift import audit

    if args.production is None:
        release = production_release(audit.read(args.audit_log))
        if release is None or not (RELEASES / f"{release}.tar").exists():
            why = (
                "no release has reached production yet"
                if release is None
                else f"production's release {release} has no wheelhouse on this controller"
            )
            return _outcome(args, "inconclusive", f"nothing to compare with: {why} (give --production)", [])
        production, production_label = (RELEASES / f"{release}.tar").resolve(), release
    else:
        production, production_label = wheelhouse_of(args.production), release_label(args.production)
    candidate = wheelhouse_of(args.candidate)
    check(candidate)  # a candidate that breaks the contract is refused before it is replayed
    with tempfile.TemporaryDirectory() as tmp:
        if args.bars is not None:
            bars = {args.market: args.bars}
        else:
            url = args.redis_url or os.environ.get("QUANTSHIFT_AUDIT_REDIS_URL", "")
            if not url:
                raise InputError("give --bars FILE.csv, or --redis-url (or QUANTSHIFT_AUDIT_REDIS_URL) to replay what the bots recorded")
            bars = bars_from_redis(url, Path(tmp))
            if not bars:
                return _outcome(args, "inconclusive", "the bots have recorded no bars yet", [])
        worst, reason, details = replay(candidate, production, bars, args, (release_label(args.candidate), production_label))
    return _outcome(args, worst, reason, details)


def _outcome(args: argparse.Namespace, result: str, reason: str, details: list[dict[str, Any]]) -> int:
    if args.json:
        print(json.dumps({"verdict": result, "reason": reason, "markets": details}, indent=2))
    else:
        print(f"\nreplay verdict: {result.upper()}: {reason}")
    if result == "fail" and args.override_reason:
        from quantshift import audit

        audit.append(
            audit.Record("override", args.release or "-", "paper", "ok", reason=f"replay ({reason}): {args.override_reason}"),
            args.audit_log,
        )
        print(f"OVERRIDE (replay) recorded in the audit log: {args.override_reason}", file=sys.stderr)
        return EXIT_OK
    return EXIT[result]


def _bars_export(args: argparse.Namespace) -> int:
    url = args.redis_url or os.environ.get("QUANTSHIFT_AUDIT_REDIS_URL", "")
    if not url:
        raise InputError("give --redis-url (or QUANTSHIFT_AUDIT_REDIS_URL): the bots' Redis, where they record their bars")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create {args.out} ({err.strerror})") from None
    found = bars_from_redis(url, args.out)
    if not found:
        print("the bots have recorded no bars yet", file=sys.stderr)
        return EXIT_INCONCLUSIVE
    for market, path in sorted(found.items()):
        rows = sum(1 for _ in path.open()) - 1
        print(f"{market}: {rows:,} bars -> {path}")
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("strategy", help="the user's own strategy packages: scaffold one, check a release's against the contract")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("new", help="scaffold a strategy package with tests that pass")
    a.add_argument("name", help="the strategy's name (its entry point): lowercase letters, digits and _")
    a.add_argument("--dir", type=Path, default=Path.cwd(), help="where to create it (default: here)")
    a.set_defaults(func=_new)
    a = actions.add_parser(
        "check", help="load a release's strategy in the release's own venv and check the contract (exit 2 when it breaks)"
    )
    a.add_argument("target", type=existing_file, help="the release: its wheelhouse archive (.tar) or its manifest (.yml)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=_check)

    p = sub.add_parser("bars", help="the 1-minute bars the bots recorded in their Redis")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("export", help="write them as CSV (t,symbol,o,h,l,c,v), one file per market: for replay or the lab's --prices")
    a.add_argument("--out", type=Path, default=Path("."), help="the directory to write bars-MARKET.csv in (default: here)")
    a.add_argument("--redis-url", help="the bots' Redis (default $QUANTSHIFT_AUDIT_REDIS_URL)")
    a.set_defaults(func=_bars_export)

    p = sub.add_parser(
        "replay",
        help="replay recorded bars through a candidate and production, each in its own venv; verdict (exit 0 pass/marginal, 3 fail, 4 inconclusive)",
    )
    p.add_argument("--candidate", type=existing_file, required=True, help="the candidate release: wheelhouse archive or manifest")
    p.add_argument("--production", type=existing_file, help="the production release (default: what production runs, from the audit log)")
    p.add_argument("--bars", type=existing_file, help="1-minute bars, CSV t,symbol,o,h,l,c,v (default: what the bots recorded in Redis)")
    p.add_argument("--market", choices=("equity", "crypto"), default="equity", help="the market of --bars (default %(default)s)")
    p.add_argument("--redis-url", help="the bots' Redis, for their recorded bars (default $QUANTSHIFT_AUDIT_REDIS_URL)")
    p.add_argument("--min-trades", type=int, default=20, help="trades each side needs for a verdict (default %(default)s)")
    p.add_argument("--min-intervals", type=int, default=10, help="hourly intervals needed for a verdict (default %(default)s)")
    p.add_argument("--html", type=Path, help="write the HTML report here")
    p.add_argument("--release", help="the candidate's release id (for the audit record of an override)")
    p.add_argument("--override-reason", type=text, help="let a failed candidate go on anyway; the reason goes to the audit log")
    p.add_argument("--audit-log", type=state_file, default=None, help="audit log file (default $QUANTSHIFT_AUDIT_LOG)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_replay)
