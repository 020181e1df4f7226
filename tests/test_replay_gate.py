"""`quantshift replay`: two releases, each in a venv built from its own wheelhouse, over the same bars;
identical code passes with full agreement, inverted signals fail, too little data is inconclusive, and a
fail let through is audited. Real wheelhouses, real venvs, real processes; no network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    here = tmp_path_factory.mktemp("replay")
    bars = here / "bars.csv"
    subprocess.run(
        [sys.executable, "-m", "lab.history", "--days", "5", "--symbols", "AAPL,MSFT", "--seed", "42", "--out", str(bars)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    short = here / "short.csv"
    short.write_text("".join(bars.read_text().splitlines(keepends=True)[: 1 + 2 * 180]))  # three hours
    out = {"bars": bars, "short": short}
    for name, strategy, package in (
        ("base", "ma_cross", ROOT / "strategies" / "ma_cross"),
        ("same", "ma_cross", ROOT / "strategies" / "ma_cross"),
        ("inverted", "ma_inverted", ROOT / "demo" / "strategies" / "ma_inverted"),
    ):
        manifest = here / f"{name}.yml"
        manifest.write_text(f"release: gate-{name}\nrisk_class: medium\nstrategy: {{name: {strategy}, package: {package}}}\n")
        out[name] = manifest
    return out


def replay(*args: str, audit: Path | None = None) -> tuple[int, dict[str, Any], str]:
    env = {**os.environ, "QUANTSHIFT_AUDIT_LOG": str(audit or "/nonexistent/audit.jsonl")}
    env.pop("QUANTSHIFT_AUDIT_REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "quantshift", "replay", "--json", *args], env=env, capture_output=True, text=True, timeout=900
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}, done.stderr


def test_identical_code_agrees_fully_and_passes(gate: dict[str, Path], tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    rc, doc, err = replay(
        "--candidate", str(gate["same"]), "--production", str(gate["base"]), "--bars", str(gate["bars"]), "--html", str(html)
    )
    assert rc == 0, err
    market = doc["markets"][0]
    comparison = market["comparison"]
    assert doc["verdict"] == "pass" and comparison["agreement"] == 1.0
    assert comparison["shadow"]["trades"] == comparison["production"]["trades"] >= 20
    assert market["bars"] == 5 * 1440 * 2 and market["candidate"]["release"] == "gate-same"
    assert market["candidate"]["peak_rss_kb"] > 0 and market["candidate"]["bars_per_second"] > 0
    assert "<svg" in html.read_text()


def test_inverted_signals_fail(gate: dict[str, Path]) -> None:
    rc, doc, err = replay("--candidate", str(gate["inverted"]), "--production", str(gate["base"]), "--bars", str(gate["bars"]))
    assert rc == 3, err
    assert doc["verdict"] == "fail" and "lower than production" in doc["reason"]


def test_too_little_data_is_inconclusive(gate: dict[str, Path]) -> None:
    rc, doc, err = replay("--candidate", str(gate["inverted"]), "--production", str(gate["base"]), "--bars", str(gate["short"]))
    assert rc == 4, err
    assert doc["verdict"] == "inconclusive" and "too little data" in doc["reason"]


def test_nothing_in_production_is_inconclusive(gate: dict[str, Path], tmp_path: Path) -> None:
    rc, doc, _ = replay("--candidate", str(gate["inverted"]), "--bars", str(gate["bars"]), audit=tmp_path / "audit.jsonl")
    assert rc == 4 and "no release has reached production yet" in doc["reason"]


def test_a_fail_let_through_is_audited(gate: dict[str, Path], tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    rc, doc, err = replay(
        "--candidate", str(gate["inverted"]), "--production", str(gate["base"]), "--bars", str(gate["bars"]),
        "--release", "gate-inverted", "--override-reason", "known: testing the override", audit=audit,
    )  # fmt: skip
    assert rc == 0 and doc["verdict"] == "fail" and "OVERRIDE (replay)" in err
    record = json.loads(audit.read_text().splitlines()[-1])
    assert (record["kind"], record["release"], record["stage"]) == ("override", "gate-inverted", "paper")
    assert "known: testing the override" in record["reason"]


def test_a_candidate_that_breaks_the_contract_is_refused(gate: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    (broken / "src" / "qs_broken").mkdir(parents=True)
    (broken / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "qs-broken"\nversion = "0.1.0"\n'
        '[project.entry-points."quantshift.strategies"]\nbroken = "qs_broken:make"\n'
    )
    (broken / "src" / "qs_broken" / "__init__.py").write_text("import nonexistent_module  # a dependency the package forgot\n")
    manifest = tmp_path / "broken.yml"
    manifest.write_text(f"release: gate-broken\nrisk_class: medium\nstrategy: {{name: broken, package: {broken}}}\n")
    rc, _, err = replay("--candidate", str(manifest), "--production", str(gate["base"]), "--bars", str(gate["bars"]))
    assert rc == 2, err
    assert "cannot be imported: ModuleNotFoundError: No module named 'nonexistent_module'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
