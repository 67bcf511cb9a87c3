"""Private PostgreSQL topologies for tests: a server with SSL, a streaming replica, PgBouncer.

Each piece lives in a temporary folder, listens on a free port of 127.0.0.1, runs as the postgres
user when the tests run as root (PostgreSQL and PgBouncer refuse root), and is stopped and removed
when its ``with`` block ends, whether the test passed or not. Servers use trust authentication and
``fsync = off``: they hold nothing worth keeping and start in about a second.

    with private_server(ssl="required") as server:
        psql(server.url_with(sslmode="verify-full", sslrootcert=str(server.root_cert)), "SELECT 1")

    with streaming_pair() as pair:
        pair.primary.query("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        pair.wait_for_replay()
        pair.replica.query("SELECT x FROM t")  # "1"; a write here raises PsqlError, SQLSTATE 25006

    with pgbouncer(postgres.SERVER_URL, pool_size=2) as bouncer:
        psql(bouncer.url, "SELECT 1")
        bouncer.show("SERVERS")  # one dict per server connection PgBouncer holds

PgBouncer runs in transaction mode. Its fallback entry (``* =``) takes any database name in a
client's URL to the database of that name on the server, throwaway databases included. It holds at
most ``pool_size`` server connections (``default_pool_size`` and ``max_db_connections``), accepts
up to ``max_client_conn`` clients and speaks TLS to the server when the server offers it
(``server_tls_sslmode = prefer``).

Startup parameters: PgBouncer 1.18 refuses a client whose startup packet carries a parameter it
does not track itself (it tracks client_encoding, DateStyle, TimeZone, standard_conforming_strings
and application_name). The fixture ignores ``extra_float_digits`` only, which drivers such as JDBC
send unasked. It does not ignore ``options`` (libpq's and psycopg2's ``options=-c ...``) nor
asyncpg's ``server_settings``: ignoring drops the setting silently, and a service behind a pooler
must not rely on per-connection settings sent at startup (a timeout, for example) at all. A client
that sends one is refused with "unsupported startup parameter", which a test sees at once.
Checked: psycopg2, psycopg 3, asyncpg, and SQLAlchemy engines on psycopg2 and asyncpg connect
through it with their defaults.

A missing program (PostgreSQL's server binaries, psql, openssl, pgbouncer) skips the test on a
laptop and fails it in CI (``CI`` set); ``.ci/run`` installs them.
"""

from __future__ import annotations

import csv
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

import pytest

from tests.serving import free_port

HOST = "127.0.0.1"
SUPERUSER = "postgres"  # initdb's superuser, and the system user servers run as under root

SslMode = Literal["off", "on", "required"]


class PsqlError(Exception):
    """psql failed: the server refused the statement (`sqlstate` says why) or the connection."""

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class ClusterError(RuntimeError):
    """A server or pooler command failed; the message carries its output and the server's log."""


def psql(url: str, sql: str, *, timeout: float = 30) -> str:
    """Run `sql` through psql against `url`; return the rows, unaligned, `|` between columns."""
    return _psql(url, sql, "--no-align", "--tuples-only", timeout=timeout)


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test for want of `reason` on a laptop; fail it in CI, which installs it."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must have it: .ci/run installs it)")
    pytest.skip(reason)


class PrivateServer:
    """A PostgreSQL cluster of its own in `folder`, on 127.0.0.1:`port`, trust authentication."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.data = folder / "data"
        self.log = folder / "server.log"
        # With SSL: the self-signed certificate the server presents, the `sslrootcert` to verify it.
        self.root_cert: Path | None = None

    @property
    def url(self) -> str:
        """postgresql://postgres@127.0.0.1:<port>/postgres"""
        return self.url_with()

    def url_with(self, host: str = HOST, **parameters: str) -> str:
        """This server's URL with libpq parameters such as `sslmode`; `host` may be localhost."""
        query = "?" + urllib.parse.urlencode(parameters, safe="/") if parameters else ""
        return f"postgresql://{SUPERUSER}@{host}:{self.port}/postgres{query}"

    def query(self, sql: str) -> str:
        """`psql(self.url, sql)`."""
        return psql(self.url, sql)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.folder}"
        self._pg_ctl("-o", options, "-l", str(self.log), "start")

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are cut, not waited for)."""
        self._pg_ctl("-m", "fast", "stop")

    def running(self) -> bool:
        """Whether the server is up (its postmaster.pid exists)."""
        return (self.data / "postmaster.pid").exists()

    def _pg_ctl(self, *arguments: str) -> None:
        _as_server_user(_server_program("pg_ctl"), "-D", str(self.data), "-w", *arguments, log=self)


@dataclass(frozen=True)
class StreamingPair:
    """A primary and a hot standby streaming from it."""

    primary: PrivateServer
    replica: PrivateServer

    def wait_for_replay(self, timeout: float = 30) -> None:
        """Wait until the replica has replayed every write the primary has made so far."""
        lsn = self.primary.query("SELECT pg_current_wal_lsn()")
        replayed = f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
        _wait_until(lambda: self.replica.query(replayed) == "t", timeout, f"replay of {lsn}")


@dataclass(frozen=True)
class PgBouncer:
    """PgBouncer in transaction mode; `url` reaches the database the fronted server's URL named."""

    url: str
    admin_url: str  # The admin console (database pgbouncer): SHOW POOLS, SHOW SERVERS...
    port: int
    pool_size: int
    log: Path

    def show(self, what: str) -> list[dict[str, str]]:
        """`SHOW <what>` on the admin console, one dict per row (e.g. `show("POOLS")`)."""
        output = _psql(self.admin_url, f"SHOW {what}", "--csv")
        return list(csv.DictReader(output.splitlines()))


