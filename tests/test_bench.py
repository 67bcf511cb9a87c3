"""The benchmark command runs end to end on a tiny load (a smoke run: no timing is asserted)."""

from __future__ import annotations

import os
import re
import runpy
import shutil
import sys
from pathlib import Path

import pytest

from tests import postgres
from tests.rendering import TEMPLATE, run

BENCH = TEMPLATE / "bench" / "run.py"


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        message = "wrk is not installed (apt-get install -y wrk)"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs it")
        pytest.skip(message)


@pytest.mark.matrix
def test_quick_bench_run_reports_every_app_and_route(tmp_path: Path) -> None:
    postgres.require_server()
    require_wrk()
    output = tmp_path / "RESULTS.md"

    run(
        sys.executable,
        str(BENCH),
        "--quick",
        "--matrix",
        "none",
        "--seed-users",
        "50",
        "--output",
        str(output),
        cwd=TEMPLATE,
        timeout=900,
    )

    report = output.read_text()
    # The apps and routes bench/run.py knows; running it as a file runs nothing but definitions.
    bench = runpy.run_path(str(BENCH))
    for route in bench["ROUTES"].values():
        for app in bench["all_apps"]():
            row = re.escape(f"| {route} | {app} | ")
            assert re.search(rf"^{row}\d+ \|", report, re.MULTILINE), (route, app, report)
    assert "`copier copy --trust --defaults` wall time" in report
