"""Paths, the database servers, running commands, and small helpers every module uses."""

from __future__ import annotations

import json
import math
import shlex
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
WORK = BENCH / ".work"
COPIER = REPO / ".venv" / "bin" / "copier"

PG_HOST = "127.0.0.1"  # loopback only: the benchmark never sends traffic anywhere else
PG_PORT = 5432
PG_USER = "postgres"

# The MariaDB server and account the template's tests use (tests/mariadb.py: TEST_MARIADB_URL, by
# default an account `tests` on 127.0.0.1:3306, made as root over the socket where that is allowed).
sys.path.append(str(REPO))
from tests import mariadb as mariadb_server  # noqa: E402


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(
    cmd: list[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    quiet: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (bounded by `timeout`); raise with its output if it fails."""
    result = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        text=True,
        timeout=timeout,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
    )
    if result.returncode != 0:
        output = (result.stdout or "")[-4000:]
        raise SystemExit(f"command failed ({result.returncode}): {shlex.join(cmd)}\n{output}")
    return result


def psql(sql: str, database: str = "postgres") -> str:
    cmd = [
        "psql",
        "-h",
        PG_HOST,
        "-p",
        str(PG_PORT),
        "-U",
        PG_USER,
        "-d",
        database,
        "-v",
        "ON_ERROR_STOP=1",
        "-Atq",
        "-c",
        sql,
    ]
    return run(cmd, timeout=120).stdout.strip()


def mariadb(sql: str, database: str = "") -> str:
    """Run SQL on the MariaDB server (in `database`, if given) with the tests' account; its rows,
    tab-separated, one a line."""
    result = mariadb_server.client(f"USE `{database}`; {sql}" if database else sql)
    if result.returncode != 0:
        raise SystemExit(f"mariadb failed ({result.returncode}): {sql[:300]}\n{result.stderr}")
    return result.stdout.strip()


def mariadb_ready() -> None:
    """Fail early without the MariaDB server or the tests' account on it (made where it can be)."""
    if mariadb_server.client("SELECT 1").returncode != 0:
        mariadb_server.create_account()
    mariadb("SELECT 1")


def mariadb_url(database: str) -> str:
    return mariadb_server.SERVER_URL.rsplit("/", 1)[0] + f"/{database}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: dict | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(value: float, reference: float) -> float:
    """value ÷ reference; NaN where the reference is no figure to compare with (none, 0 or ∞)."""
    return value / reference if math.isfinite(reference) and reference > 0 else math.nan
