"""The PostgreSQL server the matrix tests use, and throwaway databases on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from tests.servers import skip_unless_ci

SERVER_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _psql(sql: str, url: str = SERVER_URL) -> subprocess.CompletedProcess[str]:
    psql = shutil.which("psql")
    if psql is None:
        raise FileNotFoundError("psql")
    return subprocess.run(
        [psql, url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
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
    skip_unless_ci("PostgreSQL", SERVER_URL, problem)


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


@contextmanager
def transaction_left_open(url: str, sql: str) -> Iterator[str]:
    """Run `sql` in a transaction (psql) that stays open, holding its locks, until the block ends.

    The block starts once `sql` has run, and gets the session's pid. psql reads its commands from
    a pipe: closing the transaction is a ROLLBACK sent through it, so the server never keeps a lock
    for a client that is gone.
    """
    name = f"open-transaction-{uuid.uuid4().hex[:8]}"
    holder = subprocess.Popen(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-qAt"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PGAPPNAME": name},
    )
    assert holder.stdin is not None
    holder.stdin.write(f"BEGIN;\n{sql};\n")
    holder.stdin.flush()
    waiting = f"SELECT pid FROM pg_stat_activity WHERE application_name = '{name}'"
    waiting += " AND state = 'idle in transaction'"
    deadline = time.monotonic() + 30
    try:
        while not (pid := _psql(waiting, url).stdout.strip()):
            if holder.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"psql did not run {sql!r}: {holder.communicate()[1]}")
            time.sleep(0.05)
        yield pid
    finally:
        if holder.poll() is None:
            holder.communicate("ROLLBACK;\n", timeout=30)
