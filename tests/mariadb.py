"""The MariaDB server the matrix tests use, and throwaway databases on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

SERVER_URL = os.environ.get("TEST_MARIADB_URL", "mariadb://tests:tests@127.0.0.1:3306/mysql")
"""A server account that may create and drop databases and users (the generated tests make a
read-only account), and kill its own sessions."""

SETUP = (
    "CREATE USER IF NOT EXISTS 'tests'@'%' IDENTIFIED BY 'tests';"
    " GRANT ALL PRIVILEGES ON *.* TO 'tests'@'%' WITH GRANT OPTION;"
    " CREATE USER IF NOT EXISTS 'tests'@'localhost' IDENTIFIED BY 'tests';"
    " GRANT ALL PRIVILEGES ON *.* TO 'tests'@'localhost' WITH GRANT OPTION;"
)
"""What `.ci/run` runs as root over the socket to make the account of `SERVER_URL`."""


def _client(sql: str, url: str = SERVER_URL) -> subprocess.CompletedProcess[str]:
    client = shutil.which("mariadb")
    if client is None:
        raise FileNotFoundError("mariadb")
    parsed = urlsplit(url)
    command = [
        client,
        f"--host={parsed.hostname or '127.0.0.1'}",
        f"--port={parsed.port or 3306}",
        f"--user={parsed.username or ''}",
        "--batch",
        "--skip-column-names",
        f"--execute={sql}",
    ]
    env = os.environ | {"MYSQL_PWD": parsed.password or ""}
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False, env=env)


def _create_account() -> None:
    """Make the tests' account as root over the socket, where that is allowed (a CI machine)."""
    client = shutil.which("mariadb")
    if client is None or os.geteuid() != 0:
        return
    subprocess.run(
        [client, "--user=root", f"--execute={SETUP}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def require_server() -> None:
    """Skip the calling test without a MariaDB server, except in CI, where that fails."""
    try:
        result = _client("SELECT 1")
        if result.returncode:
            _create_account()
            result = _client("SELECT 1")
        problem = result.stderr.strip() if result.returncode else ""
    except (FileNotFoundError, subprocess.TimeoutExpired) as error:
        problem = repr(error)
    if problem:
        message = f"no MariaDB server at {SERVER_URL}: {problem}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must test MariaDB; it never skips it)")
        pytest.skip(message)


@contextmanager
def throwaway_database() -> Iterator[str]:
    """Create an empty database and yield its URL; drop it afterwards."""
    name = f"template_test_{uuid.uuid4().hex[:12]}"
    result = _client(f"CREATE DATABASE `{name}`")
    assert result.returncode == 0, result.stderr
    try:
        yield SERVER_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _client(f"DROP DATABASE IF EXISTS `{name}`")
