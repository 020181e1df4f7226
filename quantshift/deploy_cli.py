"""`quantshift deploy window|soak|record|history|lock`: the rules the rollout playbooks ask before acting."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from typing import TYPE_CHECKING, Any

from quantshift_bot.errors import (
    EXIT_ERROR,
    EXIT_NO,
    EXIT_OK,
    EXIT_USAGE,
    InputError,
    UserError,
    aware_time,
    command_line,
    epoch_or_time,
    existing_file,
    float_in,
    fraction,
    http_url,
    int_from,
    output_file,
    state_file,
    text,
)

if TYPE_CHECKING:
    from quantshift.gate import GateResult


def _now(at: dt.datetime | None) -> dt.datetime:
    return at if at is not None else dt.datetime.now(dt.UTC)


def _release(raw: str) -> str:
    """argparse type: a release id, or '-' for none (the audit records' placeholder)."""
    from quantshift import manifest

    if raw != "-" and not manifest.valid_release(raw):
        raise argparse.ArgumentTypeError(manifest.release_problem(raw))
    return raw


def _minutes(raw: str) -> int:
    """argparse type of the window's margins: whole minutes, 0 to a day."""
    value = int_from(0)(raw)
    if value > 24 * 60:
        raise argparse.ArgumentTypeError(f"must be at most 1440 minutes (a day), got {raw}")
    return value


def _stage_seconds(raw: str) -> tuple[str, float]:
    """argparse type of --duration: STAGE=SECONDS, a stage of the pipeline and a number of seconds >= 0."""
    from quantshift.soak import STAGES

    stage, _, seconds = raw.partition("=")
    try:
        value = float(seconds)
    except ValueError:
        value = math.nan
    if stage not in STAGES or not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"takes STAGE=SECONDS with a stage of {', '.join(STAGES)} and seconds >= 0, got {raw!r}")
    return stage, value


