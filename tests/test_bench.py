"""The benchmark command runs end to end on a tiny load (a smoke run: no timing is asserted)."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests import mariadb, postgres
from tests.rendering import TEMPLATE, run

BENCH = TEMPLATE / "bench"


def require_load_generators() -> None:
    """wrk for the load at saturation, Node.js and npm for loadtest at a fixed rate."""
    missing = [tool for tool in ("wrk", "node", "npm") if shutil.which(tool) is None]
    if missing:
        message = f"not installed: {', '.join(missing)} (apt-get install -y wrk nodejs npm)"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs them")
        pytest.skip(message)


def section(report: str, heading: str) -> str:
    """The text of a report's `## heading` section, up to the next one."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", report, re.M | re.S)
    assert match, (heading, report)
    return match.group(1)


@pytest.mark.matrix
def test_quick_bench_run_reports_every_app_and_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres.require_server()
    mariadb.require_server()
    require_load_generators()
    output = tmp_path / "RESULTS.md"

    run(
        sys.executable,
        str(BENCH / "run.py"),
        "--quick",
        "--matrix",
        "none",
        "--seed-users",
        "50",
        "--before-ref",
        "HEAD",
        "--output",
        str(output),
        cwd=TEMPLATE,
        timeout=900,
    )

    report = output.read_text()
    # The apps and routes the benchmark knows (bench/ is a script's folder: its harness package is
    # importable once bench/ is on the path, as it is for bench/run.py).
    monkeypatch.syspath_prepend(str(BENCH))
    apps = importlib.import_module("harness.apps")
    for heading in ("Throughput and latency", "Latency at a fixed rate"):
        table = section(report, heading)
        for route in apps.ROUTES.values():
            for app in apps.all_apps():
                row = re.escape(f"| {route} | {app} | ")
                assert re.search(rf"^{row}\d+ \|", table, re.MULTILINE), (heading, route, app)
    # Each database server's apps are compared with its own reference app: raw-mariadb's ratios
    # are its own (1.00), not raw's.
    saturation = section(report, "Throughput and latency")
    for route in apps.ROUTES.values():
        row = re.escape(f"| {route} | {apps.BASELINES['mariadb']} | ")
        # req/s, range, p50, p99, then the two ratios
        ratios = r"\d+ \| \S+ \| [\d.]+ \| [\d.]+ \| 1\.00 \| 1\.00 \|"
        assert re.search(rf"^{row}{ratios}", saturation, re.M), route
    assert re.search(r"^\| MariaDB \| \d+\.\d+", report, re.M)
    # What the metrics cost: on (now and at --before-ref) against off, CPU µs/req and its ratio.
    cost = section(report, "What the metrics cost")
    for route in apps.ROUTES.values():
        for app in (apps.METRICS_ON, apps.METRICS_BEFORE):
            row = re.escape(f"| {route} | {app} | ")
            assert re.search(rf"^{row}\d+ \| \d+\.\d\d \| ", cost, re.MULTILINE), (route, app)
    assert re.search(r"^GET /users/\{id\}: `gen-async-int` keeps \d+\.\d\d . the req/s", cost, re.M)
    # Every target judged, for its int-keyed and its uuid-keyed app.
    targets = importlib.import_module("harness.targets").TARGETS
    assert re.search(rf"^Met: \d+ of {2 * len(targets)}\.$", section(report, "Targets"), re.M)
    assert "`copier copy --trust --defaults` wall time" in report


def test_quick_soak_reports_memory_after_every_step(tmp_path: Path) -> None:
    """The memory soak (bench/soak.py) on a generated sync SQLite service: no PostgreSQL needed."""
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("not installed: wrk; .ci/run installs it")
        pytest.skip("not installed: wrk (apt-get install -y wrk)")
    output = tmp_path / "SOAK.md"

    run(
        sys.executable,
        str(BENCH / "soak.py"),
        "--quick",
        "--output",
        str(output),
        cwd=TEMPLATE,
        timeout=300,
    )

    report = output.read_text()
    verdict = section(report, "Verdict")
    # requests, errors, then the RSS figures; every request of the mix answered 2xx.
    assert re.search(r"^\| sqlite-sync-int \| [1-9]\d+ \| 0 \| ", verdict, re.M), verdict
    steps = section(report, "sqlite-sync-int")
    assert (
        len(re.findall(r"^\| \d+ \| \d+ \| \d+ \| \d+ \| [\d.]+ \| 0 \| [\d.]+ \|$", steps, re.M))
        == 4
    )
