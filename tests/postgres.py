"""The PostgreSQL server the matrix tests use, and throwaway databases on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

SERVER_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _psql(sql: str) -> subprocess.CompletedProcess[str]:
    psql = shutil.which("psql")
    if psql is None:
        raise FileNotFoundError("psql")
    return subprocess.run(
        [psql, SERVER_URL, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def require_server() -> None:
    """Skip the calling test without a PostgreSQL server, except in CI, where that fails."""
    try:
        result = _psql("SELECT 1")
        problem = result.stderr.strip() if result.returncode else ""
    except (FileNotFoundError, subprocess.TimeoutExpired) as error:
        problem = repr(error)
    if problem:
        message = f"no PostgreSQL server at {SERVER_URL}: {problem}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must test PostgreSQL; it never skips it)")
        pytest.skip(message)


@contextmanager
def throwaway_database() -> Iterator[str]:
    """Create an empty database and yield its URL; drop it afterwards."""
    name = f"template_test_{uuid.uuid4().hex[:12]}"
    result = _psql(f'CREATE DATABASE "{name}"')
    assert result.returncode == 0, result.stderr
    try:
        yield SERVER_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
