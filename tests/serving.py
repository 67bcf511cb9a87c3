"""Serve a generated project under uvicorn, and talk to it over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.rendering import uv

HOST = "127.0.0.1"


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


def poll_until(done: Callable[[], bool], seconds: float, what: str) -> float:
    """Call `done` every 50 ms until it is true; return how long that took, fail after `seconds`."""
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - started


@dataclass(frozen=True)
class Server:
    """A server process of a generated project, on `HOST`:`port`, its output going to `log`."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @contextmanager
    def connect(self, timeout: float = 30) -> Iterator[http.client.HTTPConnection]:
        """A keep-alive connection to the server, closed when the block ends.

        http.client opens it on the first request, and again after the server closed it.
        """
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            yield connection
        finally:
            connection.close()

    def output(self, since: int = 0) -> str:
        """What the process printed, from byte offset `since` (see `mark`)."""
        with self.log.open("rb") as file:
            file.seek(since)
            return file.read().decode()

    def mark(self) -> int:
        """The offset in the output from which `output(since=...)` reads what comes next."""
        return self.log.stat().st_size

    def peak_memory(self) -> int:
        """The largest resident set the process has had, in bytes (VmHWM)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        peak = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(peak.split()[1]) * 1024  # "VmHWM:   23652 kB"

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for the process to exit; return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def environment(**variables: str) -> dict[str, str]:
    """This process's environment for a project's command, plus `variables`.

    Without VIRTUAL_ENV: the test runner's environment is not the project's.
    """
    return {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | variables


def venv_program(project: Path, name: str) -> str:
    """A program installed in the project's own environment (`uv sync` made it)."""
    return str(project / ".venv" / "bin" / name)


@contextmanager
def production_server(
    project: Path, env: dict[str, str], open_files: int | None = None
) -> Iterator[Server]:
    """Serve `project` the way it runs in production, `python -m my_service`, until the block ends.

    The app reads HOST and PORT (a free port) from the environment, like every other setting.
    `open_files`: the process's limit on file descriptors (soft and hard), as `ulimit -n` sets it.
    The block starts once `/health/live` answers, whatever state the database is in.
    """

    def limit_open_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    port = free_port()
    log = project / f"server-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            (venv_program(project, "python"), "-m", "my_service"),
            cwd=project,
            env=environment(HOST=HOST, PORT=str(port)) | env,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=limit_open_files,
        )
    server = Server(process, port, log)

    def answering() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{server.output()}")
        try:
            with urllib.request.urlopen(server.base + "/health/live", timeout=2):
                return True
        except (urllib.error.URLError, ConnectionError):
            return False

    try:
        poll_until(answering, 60, f"the server to answer on port {port}")
        yield server
    finally:
        server.stop()
