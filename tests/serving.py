"""Serve a generated project under uvicorn, and talk to it over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.rendering import uv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def request(method: str, url: str, body: object = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    call = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@contextmanager
def serving(
    project: Path,
    env: dict[str, str],
    *,
    production: bool = False,
    ready: str = "/health",
    log: Path | None = None,
) -> Iterator[str]:
    """Run the app until the block ends; yield its base URL once `ready` answers 200.

    By default in one uvicorn process, the way its README says; with `production`, as
    `python -m my_service`, the production server, which takes its address and every other
    setting (WEB_CONCURRENCY workers included) from `env`. Both write their output to `log`
    (`project/uvicorn.log` unless given).
    """
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | env
    if production:
        environment |= {"HOST": "127.0.0.1", "PORT": str(port)}
        command = [uv(), "run", "--no-sync", "python", "-m", "my_service"]
    else:
        # uvicorn would take its worker count from WEB_CONCURRENCY too: one, whatever `env` says.
        app = ("my_service.main:app", "--port", str(port), "--workers", "1")
        command = [uv(), "run", "--no-sync", "uvicorn", *app]
    log = log or project / "uvicorn.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            command, cwd=project, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + ready, timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the app did not start:\n{log.read_text()}") from None
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
