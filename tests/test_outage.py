"""A generated async PostgreSQL service rides out a database restart without being restarted itself.

The test runs a PostgreSQL server of its own (initdb into a temporary folder, a free port), so it
can stop and start it while the app, under uvicorn, keeps serving.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.rendering import render, run, uv
from tests.serving import free_port, request, serving

pytestmark = pytest.mark.matrix


class PrivateServer:
    """A throw-away PostgreSQL cluster, run as the postgres user (the server refuses root)."""

    def __init__(self, folder: Path, port: int) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or [shutil.which("pg_ctl")]
        if not found[-1]:
            raise FileNotFoundError("pg_ctl (PostgreSQL server binaries)")
        self.bin = Path(str(found[-1])).parent
        self.folder = folder
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.folder / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.folder / "data"),
            "-o",
            options,
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"
        )


@contextmanager
def private_server() -> Iterator[PrivateServer]:
    folder = Path(tempfile.mkdtemp(prefix="pg-outage-"))
    try:
        server = PrivateServer(folder, free_port())
        server.init()
    except (FileNotFoundError, subprocess.CalledProcessError, KeyError) as error:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("CI"):
            raise
        pytest.skip(f"cannot run a private PostgreSQL server here: {error}")
    server.start()
    try:
        yield server
    finally:
        with suppress(subprocess.CalledProcessError):  # Already stopped by a failing test.
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def wait_for(predicate: Callable[[], bool], seconds: float) -> float:
    """Poll `predicate` until it is true; return how long that took."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.2)
    return time.monotonic() - started


def test_the_service_answers_503_while_the_database_is_down_and_recovers(tmp_path: Path) -> None:
    project = render(
        tmp_path / "my-service", database="postgresql", sqlalchemy_mode="async", primary_key="int"
    )
    tool = uv()
    run(tool, "sync", cwd=project)

    with private_server() as server:
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
