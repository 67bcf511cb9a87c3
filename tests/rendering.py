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
        ("postgresql", "sqlite", "mariadb"), ("async", "sync"), ("uuid", "int")
    )
] + [
    # The drivers that are not their mode's default: `postgresql-async-psycopg-uuid`, ...
    {"database": "postgresql", "sqlalchemy_mode": mode, "driver": "psycopg", "primary_key": key}
    for mode, key in itertools.product(("async", "sync"), ("uuid", "int"))
]

TRACING_COMBINATIONS: list[dict[str, str]] = [
    # One per database, with OpenTelemetry tracing: `postgresql-async-uuid-opentelemetry`, ...
    {
        "database": "postgresql",
        "sqlalchemy_mode": "async",
        "primary_key": "uuid",
        "tracing": "opentelemetry",
    },
    {
        "database": "sqlite",
        "sqlalchemy_mode": "sync",
        "primary_key": "int",
        "tracing": "opentelemetry",
    },
    {
        "database": "mariadb",
        "sqlalchemy_mode": "async",
        "primary_key": "int",
        "tracing": "opentelemetry",
    },
]


LEFT_OPEN_REPORTS = (
    "Future exception was never retrieved",
    "Task exception was never retrieved",
    "Task was destroyed but it is pending",
    "Exception ignored in",
    "ResourceWarning",
)
"""How Python reports, after a run, what a test opened and never closed or awaited."""


def combination_id(answers: dict[str, str]) -> str:
    return "-".join(answers.values())


def render(
    destination: Path,
    vcs_ref: str = "HEAD",
    template: Path = TEMPLATE,
    tasks: bool = True,
    **answers: Any,
) -> Path:
    """Generate a project into `destination` with the defaults overridden by `answers`.

    With `tasks`, the template's tasks run as they do for a user (`uv lock`, then the first git
    commit); checks that only read the rendered files leave them out.
    """
    copier.run_copy(
        str(template),
        destination,
        data=answers,
        defaults=True,
        unsafe=True,
        vcs_ref=vcs_ref,
        quiet=True,
        skip_tasks=not tasks,
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


def check_project(project: Path, locked: bool = True) -> str:
    """Install `project` in its own environment and run its linters, type checker and test suite.

    `locked` installs exactly what the project's `uv.lock` says and fails if it is missing or out
    of date (a new project's tasks wrote it); without it, `uv sync` locks afresh, as it does for a
    user after an update that changed the dependencies. Returns pytest's summary line.
    PostgreSQL projects test against `postgres.SERVER_URL`, MariaDB ones against
    `mariadb.SERVER_URL`; in CI a skipped test fails the check.
    """
    from tests import mariadb, postgres

    tool = uv()
    run(tool, "sync", *(["--locked"] if locked else []), cwd=project)
    run(tool, "run", "--no-sync", "ruff", "check", ".", cwd=project)
    run(tool, "run", "--no-sync", "ruff", "format", "--check", ".", cwd=project)
    type_check(project)
    servers = {"mariadb": mariadb.SERVER_URL, "postgresql": postgres.SERVER_URL}
    answers = (project / ".copier-answers.yml").read_text()
    database = next(
        (name for name in servers if f"database: {name}" in answers.splitlines()), "postgresql"
    )
    env = {"TEST_DATABASE_URL": servers[database], "CI": os.environ.get("CI", "")}
    pytest = (tool, "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider")
    result = run(*pytest, cwd=project, env=env)
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary, summary
    # Printed by the interpreter, not pytest, once the run is over: resources a test left open.
    unseen = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.startswith(LEFT_OPEN_REPORTS)
    ]
    assert not unseen, f"the suite passed but left something open: {unseen}"
    assert "skipped" not in summary, summary
    return summary


def type_check(project: Path) -> None:
    """Run the project's mypy, from a copy of the cache of the first project checked in this run.

    See `MYPY_SEED_VARIABLE` in conftest.py: mypy re-checks every module whose source differs,
    so the copy only spares re-reading the libraries.
    """
    seed_folder = os.environ.get("TEMPLATE_TESTS_MYPY_SEED")
    cache = project / ".mypy_cache"
    if seed_folder is None:
        run(uv(), "run", "--no-sync", "mypy", cwd=project)
        return
    seed = Path(seed_folder)
    if seed.is_dir() and not cache.exists():
        shutil.copytree(seed, cache)
    run(uv(), "run", "--no-sync", "mypy", cwd=project)
    if not seed.exists() and cache.is_dir():
        staging = seed.with_name(f"{seed.name}.{os.getpid()}")
        shutil.copytree(cache, staging)
        try:
            staging.rename(seed)  # Atomic: later projects see a whole cache or none.
        except OSError:  # Another worker published first.
            shutil.rmtree(staging)


def uv() -> str:
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv is required: pip install uv")
    return found


def install_runtime(project: Path) -> Path:
    """Install `project`'s own dependencies, not its dev tools, into its `.venv`; return `project`.

    Compiled to bytecode up front: a project started many times then starts in half the CPU time,
    even where PYTHONDONTWRITEBYTECODE keeps Python from caching what it compiles.
    """
    run(uv(), "sync", "--no-dev", "--compile-bytecode", cwd=project)
    return project
