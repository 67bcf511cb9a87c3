"""Every combination of answers, generated and put through its own tool chain on a real database.

Each project is installed from its own pyproject.toml into its own environment (uv), then must pass
ruff, ruff format --check, mypy --strict and its own pytest suite, migrate up with the Alembic CLI,
serve requests under uvicorn (fuzzed by schemathesis from its own OpenAPI schema), show no drift
under `alembic check`, and migrate down again.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import mariadb, postgres
from tests.rendering import (
    COMBINATIONS,
    TRACING_COMBINATIONS,
    check_project,
    combination_id,
    render,
    run,
    uv,
)
from tests.serving import request, serving

pytestmark = pytest.mark.matrix


@contextmanager
def database_for(project: Path, database: str) -> Iterator[str]:
    if database == "postgresql":
        with postgres.throwaway_database() as url:
            yield url
    elif database == "mariadb":
        with mariadb.throwaway_database() as url:
            yield url
    else:
        yield f"sqlite:///{project / 'cli.db'}"


def fuzz(base: str, project: Path) -> None:
    """Property-based requests generated from the app's own OpenAPI schema (schemathesis).

    Whatever the input, no answer may be a server error, and every answer must match the schema.
    Bounded in examples per operation and in time.
    """
    schemathesis = Path(sys.executable).parent / "schemathesis"
    run(
        str(schemathesis),
        "run",
        f"{base}/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        "25",
        "--max-time",
        "15",
        "--workers",
        "1",
        cwd=project,
        timeout=120,
    )


LEAVES_A_FAILED_FUTURE = """\
import asyncio


async def test_leaves_a_failed_future() -> None:
    asyncio.get_running_loop().create_future().set_exception(ConnectionError("left open"))
"""


def assert_suite_fails_on_what_asyncio_reports(project: Path) -> None:
    """A test that passes but leaves a future's exception unretrieved fails the run."""
    test = project / "tests" / "test_left_open.py"
    test.write_text(LEAVES_A_FAILED_FUTURE)
    try:
        result = subprocess.run(
            (uv(), "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider", str(test)),
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        test.unlink()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "asyncio reported during this test" in result.stdout, result.stdout
    assert "left open" in result.stdout, result.stdout


@pytest.mark.parametrize("answers", COMBINATIONS + TRACING_COMBINATIONS, ids=combination_id)
def test_generated_project_passes_its_own_tool_chain(
    tmp_path: Path, answers: dict[str, str]
) -> None:
    if answers["database"] == "postgresql":
        postgres.require_server()
    elif answers["database"] == "mariadb":
        mariadb.require_server()
    project = render(tmp_path / "my-service", **answers)
    tool = uv()

    check_project(project)
    if answers["sqlalchemy_mode"] == "async":
        assert_suite_fails_on_what_asyncio_reports(project)

    with database_for(project, answers["database"]) as url:
        env = {"DATABASE_URL": url}
        run(tool, "run", "--no-sync", "alembic", "upgrade", "head", cwd=project, env=env)
        with serving(project, env) as base:
            assert request("GET", base + "/health") == (200, {"status": "ok"})
            status, user = request("POST", base + "/users", {"email": "a@example.com", "name": "A"})
            assert status == 201, user
            assert isinstance(user, dict)
            assert request("GET", f"{base}/users/{user['id']}") == (200, user)
            status, body = request("POST", base + "/users", {"email": "a@example.com", "name": "B"})
            assert status == 409, body
            fuzz(base, project)
        run(tool, "run", "--no-sync", "alembic", "check", cwd=project, env=env)
        run(tool, "run", "--no-sync", "alembic", "downgrade", "base", cwd=project, env=env)
