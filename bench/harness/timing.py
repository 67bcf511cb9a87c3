"""Wall time of `copier copy --defaults` and of the template's own combination tests."""

from __future__ import annotations

import shlex
import shutil
import time

from .common import REPO, WORK, log, run
from .serving import copier_copy

MATRIX_TEST = "tests/test_matrix.py"
ONE_COMBINATION = "postgresql-async-uuid"  # the default mode and key, on the server database


def time_copier(reps: int, vcs_ref: str) -> list[float]:
    """Wall time of `copier copy --trust --defaults` (the default answers), `reps` times."""
    times = []
    for i in range(reps):
        dest = WORK / "copier-timing" / str(i)
        shutil.rmtree(dest, ignore_errors=True)
        start = time.perf_counter()
        copier_copy(dest, vcs_ref, {})
        times.append(time.perf_counter() - start)
        shutil.rmtree(dest, ignore_errors=True)
    return times


def time_matrix(full: bool) -> list[tuple[str, str, float]]:
    """Wall time of the template's combination tests: all of them as the README's test command runs
    them (pytest-xdist, -n auto), and one combination alone (-n 0). Each generates its project(s),
    installs them with uv and runs their whole tool chain; uv's cache is warm after the first."""
    pytest = str(REPO / ".venv" / "bin" / "pytest")
    one = f"{MATRIX_TEST}::test_generated_project_passes_its_own_tool_chain[{ONE_COMBINATION}]"
    runs = [(f"one combination ({ONE_COMBINATION})", [pytest, "-q", "-n", "0", one])]
    if full:
        runs.insert(0, ("every combination", [pytest, "-q", MATRIX_TEST]))
    timings = []
    for label, cmd in runs:
        log(f"timing the template matrix: {label}")
        start = time.perf_counter()
        run([*cmd, "-p", "no:cacheprovider"], cwd=REPO, timeout=3600)
        elapsed = time.perf_counter() - start
        log(f"  {elapsed:.0f} s")
        timings.append((label, shlex.join(["pytest", *cmd[1:]]), elapsed))
    return timings
