"""The generated project's CI workflow and pre-commit hooks.

Every combination's `.github/workflows/ci.yml` is rendered and linted by actionlint, which runs
ShellCheck on its `run:` scripts. For one PostgreSQL and one SQLite project, the workflow's job runs
here step by step, as GitHub would run it, and then its pre-commit hooks run on every file.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import mariadb, postgres
from tests.rendering import COMBINATIONS, combination_id, render, run, uv

WORKFLOW = ".github/workflows/ci.yml"
BIN = Path(sys.executable).parent
"""Where the template's own dev dependencies (actionlint, pre-commit) installed their commands."""


def load_workflow(project: Path) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load((project / WORKFLOW).read_text())
    return workflow


def shellcheck() -> str | None:
    """ShellCheck's path, which actionlint needs to check `run:` scripts; CI must have it."""
    found = shutil.which("shellcheck")
    if found is None and os.environ.get("CI"):
        pytest.fail("shellcheck is not installed; .ci/run installs it (apt-get install shellcheck)")
    return found


def test_shellcheck_is_installed() -> None:
    """Without ShellCheck, actionlint skips the `run:` scripts: make that gap visible."""
    if shellcheck() is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck)")


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_workflow_passes_actionlint_and_starts_a_server_only_for_server_databases(
    tmp_path: Path, answers: dict[str, str]
) -> None:
    project = render(tmp_path / "my-service", **answers)

    # An empty -shellcheck turns the integration off explicitly, instead of actionlint guessing.
    run(str(BIN / "actionlint"), f"-shellcheck={shellcheck() or ''}", WORKFLOW, cwd=project)

    job = load_workflow(project)["jobs"]["test"]
    steps = {step.get("name"): step for step in job["steps"]}
    migrations = steps["Migrate an empty database and compare it with the models"]
    if answers["database"] == "postgresql":
        server = job["services"]["postgres"]
        assert "--health-cmd" in server["options"]
        assert server["ports"] == ["5432:5432"]
        password = server["env"]["POSTGRES_PASSWORD"]
        server_url = f"postgresql://postgres:{password}@127.0.0.1:5432"
        assert steps["Test"]["env"]["TEST_DATABASE_URL"] == f"{server_url}/postgres"
        database = server["env"]["POSTGRES_DB"]
        assert database == "my_service"
        assert migrations["env"]["DATABASE_URL"] == f"{server_url}/{database}"
    elif answers["database"] == "mariadb":
        server = job["services"]["mariadb"]
        assert "--health-cmd" in server["options"]
        assert server["ports"] == ["3306:3306"]
        password = server["env"]["MARIADB_ROOT_PASSWORD"]
        server_url = f"mariadb://root:{password}@127.0.0.1:3306"
        assert steps["Test"]["env"]["TEST_DATABASE_URL"] == f"{server_url}/mysql"
        database = server["env"]["MARIADB_DATABASE"]
        assert database == "my_service"
        assert migrations["env"]["DATABASE_URL"] == f"{server_url}/{database}"
    else:
        assert "services" not in job
        assert "env" not in steps["Test"]
        assert migrations["env"]["DATABASE_URL"].startswith("sqlite:///")


def test_workflow_is_least_privilege_pinned_and_bounded(tmp_path: Path) -> None:
    workflow = load_workflow(render(tmp_path / "my-service"))
    job = workflow["jobs"]["test"]

    assert workflow["permissions"] == {"contents": "read"}
    assert "cancel-in-progress" in workflow["concurrency"]
    assert 0 < job["timeout-minutes"] <= 30
    actions = [step["uses"] for step in job["steps"] if "uses" in step]
    assert actions, "the job checks out the code and sets up uv"
    for action in actions:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"{action} is not pinned"
    scripts = "\n".join(step.get("run", "") for step in job["steps"])
    for command in ("uv sync --locked", "ruff check", "ruff format --check", "mypy", "pytest"):
        assert command in scripts
    assert re.search(r"alembic upgrade head\n.*alembic check", scripts)


@contextmanager
def database_for(database: str) -> Iterator[dict[str, str]]:
    """What replaces the service container here: the environment the job's steps run with.

    The workflow's PostgreSQL URLs name the container's port, which is the local server's too, but
    the migrations step gets a throwaway database instead of the one the container would create;
    MariaDB's name the container's root account, which the local server's tests account stands
    for. An SQLite project keeps the workflow's own file URL.
    """
    servers = {"postgresql": postgres, "mariadb": mariadb}
    if database not in servers:
        yield {}
        return
    server = servers[database]
    with server.throwaway_database() as url:
        yield {"DATABASE_URL": url, "TEST_DATABASE_URL": server.SERVER_URL}


def run_job(project: Path, job: dict[str, Any], overrides: dict[str, str]) -> list[str]:
    """Run the `run:` steps of a workflow job in `project`, as a GitHub runner would.

    `actions/checkout` has nothing to do here; `astral-sh/setup-uv` is replaced by the uv on PATH
    and the Python version it would select. Returns the names of the steps that ran.
    """
    env = {"CI": "true", **job.get("env", {})}
    ran = []
    for step in job["steps"]:
        if "uses" in step:
            if step["uses"].startswith("astral-sh/setup-uv@"):
                env["UV_PYTHON"] = str(step.get("with", {}).get("python-version", ""))
            continue
        step_env = {**env, **step.get("env", {}), **overrides}
        # GitHub's default shell on Linux runners: bash --noprofile --norc -eo pipefail {0}
        bash = ("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"])
        run(*bash, cwd=project, env=step_env, timeout=900)
        ran.append(step["name"])
    return ran


@pytest.mark.matrix
@pytest.mark.parametrize(
    "answers",
    [
        {"database": "postgresql", "sqlalchemy_mode": "async", "primary_key": "uuid"},
        {"database": "sqlite", "sqlalchemy_mode": "sync", "primary_key": "int"},
        {"database": "mariadb", "sqlalchemy_mode": "sync", "primary_key": "uuid"},
    ],
    ids=combination_id,
)
def test_fresh_project_passes_its_ci_job_and_its_hooks(
    tmp_path: Path, answers: dict[str, str]
) -> None:
    if answers["database"] == "postgresql":
        postgres.require_server()
    elif answers["database"] == "mariadb":
        mariadb.require_server()
    project = render(tmp_path / "my-service", **answers)
    tool = uv()
    if not (project / "uv.lock").exists():
        run(tool, "lock", cwd=project)  # Projects carry uv.lock once the copy-time task does it.
    if not (project / ".git").exists():
        run("git", "init", "--quiet", cwd=project)
    run("git", "add", "--all", cwd=project)
    job = load_workflow(project)["jobs"]["test"]

    with database_for(answers["database"]) as overrides:
        ran = run_job(project, job, overrides)
    server = answers["database"] != "sqlite"  # Schema changes beside a running service.
    assert ran == [
        "Install the locked dependencies",
        "Lint",
        "Check formatting",
        "Type-check",
        *(["Refuse migrations that lock a table for long"] if server else []),
        "Test",
        "Migrate an empty database and compare it with the models",
    ]

    env = {"PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    hooks = run(str(BIN / "pre-commit"), "run", "--all-files", cwd=project, env=env).stdout
    assert re.findall(r"^(.+?)\.{3,}Passed$", hooks, re.MULTILINE) == [
        "ruff check --fix",
        "ruff format",
        "mypy --strict",
        *(["migration lint (migrations/lint.py)"] if server else []),
    ], hooks
    # Neither the job nor the hooks changed a file of the fresh project.
    run("git", "diff", "--exit-code", cwd=project)
