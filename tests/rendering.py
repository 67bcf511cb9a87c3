"""Render the template and run commands in the generated projects."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import copier

TEMPLATE = Path(__file__).resolve().parent.parent

COMBINATIONS: list[dict[str, str]] = [
    {"database": database, "sqlalchemy_mode": mode, "primary_key": primary_key}
    for database, mode, primary_key in itertools.product(
        ("postgresql", "sqlite"), ("async", "sync"), ("uuid", "int")
    )
]


def combination_id(answers: dict[str, str]) -> str:
    return "-".join(answers.values())


def render(
    destination: Path, vcs_ref: str = "HEAD", template: Path = TEMPLATE, **answers: Any
) -> Path:
    """Generate a project into `destination` with the defaults overridden by `answers`."""
    copier.run_copy(
        str(template),
        destination,
        data=answers,
        defaults=True,
        unsafe=True,
        vcs_ref=vcs_ref,
        quiet=True,
    )
    return destination


def run(
    *command: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `command` in `cwd`; fail with its output if it exits non-zero."""
    environment = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    environment.update(env or {})
    result = subprocess.run(
        command,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode} in {cwd}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


def check_project(project: Path) -> str:
    """Install `project` in its own environment and run its linters, type checker and test suite.

    Returns pytest's summary line. PostgreSQL projects test against `postgres.SERVER_URL`; in CI a
    skipped test fails the check.
    """
    from tests import postgres

    tool = uv()
    run(tool, "sync", cwd=project)
    run(tool, "run", "--no-sync", "ruff", "check", ".", cwd=project)
    run(tool, "run", "--no-sync", "ruff", "format", "--check", ".", cwd=project)
    run(tool, "run", "--no-sync", "mypy", cwd=project)
    env = {"TEST_DATABASE_URL": postgres.SERVER_URL, "CI": os.environ.get("CI", "")}
    pytest = (tool, "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider")
    summary = run(*pytest, cwd=project, env=env).stdout.strip().splitlines()[-1]
    assert " passed" in summary, summary
    assert "skipped" not in summary, summary
    return summary


def uv() -> str:
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv is required: pip install uv")
    return found
