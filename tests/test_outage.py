"""A generated service rides out a database restart without being restarted itself.

Each test runs a server of its own (PostgreSQL: initdb, MariaDB: mariadb-install-db, into a
temporary folder, on a free port), so it can stop and start it while the app, under uvicorn, keeps
serving.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import pytest

from tests import mariadb
from tests.pgcluster import private_server
from tests.rendering import render, run, uv
from tests.serving import request, serving

pytestmark = pytest.mark.matrix


def wait_for(predicate: Callable[[], bool], seconds: float) -> float:
    """Poll `predicate` until it is true; return how long that took."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.2)
    return time.monotonic() - started


class Restartable(Protocol):
    url: str

    def stop(self) -> None: ...

    def start(self) -> None: ...


SERVERS: dict[str, Callable[[], AbstractContextManager[Restartable]]] = {
    "postgresql": private_server,
    "mariadb": mariadb.private_server,
}


@pytest.mark.parametrize(
    ("database", "mode"), [("postgresql", "async"), ("mariadb", "async"), ("mariadb", "sync")]
)
def test_the_service_answers_503_while_the_database_is_down_and_recovers(
    tmp_path: Path, database: str, mode: str
) -> None:
    project = render(
        tmp_path / "my-service", database=database, sqlalchemy_mode=mode, primary_key="int"
    )
    tool = uv()
    run(tool, "sync", cwd=project)

    with SERVERS[database]() as server:
        env = {"DATABASE_URL": server.url}
        run(tool, "run", "--no-sync", "alembic", "upgrade", "head", cwd=project, env=env)
        with serving(project, env) as base:
            status, user = request("POST", base + "/users", {"email": "a@example.com", "name": "A"})
            assert status == 201, user

            server.stop()
            started = time.monotonic()
            status, body = request("GET", base + "/health")
            assert status == 503, body
            assert time.monotonic() - started < 6, "an outage is reported within seconds"
            status, body = request("GET", base + "/users")
            assert status == 503, body
            assert isinstance(body, dict)
            assert body["detail"]

            server.start()
            wait_for(lambda: request("GET", base + "/health")[0] == 200, seconds=30)
            status, users = request("GET", base + "/users")
            assert status == 200
            assert isinstance(users, list)
            assert [u["email"] for u in users] == ["a@example.com"]
