"""The MariaDB server the matrix tests use, and throwaway databases on it.

bench/ uses it too, from a Python with only the standard library: the imports of pytest's and
copier's modules are in the functions that need them."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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


def client(sql: str, url: str = SERVER_URL) -> subprocess.CompletedProcess[str]:
    program = shutil.which("mariadb")
    if program is None:
        raise FileNotFoundError("mariadb")
    parsed = urlsplit(url)
    command = [
        program,
        f"--host={parsed.hostname or '127.0.0.1'}",
        f"--port={parsed.port or 3306}",
        f"--user={parsed.username or ''}",
        "--batch",
        "--skip-column-names",
        f"--execute={sql}",
    ]
    env = os.environ | {"MYSQL_PWD": parsed.password or ""}
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False, env=env)


def create_account() -> None:
    """Make the tests' account as root over the socket, where that is allowed (a CI machine)."""
    program = shutil.which("mariadb")
    if program is None or os.geteuid() != 0:
        return
    subprocess.run(
        [program, "--user=root", f"--execute={SETUP}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def require_server() -> None:
    """Skip the calling test without a MariaDB server, except in CI, where that fails."""
    from tests.servers import skip_unless_ci

    try:
        result = client("SELECT 1")
        if result.returncode:
            create_account()
            result = client("SELECT 1")
        problem = result.stderr.strip() if result.returncode else ""
    except (FileNotFoundError, subprocess.TimeoutExpired) as error:
        problem = repr(error)
    skip_unless_ci("MariaDB", SERVER_URL, problem)


@contextmanager
def throwaway_database() -> Iterator[str]:
    """Create an empty database and yield its URL; drop it afterwards."""
    name = f"template_test_{uuid.uuid4().hex[:12]}"
    result = client(f"CREATE DATABASE `{name}`")
    assert result.returncode == 0, result.stderr
    try:
        yield SERVER_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        client(f"DROP DATABASE IF EXISTS `{name}`")


@contextmanager
def throwaway_account(url: str) -> Iterator[str]:
    """Yield `url` as an account of its own that may do anything in that database and nothing
    elsewhere; drop the account afterwards.

    The account a generated project's README has created, and the one the `mariadb` image makes
    for `MARIADB_USER` (whose grant escapes `_`, a wildcard in a database name, as this does).
    """
    parsed = urlsplit(url)
    database = parsed.path.lstrip("/")
    name, password = f"template_test_{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    escaped = database.replace("_", "\\_")
    created = client(
        f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}';"
        f" GRANT ALL ON `{escaped}`.* TO '{name}'@'%'"
    )
    assert created.returncode == 0, created.stderr
    try:
        netloc = f"{name}:{password}@{parsed.hostname}:{parsed.port or 3306}"
        yield urlunsplit((parsed.scheme, netloc, parsed.path, "", ""))
    finally:
        client(f"DROP USER IF EXISTS '{name}'@'%'")


def query(url: str, sql: str) -> str:
    """Run `sql` on the database at `url`; its rows, tab-separated, one a line."""
    database = url.rsplit("/", 1)[1]
    result = client(f"USE `{database}`; {sql}", url=url)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@contextmanager
def transaction_left_open(url: str, sql: str) -> Iterator[str]:
    """Run `sql` in a transaction (the mariadb client) that stays open, holding its locks, until
    the block ends; the block starts once `sql` has run, and gets the session's connection id.
    Closing it is a ROLLBACK sent through the client's input."""
    parsed = urlsplit(url)
    holder = subprocess.Popen(
        [
            shutil.which("mariadb") or "mariadb",
            f"--host={parsed.hostname or '127.0.0.1'}",
            f"--port={parsed.port or 3306}",
            f"--user={parsed.username or ''}",
            f"--database={parsed.path.lstrip('/')}",
            "--batch",
            "--skip-column-names",
            "--unbuffered",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"MYSQL_PWD": parsed.password or ""},
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    holder.stdin.write(f"BEGIN;\n{sql};\nSELECT 'holding', CONNECTION_ID();\n")
    holder.stdin.flush()
    while (line := holder.stdout.readline()) and not line.startswith("holding\t"):
        pass
    if not line:
        raise AssertionError(f"mariadb did not run {sql!r}: {holder.communicate()[1]}")
    try:
        yield line.split()[1]
    finally:
        if holder.poll() is None:
            holder.communicate("ROLLBACK;\n", timeout=30)


class PrivateServer:
    """A MariaDB server of the test's own (its own data folder, port and socket), which the test
    may stop and start; any account connects (`--skip-grant-tables`), as `root`."""

    def __init__(self, folder: Path, port: int, options: tuple[str, ...] = ()) -> None:
        self.folder = folder
        self.port = port
        self.options = options
        """More of the server's command-line options, e.g. `--max-connections=20`."""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mariadb://root@127.0.0.1:{self.port}/app"

    def start(self) -> None:
        server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        with (self.folder / "server.log").open("ab") as log:
            # The server keeps its own copy of the log's descriptor.
            self.process = subprocess.Popen(
                [
                    server,
                    "--no-defaults",
                    f"--datadir={self.folder / 'data'}",
                    f"--socket={self.folder / 'socket'}",
                    f"--pid-file={self.folder / 'pid'}",
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    "--skip-grant-tables",
                    "--innodb-buffer-pool-size=16M",
                    *self.options,
                    *(["--user=root"] if os.geteuid() == 0 else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while client("SELECT 1", url=f"mariadb://root@127.0.0.1:{self.port}/").returncode:
            if self.process.poll() is not None or time.monotonic() > deadline:
                log_text = (self.folder / "server.log").read_text(errors="replace")
                raise AssertionError(f"the private MariaDB did not start:\n{log_text[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)
        self.process = None


@contextmanager
def private_server(*options: str) -> Iterator[PrivateServer]:
    """A fresh running server with an empty database `app` and the command-line `options`
    (see `PrivateServer`)."""
    from tests.serving import free_port

    install = shutil.which("mariadb-install-db")
    if install is None:
        raise FileNotFoundError("mariadb-install-db")
    with tempfile.TemporaryDirectory() as name:
        server = PrivateServer(Path(name), free_port(), options)
        result = subprocess.run(
            [
                install,
                "--no-defaults",
                f"--datadir={server.folder / 'data'}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *(["--user=root"] if os.geteuid() == 0 else []),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        server.start()
        try:
            created = client("CREATE DATABASE app", url=f"mariadb://root@127.0.0.1:{server.port}/")
            assert created.returncode == 0, created.stderr
            yield server
        finally:
            server.stop()