@contextmanager
def private_server(
    *, ssl: SslMode = "off", settings: Mapping[str, str] | None = None
) -> Iterator[PrivateServer]:
    """A fresh running server; `settings` go to postgresql.conf.

    `ssl="on"` serves SSL with a self-signed certificate for 127.0.0.1 and localhost (see
    `root_cert`); `ssl="required"` also refuses TCP clients that do not use it.
    """
    with _temporary_folder() as folder:
        server = PrivateServer(folder, free_port())
        _as_server_user(
            _server_program("initdb"),
            *("-D", str(server.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"),
        )
        if ssl != "off":
            server.root_cert = _self_signed_certificate(server.data)
        _configure(server.data, ssl, settings or {})
        with _running(server):
            yield server


@contextmanager
def streaming_pair(
    *, ssl: SslMode = "off", settings: Mapping[str, str] | None = None
) -> Iterator[StreamingPair]:
    """A primary (`private_server(ssl=..., settings=...)`) and a replica already streaming from it.

    The replica is a `pg_basebackup -R` copy of the primary, so it shares its configuration,
    certificate and pg_hba.conf.
    """
    with private_server(ssl=ssl, settings=settings) as primary, _temporary_folder() as folder:
        replica = PrivateServer(folder, free_port())
        _as_server_user(
            _server_program("pg_basebackup"),
            *("-D", str(replica.data), "-d", f"host={HOST} port={primary.port} user={SUPERUSER}"),
            *("--write-recovery-conf", "--checkpoint=fast", "--no-sync"),
        )
        replica.root_cert = primary.root_cert
        with _running(replica):
            streaming = "SELECT status FROM pg_stat_wal_receiver"
            try:
                _wait_until(lambda: replica.query(streaming) == "streaming", 30, "streaming")
            except TimeoutError as error:
                raise ClusterError(f"{error}; replica's log:\n{replica.log.read_text()}") from error
            yield StreamingPair(primary, replica)


@contextmanager
def pgbouncer(
    server_url: str,
    *,
    pool_size: int,
    max_client_conn: int = 1000,
    ignore_startup_parameters: Sequence[str] = ("extra_float_digits",),
) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the server `server_url` points to.

    It lets in the user of `server_url` without a password (trust) and logs in to the server as
    that user, with the URL's password if it has one.
    """
    program = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if program is None:
        unavailable("pgbouncer (Debian package pgbouncer)")
    server = urllib.parse.urlsplit(server_url)
    user = urllib.parse.unquote(server.username or SUPERUSER)
    password = urllib.parse.unquote(server.password or "")
    database = server.path.lstrip("/") or user
    with _temporary_folder() as folder:
        port = free_port()
        (folder / "users.txt").write_text(f'"{user}" "{password}"\n')
        (folder / "pgbouncer.ini").write_text(
            _PGBOUNCER_INI.format(
                host=server.hostname or HOST,
                server_port=server.port or 5432,
                port=port,
                folder=folder,
                user=user,
                pool_size=pool_size,
                max_client_conn=max_client_conn,
                ignore=",".join(ignore_startup_parameters),
            )
        )
        _give_to_server_user(folder / "users.txt", folder / "pgbouncer.ini")
        bouncer = PgBouncer(
            url=f"postgresql://{user}@{HOST}:{port}/{database}",
            admin_url=f"postgresql://{user}@{HOST}:{port}/pgbouncer",
            port=port,
            pool_size=pool_size,
            log=folder / "pgbouncer.log",
        )
        with bouncer.log.open("w") as log:
            process = subprocess.Popen(
                [program, str(folder / "pgbouncer.ini")],
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                **_server_user(),
            )
        try:
            _wait_until(lambda: _listening(port, process, bouncer.log), 30, "PgBouncer to listen")
            yield bouncer
        finally:
            # SIGTERM is an immediate shutdown in 1.18; from 1.23 on it waits for clients, which a
            # failed test may have left connected: hence the kill.
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# Trust authentication needs the user in auth_file (its password, if any, logs in to the server).
# server_login_retry: after an outage, retry the server within a second rather than the default 15.
_PGBOUNCER_INI = """\
[databases]
* = host={host} port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
admin_users = {user}
stats_users = {user}
pool_mode = transaction
default_pool_size = {pool_size}
max_db_connections = {pool_size}
max_client_conn = {max_client_conn}
ignore_startup_parameters = {ignore}
server_tls_sslmode = prefer
server_login_retry = 1
log_connections = 0
log_disconnections = 0
"""


def _configure(data: Path, ssl: SslMode, settings: Mapping[str, str]) -> None:
    """Append the test settings to postgresql.conf and replace pg_hba.conf."""
    conf = {
        "listen_addresses": HOST,
        "fsync": "off",  # Throw-away data: no fsync, and startup within a second.
        "wal_level": "replica",  # What a streaming replica needs (PostgreSQL 15's defaults).
        "max_wal_senders": "4",
        "hot_standby": "on",
        "ssl": "off" if ssl == "off" else "on",
        **settings,
    }
    with (data / "postgresql.conf").open("a") as file:
        for name, value in conf.items():
            quoted = value.replace("'", "''")
            file.write(f"{name} = '{quoted}'\n")
    # "all" does not match replication connections: they get lines of their own.
    tcp = (
        ["hostssl {} all 127.0.0.1/32 trust", "hostnossl {} all 127.0.0.1/32 reject"]
        if ssl == "required"
        else ["host {} all 127.0.0.1/32 trust"]
    )
    lines = ["local all all trust"] + [
        line.format(database) for database in ("all", "replication") for line in tcp
    ]
    (data / "pg_hba.conf").write_text("\n".join(lines) + "\n")


def _self_signed_certificate(data: Path) -> Path:
    """Write server.crt and server.key (mode 0600) for 127.0.0.1 and localhost into `data`."""
    openssl = shutil.which("openssl") or unavailable("openssl (Debian package openssl)")
    certificate, key = data / "server.crt", data / "server.key"
    _checked(
        *(openssl, "req", "-x509", "-nodes", "-days", "7", "-subj", "/CN=localhost"),
        # An EC key is made in milliseconds; RSA takes up to a second.
        *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
        *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        *("-keyout", str(key), "-out", str(certificate)),
    )
    key.chmod(0o600)  # The server refuses a key others can read.
    _give_to_server_user(certificate, key)
    return certificate


@contextmanager
def _running(server: PrivateServer) -> Iterator[None]:
    server.start()
    try:
        yield
    finally:
        if server.running():  # A test may have stopped it, or failed while it was down.
            server.stop()


@contextmanager
def _temporary_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="pgcluster-"))
    try:
        _give_to_server_user(folder)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _server_user() -> dict[str, Any]:
    """`subprocess` arguments that run a command as the postgres user when we are root."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        unavailable(f"a {SUPERUSER} system user to run the servers as (we are root)")
    return {"user": SUPERUSER, "group": SUPERUSER, "extra_groups": []}


def _give_to_server_user(*paths: Path) -> None:
    if _server_user():
        for path in paths:
            shutil.chown(path, SUPERUSER, SUPERUSER)


def _as_server_user(*command: str, log: PrivateServer | None = None) -> None:
    user = _server_user()
    if not user:
        _checked(*command, log=log)
        return
    # pg_basebackup -R names the user's ~/.pgpass in the replica's settings: not root's.
    home = {"HOME": pwd.getpwnam(SUPERUSER).pw_dir}
    _checked(*command, log=log, env=os.environ | home, **user)


def _checked(*command: str, log: PrivateServer | None = None, **options: Any) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, cwd="/", **options
    )
    if result.returncode != 0:
        message = f"{shlex.join(command)} exited with {result.returncode}:\n"
        message += result.stdout + result.stderr
        if log and log.log.exists():
            message += f"server log:\n{log.log.read_text()}"
        raise ClusterError(message)


def _server_program(name: str) -> str:
    """`name` from the newest PostgreSQL server installed (Debian keeps them out of PATH)."""
    folders = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda folder: [int(part) for part in re.findall(r"\d+", folder.parent.name)],
    )
    found = [str(folder / name) for folder in folders if (folder / name).exists()]
    program = found[-1] if found else shutil.which(name)
    return program or unavailable(f"{name} (PostgreSQL's server programs)")


def _psql(url: str, sql: str, *output: str, timeout: float = 30) -> str:
    program = shutil.which("psql") or unavailable("psql (PostgreSQL's client programs)")
    # With VERBOSITY=verbose an error from the server reads "ERROR:  25006: cannot ...".
    settings = ("--set=ON_ERROR_STOP=1", "--set=VERBOSITY=verbose")
    result = subprocess.run(
        [program, url, "--no-psqlrc", "--quiet", *settings, *output, "--command", sql],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        code = re.search(r"(?:ERROR|FATAL):\s+([0-9A-Z]{5}):", result.stderr)
        raise PsqlError(result.stderr.strip(), code[1] if code else None)
    return result.stdout.strip()


def _listening(port: int, process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        raise ClusterError(f"PgBouncer exited with {process.returncode}:\n{log.read_text()}")
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


def _wait_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(0.05)
