"""monitoring/ against promtool and against what the bots export: the alerting rules pass promtool's check
and their unit tests (every alert both firing and not), every series the rules, their annotations and the
Grafana dashboard query is one a bot or a guard exports, and the dashboard is a well-formed one whose
queries Prometheus accepts and whose deploy marks and status colours mean what they say."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import ROOT

RULES_DIR = ROOT / "monitoring/rules"
RULES = RULES_DIR / "quantshift.rules.yml"
RULE_TESTS = sorted((RULES_DIR / "tests").glob("*.yml"))
DASHBOARD = ROOT / "monitoring/grafana/quantshift.json"
PROMETHEUS_EXAMPLE = ROOT / "monitoring/prometheus.example.yml"
DATASOURCE = "${datasource}"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not found: apt-get install prometheus (CI installs it)")

# Series Prometheus itself adds to every target.
PROMETHEUS_SERIES = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"}
)
# Words of PromQL that are not series names (aggregations and functions are told apart by their "(").
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "inf", "nan"}
)
# Grafana's variables, as Prometheus would see them once Grafana has substituted them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h", "$bot": ".*", "$host": ".*"}


def promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


# --- reading PromQL -------------------------------------------------------------------------------
def series_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads: what is left once strings, label matchers, ranges,
    label lists (by, on, group_left ...), Grafana variables, functions, keywords and numbers are gone."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)
    names = set()
    for m in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?", expr):
        name, called = m.group(1), m.group(2)
        if not called and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def grafana_query_series(query: str) -> set[str]:
    """Series names of a Grafana Prometheus query: PromQL, or a variable's label_values(...)/query_result(...)."""
    if m := re.fullmatch(r"\s*label_values\((?:(.*),)?\s*\w+\s*\)\s*", query, re.S):
        return series_names(m.group(1) or "")
    if m := re.fullmatch(r"\s*query_result\((.*)\)\s*", query, re.S):
        return series_names(m.group(1))
    return series_names(query)


def template_queries(text: str) -> list[str]:
    """The PromQL an alert's label or annotation template runs (`printf "..." ... | query`), its verbs filled."""
    return [re.sub(r"%[qsdv]", '"x"', fmt) for fmt in re.findall(r'printf\s+"((?:\\.|[^"\\])*)"', text)]


def known_series() -> set[str]:
    from quantshift_bot import metrics  # here: a missing catalogue fails these tests, not the promtool ones

    return metrics.exported_series() | set(metrics.GUARD_SERIES) | PROMETHEUS_SERIES