def _json_object(raw: str) -> dict[str, Any]:
    """argparse type of --extra: a JSON object."""
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): {raw!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object {{...}}, got {raw!r}")
    return value


def _override(args: argparse.Namespace, release: str, stage: str, what: str) -> None:
    from quantshift import audit

    audit.append(audit.Record("override", release or "-", stage, "ok", reason=f"{what}: {args.override_reason}"), args.audit_log)
    print(f"OVERRIDE ({what}) recorded in the audit log: {args.override_reason}", file=sys.stderr)


def _window(args: argparse.Namespace) -> int:
    from quantshift import window

    rules = window.WindowRules(
        after_close_minutes=args.after_close, before_open_minutes=args.before_open, crypto_weekends_only=not args.crypto_any_day
    )
    decision = window.check(_now(args.at), args.market, rules)
    print(
        json.dumps({"allowed": decision.allowed, "reason": decision.reason})
        if args.json
        else f"{'inside' if decision.allowed else 'OUTSIDE'} the deployment window: {decision.reason}"
    )
    if not decision.allowed and args.override_reason:
        _override(args, args.release or "", "production", f"window ({decision.reason})")
        return EXIT_OK
    return EXIT_OK if decision.allowed else EXIT_NO


def _soak(args: argparse.Namespace) -> int:
    from quantshift import audit, soak

    durations = {f"{args.risk}.{stage}": seconds for stage, seconds in args.duration or []}
    if durations:
        print(f"soak durations shortened: {', '.join(f'{k} {v:g} s' for k, v in durations.items())}", file=sys.stderr)
    verdict = soak.check(audit.read(args.audit_log), args.release, args.risk, args.stage, _now(args.at).timestamp(), durations)
    if args.json:
        print(
            json.dumps(
                {
                    "allowed": verdict.allowed,
                    "reason": verdict.reason,
                    "requirements": [
                        {"stage": r.stage, "needed_s": r.needed, "soaked_s": r.soaked, "met": r.met} for r in verdict.requirements
                    ],
                }
            )
        )
    else:
        print(("promotion allowed: " if verdict.allowed else "promotion REFUSED: ") + verdict.reason)
    if not verdict.allowed and args.override_reason:
        _override(args, args.release, args.stage, f"soak ({verdict.reason})")
        return EXIT_OK
    return EXIT_OK if verdict.allowed else EXIT_NO


def _record(args: argparse.Namespace) -> int:
    from quantshift import audit

    extra: dict[str, Any] = args.extra or {}
    if args.kind == "override" and not (args.reason or "").strip():
        raise InputError("deploy record --kind override needs --reason: why the rule was overridden")
    audit.append(
        audit.Record(args.kind, args.release, args.stage, args.outcome, host=args.host or "", reason=args.reason or "", extra=extra),
        args.audit_log,
    )
    return EXIT_OK


def _notify(args: argparse.Namespace) -> int:
    """Send one test message now, in the foreground, and say whether it was delivered."""
    from dataclasses import asdict

    from quantshift import audit, webhook

    hook = audit.notifications()
    if not hook:
        print("quantshift: no webhook: set QUANTSHIFT_WEBHOOK_URL (the playbooks take it from quantshift_bot_webhook)", file=sys.stderr)
        return EXIT_ERROR
    record = audit.Record("deploy", "-", args.stage, "ok", reason=args.text)
    why = webhook.send(hook, asdict(record))
    print(f"{hook['format']} webhook: " + ("delivered" if not why else f"NOT delivered ({why})"))
    return EXIT_OK if not why else EXIT_ERROR


def _history(args: argparse.Namespace) -> int:
    from quantshift import audit

    records = [
        r
        for r in audit.read(args.audit_log)
        if (not args.release or r.release == args.release) and (not args.stage or r.stage == args.stage)
    ]
    if args.export:
        audit.export(records, args.export)
        print(f"{len(records)} record(s) written to {args.export}", file=sys.stderr)
    records = records[-args.limit :]
    if args.json:
        from dataclasses import asdict

        print(json.dumps([asdict(r) for r in records], indent=2))
    else:
        print(audit.render(records))
    return 0


def _lock(args: argparse.Namespace) -> int:
    from quantshift import audit

    lock = audit.deploy_lock(args.environment, args.audit_log.parent if args.audit_log else None, ttl=args.ttl)
    if args.lock_action == "acquire":
        audit.notifications()  # a bad webhook setting refuses the deploy before it takes the lock
        lock.acquire(args.owner)
        audit.append(audit.Record("lock", "-", args.environment, "ok", reason=f"acquired by {args.owner}"), args.audit_log)
        if args.release:  # the deploy starts now (and says so on the webhook)
            audit.append(audit.Record("deploy", args.release, args.environment, "started", reason=f"run {args.owner}"), args.audit_log)
        return 0
    if args.lock_action == "release":
        held = lock.holder()
        if args.force:
            audit.append(
                audit.Record("override", "-", args.environment, "ok", reason=f"deploy lock released by force (held by {held})"),
                args.audit_log,
            )
        if lock.release(args.owner, force=args.force):
            return EXIT_OK
        print(f"quantshift: the {args.environment} deploy lock is not held by {args.owner}: nothing released", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(lock.holder()))
    return 0


def _gate(args: argparse.Namespace) -> int:
    from quantshift import gate

    t = gate.GateThresholds(
        max_error_rate=args.max_error_rate,
        max_win_rate_drop=args.max_win_rate_drop,
        max_drawdown=args.max_drawdown,
        min_trades=args.min_trades,
    )
    result = gate.run(args.url, args.production_url, t, args.restarts, observe_s=args.observe)
    return _report_gate(args, result, args.stage or "-")


def _report_gate(args: argparse.Namespace, result: GateResult, stage: str) -> int:
    """Print a gate's result (table or --json), append it to the audit log when --release is given,
    and return the exit code (EXIT_OK passed, EXIT_NO failed). Shared by `gate` and `shadow-check`."""
    from quantshift import audit

    print(json.dumps(result.as_dict(), indent=2) if args.json else result.table())
    if args.release:
        audit.append(
            audit.Record(
                "gate",
                args.release,
                stage,
                "ok" if result.passed else "failed",
                host=args.host or "",
                reason="; ".join(f"{c.name} {c.value}" for c in result.checks if not c.ok),
                extra=result.as_dict(),
            ),
            args.audit_log,
        )
    return EXIT_OK if result.passed else EXIT_NO


def _shadow_check(args: argparse.Namespace) -> int:
    from quantshift import shadow

    result = shadow.check(args.shadow_url, args.primary_url, shadow.ShadowExpectations(args.min_would_be, args.timeout))
    return _report_gate(args, result, "shadow")


def _switchover(args: argparse.Namespace) -> int:
    import subprocess

    from quantshift import switchover

    try:
        lines = switchover.journal(args.ssh, args.bot, args.since)
    except subprocess.CalledProcessError as err:
        why = (err.stderr or "").strip().splitlines()
        raise UserError(
            f"reading the {args.bot} bot's journal failed (exit {err.returncode}): {why[-1] if why else 'no message'}"
        ) from None
    except subprocess.TimeoutExpired:
        raise UserError(f"reading the {args.bot} bot's journal took more than 60 s: is the host reachable?") from None
    except OSError as err:
        raise UserError(f"cannot run {args.ssh[0]!r}: {err.strerror}") from None
    found = switchover.find(switchover.events(lines), args.release, args.since)
    if found is None:
        print(f"no switchover to {args.release} found in the {args.bot} bot's journal since {args.since:.0f}", file=sys.stderr)
        return EXIT_ERROR
    doc = {"bot": args.bot, "from": found.old_release, "to": found.new_release, "gap_s": round(found.gap_s, 3)}
    print(
        json.dumps(doc) if args.json else f"{args.bot}: {found.old_release} -> {found.new_release}, trading gap {found.gap_s * 1000:.0f} ms"
    )
    return EXIT_OK


def _manifest(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from quantshift import manifest

    if args.file is None:  # a release given on the command line: its id alone
        if args.release is None:
            print("quantshift deploy manifest: give a manifest file, or --release ID to check an id alone", file=sys.stderr)
            return EXIT_USAGE
        if not manifest.valid_release(args.release):
            print(f"quantshift deploy manifest: {manifest.release_problem(args.release)}", file=sys.stderr)
            return EXIT_USAGE
        print(json.dumps({"release": args.release}))
        return EXIT_OK
    try:
        found = manifest.load(args.file)
    except manifest.ManifestError as err:
        print(f"quantshift deploy manifest: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(asdict(found)))
    return EXIT_OK


def register(sub: Any) -> None:
    from quantshift.audit import KINDS, LOCK_TTL_S, OUTCOMES
    from quantshift.manifest import RISK_CLASSES
    from quantshift.soak import STAGES
    from quantshift.window import MARKETS, WindowRules

    dep = sub.add_parser(
        "deploy",
        help="deployment rules: window, soak, audit log, lock (the playbooks call these)",
        description="The rules every rollout playbook checks before it acts, and the audit log it writes.\n"
        "Audit log and deploy lock: shared in Redis when $QUANTSHIFT_AUDIT_REDIS_URL is set (every controller sees\n"
        "one history and one lock; this controller's records are also written to its file); else the file\n"
        "$QUANTSHIFT_AUDIT_LOG (default ~/.local/state/quantshift/audit.jsonl).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = dep.add_subparsers(dest="deploy_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--audit-log", type=state_file, default=None, help="audit log file (default $QUANTSHIFT_AUDIT_LOG)")

    p = actions.add_parser("window", help="is now inside the production deployment window? (exit 3 when not)")
    p.add_argument("--at", type=aware_time, help="the time to judge (ISO 8601 with zone); default now")
    rules = WindowRules()
    p.add_argument("--market", choices=MARKETS, default=MARKETS[0])
    p.add_argument(
        "--after-close",
        type=_minutes,
        default=rules.after_close_minutes,
        help="minutes after the close before the window opens (default %(default)s)",
    )
    p.add_argument(
        "--before-open",
        type=_minutes,
        default=rules.before_open_minutes,
        help="minutes before the open when it shuts (default %(default)s)",
    )
    p.add_argument("--crypto-any-day", action="store_true", help="allow crypto deploys on weekdays too")
    p.add_argument("--override-reason", type=text, help="deploy outside the window anyway; the reason goes to the audit log")
    p.add_argument("--release", type=_release, help="the release (for the audit record of an override)")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=_window)

    p = actions.add_parser("soak", help="has the release passed the stages its risk class needs, long enough? (exit 3 when not)")
    p.add_argument("--release", type=_release, required=True)
    p.add_argument("--risk", choices=RISK_CLASSES, required=True)
    p.add_argument("--stage", choices=STAGES, required=True, help="the stage to promote to")
    p.add_argument("--at", type=aware_time, help="the time to judge (ISO 8601 with zone); default now")
    p.add_argument("--override-reason", type=text, help="promote anyway; the reason goes to the audit log")
    p.add_argument(
        "--duration",
        type=_stage_seconds,
        action="append",
        metavar="STAGE=SECONDS",
        help="minimum soak in STAGE for this risk class (repeatable; default the policy's days)",
    )
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=_soak)

    p = actions.add_parser("gate", help="a bot's health and metrics against the thresholds (exit 3 and a table when it fails)")
    p.add_argument("--url", type=http_url, required=True, help="the candidate bot's health base URL (http://HOST:PORT)")
    p.add_argument("--production-url", type=http_url, help="production's bot, for the win-rate comparison")
    p.add_argument("--restarts", type=int_from(0), help="systemd NRestarts of the candidate's unit (must be 0)")
    p.add_argument(
        "--observe", type=float_in(0.0), default=0.0, help="watch for this many seconds; any failing look fails the gate at once"
    )
    from quantshift.gate import GateThresholds

    t = GateThresholds()
    p.add_argument("--max-error-rate", type=fraction, default=t.max_error_rate, help="0..1 (default %(default)s)")
    p.add_argument(
        "--max-win-rate-drop",
        type=fraction,
        default=t.max_win_rate_drop,
        help="below production's win rate, absolute, 0..1 (default %(default)s)",
    )
    p.add_argument("--max-drawdown", type=fraction, default=t.max_drawdown, help="0..1 (default %(default)s)")
    p.add_argument(
        "--min-trades", type=int_from(0), default=t.min_trades, help="compare win rates only past this many trades (default %(default)s)"
    )
    p.add_argument("--release", type=_release, help="record the result in the audit log for this release")
    p.add_argument("--stage", choices=STAGES, help="stage for the audit record")
    p.add_argument("--host", help="host for the audit record")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=_gate)

    p = actions.add_parser(
        "shadow-check", help="the shadow sees the primary's market data, records would-be trades and sends no order (exit 3 when not)"
    )
    common(p)
    p.add_argument("--shadow-url", type=http_url, required=True, help="the shadow bot's health base URL")
    p.add_argument("--primary-url", type=http_url, required=True, help="the primary bot's health base URL (same account)")
    p.add_argument("--min-would-be", type=int_from(0), default=1, help="would-be orders the shadow must record (default %(default)s)")
    p.add_argument(
        "--timeout", type=float_in(above=0.0), default=120.0, help="seconds to wait for all checks to hold (default %(default)s)"
    )
    p.add_argument("--release", type=_release, help="record the result in the audit log for this release")
    p.add_argument("--host", help="host for the audit record")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_shadow_check)

    p = actions.add_parser("switchover", help="the trading gap of a switchover, from the bot's journal (last decision -> first decision)")
    p.add_argument("--ssh", type=command_line, required=True, help="how to reach the host, e.g. 'ssh -i KEY root@10.231.7.10'")
    p.add_argument("--bot", type=text, required=True, help="bot name (unit quantshift-NAME@*)")
    p.add_argument("--release", type=_release, required=True, help="the release switched to")
    p.add_argument("--since", type=epoch_or_time, required=True, help="unix time (or ISO 8601 with zone) before the deploy")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_switchover)

    p = actions.add_parser(
        "manifest", help="check a release manifest (release id, risk class), or a release id alone, and print it as JSON (exit 2 when bad)"
    )
    p.add_argument("file", type=existing_file, nargs="?", help="the manifest; without it, --release is checked")
    p.add_argument("--release", help="a release id to check (when there is no manifest)")
    p.set_defaults(func=_manifest)

    p = actions.add_parser("record", help="append one record to the audit log")
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--release", type=_release, required=True, help="the release, or - for none")
    p.add_argument("--stage", choices=STAGES, required=True)
    p.add_argument("--outcome", choices=OUTCOMES, required=True)
    p.add_argument("--host")
    p.add_argument("--reason")
    p.add_argument("--extra", type=_json_object, help="a JSON object of further facts (gate values...)")
    common(p)
    p.set_defaults(func=_record)

    p = actions.add_parser("notify", help="send a test message to the webhook ($QUANTSHIFT_WEBHOOK_URL) and say if it arrived")
    p.add_argument("--text", default="a test message from quantshift deploy notify")
    p.add_argument("--stage", default="-")
    p.set_defaults(func=_notify)

    p = actions.add_parser("history", help="show the audit log")
    p.add_argument("--release", type=_release)
    p.add_argument("--stage", choices=STAGES)
    p.add_argument("--limit", type=int_from(1), default=50, help="show the last this many (default %(default)s)")
    p.add_argument("--export", type=output_file, help="also write every matching record to this file (JSON lines, 0600)")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=_history)

    p = actions.add_parser("lock", help="take or give back the per-environment deploy lock")
    p.add_argument("lock_action", choices=("acquire", "release", "show"))
    p.add_argument("--environment", choices=STAGES, required=True, help="paper, shadow, canary or production")
    p.add_argument("--owner", type=text, default=f"deploy-{int(time.time())}", help="who holds it (the playbook run)")
    p.add_argument(
        "--ttl",
        type=float_in(above=0.0),
        default=LOCK_TTL_S,
        help="seconds after which an abandoned lock counts as stale (default %(default)s)",
    )
    p.add_argument("--force", action="store_true", help="release a lock another run holds (its deploy died); audited")
    p.add_argument("--release", type=_release, help="acquire: the release this deploy ships (recorded as a deploy that started)")
    common(p)
    p.set_defaults(func=_lock)

    def timeline_page(args: argparse.Namespace) -> int:
        from quantshift import timeline

        return timeline.command(args.audit_log, args.out)

    p = actions.add_parser("timeline", help="an HTML page of each release's stages, gates, overrides and rollbacks, from an audit log file")
    p.add_argument("--audit-log", type=existing_file, required=True, help="the audit log file, or `deploy history --export FILE`")
    p.add_argument("--out", type=output_file, required=True, help="write the self-contained HTML page here")
    p.set_defaults(func=timeline_page)