# --- the rules and the dashboard, as files --------------------------------------------------------
def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, with those inside collapsed rows."""
    for panel in doc["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, query) for every panel target, annotation and variable query of the dashboard."""
    for panel in panels(doc):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for annotation in doc["annotations"]["list"]:
        if "expr" in annotation:
            yield f"annotation {annotation['name']!r}", annotation["expr"]
    for variable in doc["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield f"variable {variable['name']!r}", query["query"] if isinstance(query, dict) else query


def substituted(expr: str) -> str:
    for name, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    return expr


# --- promtool -------------------------------------------------------------------------------------
@needs_promtool
def test_rules_pass_promtool_check() -> None:
    out = promtool("check", "rules", RULES.name)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in out.stdout


@needs_promtool
def test_rules_pass_their_unit_tests() -> None:
    assert RULE_TESTS, "no rule tests in monitoring/rules/tests"
    out = promtool("test", "rules", *(str(p.relative_to(RULES_DIR)) for p in RULE_TESTS))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FAILED" not in out.stdout


@needs_promtool
def test_example_prometheus_config_is_valid_and_loads_the_rules() -> None:
    out = promtool("check", "config", PROMETHEUS_EXAMPLE.name, cwd=PROMETHEUS_EXAMPLE.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in out.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../quantshift.rules.yml"], path
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                (fired if expected else quiet).add(check["alertname"])
                for alert in expected:  # exact expectations: the labels and both annotations
                    assert {"severity"} <= set(alert["exp_labels"]) and set(alert["exp_annotations"]) == {"summary", "description"}
    alerts = {rule["alert"] for rule in alert_rules() if "alert" in rule}
    assert alerts - fired == set(), "never tested firing"
    assert alerts - quiet == set(), "never tested staying quiet"


def test_every_alert_has_a_severity_and_an_operator_text() -> None:
    for rule in alert_rules():
        if "alert" not in rule:
            continue
        severity = rule["labels"]["severity"]
        assert severity in ("page", "warn") or set(re.findall(r"}}(\w+){{", severity)) == {"page", "warn"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert "$labels." in rule["annotations"]["summary"], rule["alert"]


# --- series names ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum by (account, symbol) (quantshift_lease_held) == 0", {"quantshift_lease_held"}),
        (
            'histogram_quantile(0.99, sum by (bot, host, le) (rate(quantshift_order_latency_seconds_bucket{bot=~"$bot"}[$__rate_interval])))',
            {"quantshift_order_latency_seconds_bucket"},
        ),
        (
            'time() - quantshift_last_tick_timestamp_seconds > 6e1 and ignoring (quantshift_status) quantshift_status{quantshift_status="ready"} == 1',
            {"quantshift_last_tick_timestamp_seconds", "quantshift_status"},
        ),
        ('up{job="quantshift_guard"} == bool 0', {"up"}),
        ("increase(quantshift_guard_rollbacks_total[15m] offset 1m) > 0", {"quantshift_guard_rollbacks_total"}),
        ("a * on (bot, host) group_left (release, slot) b or c unless d", {"a", "b", "c", "d"}),
        ('quantshift_ready{stage!="paper"} * Inf', {"quantshift_ready"}),
    ],
)
def test_series_names_keeps_series_and_drops_the_rest(expr: str, names: set[str]) -> None:
    assert series_names(expr) == names


def test_a_made_up_series_name_is_flagged() -> None:
    """The check below can fail: a name no bot exports is found, between real ones."""
    query = 'sum by (bot) (rate(quantshift_made_up_total{bot=~"$bot"}[5m])) / sum by (bot) (rate(quantshift_ticks_total[5m]))'
    assert series_names(query) - known_series() == {"quantshift_made_up_total"}
    assert grafana_query_series('label_values(quantshift_bulid_info{bot=~"$bot"}, host)') - known_series() == {"quantshift_bulid_info"}
    template = '{{ with printf "quantshift_sesion_pnl_usd{bot=%q}" $labels.bot | query }}{{ . | first | value }}{{ end }}'
    assert {n for q in template_queries(template) for n in series_names(q)} - known_series() == {"quantshift_sesion_pnl_usd"}


def test_every_series_the_rules_and_the_dashboard_read_is_exported() -> None:
    known = known_series()
    used: list[tuple[str, str]] = []
    for rule in alert_rules():
        name = rule.get("alert") or rule["record"]
        used += [(f"rule {name}", series) for series in series_names(rule["expr"])]
        templates = " ".join([*rule.get("labels", {}).values(), *rule.get("annotations", {}).values()])
        used += [(f"rule {name} template", series) for q in template_queries(templates) for series in series_names(q)]
    for where, query in dashboard_queries(dashboard()):
        used += [(where, series) for series in grafana_query_series(query)]
    assert len({series for _, series in used}) > 20  # the extraction found the catalogue's names
    assert [(where, series) for where, series in used if series not in known] == []


# --- the dashboard --------------------------------------------------------------------------------
def test_dashboard_is_well_formed() -> None:
    doc = dashboard()
    assert doc["uid"] and doc["title"] and 36 <= doc["schemaVersion"] <= 41
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("bot", "host"):
        assert variables[name]["datasource"]["uid"] == DATASOURCE
        assert variables[name]["query"]["query"].startswith("label_values(")
    ids = [p["id"] for p in panels(doc)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    boxes: list[tuple[int, int, int, int, str]] = []
    for panel in panels(doc):
        x, y, w, h = (panel["gridPos"][k] for k in ("x", "y", "w", "h"))
        assert x >= 0 and w > 0 and x + w <= 24 and h > 0, panel["title"]
        for bx, by, bw, bh, other in boxes:
            assert x >= bx + bw or bx >= x + w or y >= by + bh or by >= y + h, f"{panel['title']!r} overlaps {other!r}"
        boxes.append((x, y, w, h, panel["title"]))
        if panel["type"] == "row":  # a row is a heading: no query of its own
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE}, panel["title"]
        assert panel["targets"], f"{panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == DATASOURCE, panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]
    for annotation in doc["annotations"]["list"]:
        if "expr" in annotation:
            assert annotation["datasource"]["uid"] == DATASOURCE, annotation["name"]


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each query, its Grafana variables filled in, as a recording rule: promtool parses it as Prometheus would."""
    queries = [(where, q) for where, q in dashboard_queries(dashboard()) if not q.lstrip().startswith("label_values(")]
    rules = [{"record": f"dashboard:query_{i}", "expr": substituted(q)} for i, (_, q) in enumerate(queries)]
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = promtool("check", "rules", "dashboard.rules.yml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(queries)} rules found" in out.stdout


def promql_tests(tmp_path: Path, series: list[dict[str, str]], cases: list[dict[str, Any]], interval: str = "30s") -> None:
    """Evaluate expressions over input series with promtool and compare with the expected samples."""
    doc = {
        "rule_files": [],
        "evaluation_interval": interval,
        "tests": [{"interval": interval, "input_series": series, "promql_expr_test": cases}],
    }
    (tmp_path / "queries.test.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    out = promtool("test", "rules", "queries.test.yml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def selector(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


# The target labels of production's equity bot, as file-based service discovery sets them.
PRIMARY_EQUITY = {
    "job": "quantshift",
    "instance": "qs-primary:9464",
    "bot": "equity",
    "host": "qs-primary",
    "env": "production",
    "stage": "production",
}


@needs_promtool
def test_deploy_annotation_marks_each_new_release_and_nothing_else(tmp_path: Path) -> None:
    """Release A (one scrape missed at 4.5m: a restart), B deployed at 10m, back to A at 20m: a mark at
    each change of release (and at A's first sample, new to Prometheus), none for the restart."""
    deploys = next(a for a in dashboard()["annotations"]["list"] if a["name"] == "Deploys")
    expr = substituted(deploys["expr"])
    target = PRIMARY_EQUITY
    series = [  # one sample every 30 s
        {
            "series": "quantshift_build_info" + selector(target | {"release": "A", "mode": "live", "slot": "a"}),
            "values": "1x8 _ 1x9 stale _x19 1x20",
        },
        {"series": "quantshift_build_info" + selector(target | {"release": "B", "mode": "live", "slot": "b"}), "values": "_x20 1x19 stale"},
    ]
    marks = {"1m": "A", "5m": None, "10m": "B", "13m": None, "19m": None, "20m": "A", "23m": None}
    cases = [
        {
            "expr": expr,
            "eval_time": t,
            "exp_samples": [{"labels": selector({"bot": "equity", "host": "qs-primary", "release": release}), "value": 1}]
            if release
            else [],
        }
        for t, release in marks.items()
    ]
    promql_tests(tmp_path, series, cases)


@needs_promtool
def test_status_timeline_shows_the_state_at_one(tmp_path: Path) -> None:
    """The Status panel turns the state set into one number per bot, which its value mappings name."""
    status = next(p for p in panels(dashboard()) if p["title"] == "Status")
    expr = substituted(status["targets"][0]["expr"])
    code = {m["text"]: int(value) for value, m in status["fieldConfig"]["defaults"]["mappings"][0]["options"].items()}
    assert set(code) == {"starting", "ready", "standby", "degraded", "stalled", "stopping"}
    target = PRIMARY_EQUITY
    order = ("starting", "ready", "stalled", "ready", "stopping")
    series = [
        {
            "series": "quantshift_status" + selector(target | {"quantshift_status": state}),
            "values": " ".join("1" if state == now else "0" for now in order),
        }
        for state in code
    ]
    cases = [
        {
            "expr": expr,
            "eval_time": f"{30 * i}s",
            "exp_samples": [{"labels": selector({"bot": "equity", "host": "qs-primary"}), "value": code[now]}],
        }
        for i, now in enumerate(order)
    ]
    promql_tests(tmp_path, series, cases)
