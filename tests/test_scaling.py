"""Generated PostgreSQL services scale out on PostgreSQL's own tools, proven on real ones.

Each driver the template offers (asyncpg and psycopg 3 for async projects, psycopg2 and psycopg 3
for sync ones) gets a project of its own, and every test below runs once per driver:

- PgBouncer in transaction mode (`DATABASE_POOLER=pgbouncer`): the project's own test suite passes
  through it, 30 s of concurrent load through it meet no error while the server never sees more
  connections than PgBouncer's pool, and without the setting the app fails through it.
- A streaming replica (`DATABASE_READ_URL`): reads go to it, writes to the primary, a read right
  after a write may miss it while the replica lags, and the standby's refusal of a write is a 503.
- The connection budget: the app warns at start-up when its workers' pools can ask a server for
  more connections than it takes.

The servers and poolers come from `tests.pgcluster`; the apps run as `python -m my_service`, the
production server. Each driver's tests form one xdist group, so its project, its PgBouncer and its
replication pair are made once.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import re
import string
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _pytest.mark.structures import ParameterSet

from tests import mariadb, postgres
from tests.pgcluster import (
    PgBouncer,
    StreamingPair,
    pgbouncer,
    psql,
    streaming_pair,
)
from tests.rendering import render, run, uv
from tests.serving import request, serving

pytestmark = pytest.mark.matrix

LOAD_SECONDS = 30
LOAD_THREADS = 32
BOUNCER_POOL_SIZE = 4
"""Server connections PgBouncer may hold per database: far fewer than the apps' pools together."""

# The generated suite's tests that cannot hold behind a pooler by nature, per driver (node ids
# relative to the project's tests/ folder; a parametrised test's id prefix deselects all its cases).
TIMEOUTS_SENT_AT_STARTUP = {
    # Behind PgBouncer the app sends no startup parameters (PgBouncer 1.18 refuses them), so the
    # server applies its own timeouts (the role's or database's settings; none here). The first
    # test reads them; the next two would wait forever for a timeout that never comes.
    "test_database.py::test_the_server_enforces_the_timeouts_on_every_connection",
    "test_database.py::test_a_request_blocked_on_a_row_lock_answers_503_within_lock_timeout",
    "test_database.py::test_a_statement_over_statement_timeout_is_cancelled_with_a_503",
    # It turns the database read-only with ALTER DATABASE and expects new connections to see it
    # after `engine.dispose()`; PgBouncer's server connections outlive the app's and keep writing.
    "test_database.py::test_a_read_only_database_answers_writes_with_503_and_serves_reads",
}
# PgBouncer answers an unknown role, and for asyncpg a missing database, itself, with its own
# SQLSTATE (08P01) and message instead of the server's 28000 and 3D000: still a 503 logged as an
# error, but the test looks for the server's code. libpq's drivers (psycopg2, psycopg 3) report no
# SQLSTATE for a failed connection, and PgBouncer passes the server's message about a missing
# database on.
SPEAKS_THE_PROTOCOL_ITSELF = {
    *TIMEOUTS_SENT_AT_STARTUP,
    "test_database.py::test_an_unknown_role_or_database_answers_503_and_is_logged_as_an_error",
}
THROUGH_LIBPQ = {
    *TIMEOUTS_SENT_AT_STARTUP,
    "test_database.py::test_an_unknown_role_or_database_answers_503_and_is_logged_as_an_error"
    "[change0-28000]",
}
BEYOND_A_POOLER = {
    "asyncpg": SPEAKS_THE_PROTOCOL_ITSELF,
    "psycopg2": THROUGH_LIBPQ,
    "psycopg": THROUGH_LIBPQ,
}
DESELECTED_CASES = {"asyncpg": 6, "psycopg2": 5, "psycopg": 5}  # One test has two cases.
PREPARES_STATEMENTS = {"asyncpg", "psycopg"}
"""The drivers that prepare statements on the server unless told not to (psycopg2 never does)."""


@dataclass(frozen=True)
class Project:
    path: Path
    mode: str  # "async" or "sync"
    driver: str  # "asyncpg", "psycopg2" or "psycopg"

    @property
    def name(self) -> str:
        return f"{self.driver}_{self.mode}"


def driver_param(mode: str, driver: str, key: str) -> ParameterSet:
    name = driver if driver != "psycopg" else f"psycopg-{mode}"
    return pytest.param(
        (mode, driver, key), id=name, marks=pytest.mark.xdist_group(f"scaling-{name}")
    )


@pytest.fixture(
    scope="module",
    params=[
        driver_param("async", "asyncpg", "uuid"),
        driver_param("sync", "psycopg2", "int"),
        driver_param("async", "psycopg", "int"),
        driver_param("sync", "psycopg", "uuid"),
    ],
)
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A generated PostgreSQL project for one driver, installed in its own environment."""
    mode, driver, key = request.param
    path = render(
        tmp_path_factory.mktemp(f"scaling-{driver}-{mode}") / "my-service",
        tasks=False,
        database="postgresql",
        sqlalchemy_mode=mode,
        driver=driver,
        primary_key=key,
    )
    run(uv(), "sync", cwd=path)
    return Project(path, mode, driver)


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the shared PostgreSQL server."""
    postgres.require_server()
    with pgbouncer(postgres.SERVER_URL, pool_size=BOUNCER_POOL_SIZE) as running:
        yield running


def on_database(url: str, database: str) -> str:
    """`url` with its path naming `database` instead."""
    return urllib.parse.urlsplit(url)._replace(path=f"/{database}").geturl()


def migrate(project: Project, url: str) -> None:
    env = {"DATABASE_URL": url}
    run(uv(), "run", "--no-sync", "alembic", "upgrade", "head", cwd=project.path, env=env)


@pytest.fixture(scope="module")
def database(project: Project) -> Iterator[str]:
    """The name of a throwaway database on the shared server, migrated by the project."""
    postgres.require_server()
    with postgres.throwaway_database() as url:
        migrate(project, url)
        yield url.rsplit("/", 1)[1]


def count_users(database: str) -> int:
    return int(psql(on_database(postgres.SERVER_URL, database), "SELECT count(*) FROM users"))


# --- PgBouncer ------------------------------------------------------------------------------------


def test_the_projects_own_suite_passes_through_pgbouncer(
    project: Project, bouncer: PgBouncer
) -> None:
    env = {
        "TEST_DATABASE_URL": bouncer.url,
        "DATABASE_POOLER": "pgbouncer",
        "CI": os.environ.get("CI", ""),
    }
    deselect = [f"--deselect=tests/{name}" for name in sorted(BEYOND_A_POOLER[project.driver])]
    pytest_command = (uv(), "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider")
    result = run(*pytest_command, *deselect, cwd=project.path, env=env)

    summary = result.stdout.strip().splitlines()[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}
    assert set(counts) == {"passed", "deselected"}, summary
    assert counts["deselected"] == DESELECTED_CASES[project.driver], summary


@dataclass
class Census:
    """What PgBouncer and the server held for one database, sampled while the load ran."""

    server_connections: list[int] = field(default_factory=list)  # PgBouncer's SHOW SERVERS
    backends: list[int] = field(default_factory=list)  # the server's pg_stat_activity
    clients: list[int] = field(default_factory=list)  # the app's connections to PgBouncer


@contextmanager
def census_of(bouncer: PgBouncer, database: str, every: float = 0.2) -> Iterator[Census]:
    """Sample, until the block ends, the connections held for `database` on both sides."""
    census = Census()
    backends = (
        "SELECT count(*) FROM pg_stat_activity"
        f" WHERE datname = '{database}' AND backend_type = 'client backend'"
    )
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every):
            servers = [row for row in bouncer.show("SERVERS") if row["database"] == database]
            pools = [row for row in bouncer.show("POOLS") if row["database"] == database]
            census.server_connections.append(len(servers))
            census.backends.append(int(psql(postgres.SERVER_URL, backends)))
            census.clients.append(sum(int(p["cl_active"]) + int(p["cl_waiting"]) for p in pools))

    sampler = threading.Thread(target=sample, name="census")
    sampler.start()
    try:
        yield census
    finally:
        done.set()
        sampler.join()


@dataclass
class LoadReport:
    answers: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)  # unexpected answers and broken connections
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, step: str, status: int, expected: int, body: object) -> None:
        with self.lock:
            self.answers[step, status] += 1
            if status != expected:
                self.failures.append(f"{step}: {status} {body}"[:300])


def call(
    connection: http.client.HTTPConnection, method: str, path: str, body: object = None
) -> tuple[int, object]:
    """One request on a kept-alive connection; the status and the decoded JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, data, {"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    return response.status, json.loads(payload) if payload else None


def user_journeys(base: str, worker: int, deadline: float, report: LoadReport) -> None:
    """Create, read, list and rename users until `deadline`, checking every answer."""
    address = urllib.parse.urlsplit(base)

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)

    connection = connect()
    journey = 0
    while time.monotonic() < deadline:
        journey += 1
        try:
            email = f"load-{worker}-{journey}@example.com"
            status, user = call(connection, "POST", "/users", {"email": email, "name": "Load"})
            report.record("POST /users", status, 201, user)
            if status != 201 or not isinstance(user, dict):
                continue
            path = f"/users/{user['id']}"
            status, body = call(connection, "GET", path)
            report.record("GET /users/{id}", status, 200, body)
            status, body = call(connection, "GET", "/users?limit=50")
            report.record("GET /users?limit=50", status, 200, body)
            status, body = call(connection, "PATCH", path, {"name": f"Load {journey}"})
            report.record("PATCH /users/{id}", status, 200, body)
        except (OSError, http.client.HTTPException) as error:
            with report.lock:
                report.failures.append(f"worker {worker}: {error!r}")
            connection.close()
            connection = connect()
    connection.close()


def load(base: str, *, threads: int, seconds: float) -> LoadReport:
    report = LoadReport()
    deadline = time.monotonic() + seconds
    workers = [
        threading.Thread(target=user_journeys, args=(base, n, deadline, report), name=f"load-{n}")
        for n in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=seconds + 60)  # A request in flight at the deadline may finish.
    assert not any(worker.is_alive() for worker in workers), "a request hung"
    return report


PREPARED_STATEMENTS_HERE = "SELECT pg_backend_pid(), count(*) FROM pg_prepared_statements"


def prepared_statements_per_server(url: str) -> dict[int, int]:
    """How many prepared statements each of PgBouncer's server connections to `url` holds.

    Each probe stays in a transaction until every probe has its answer, so each has a server
    connection of its own, and together they cover PgBouncer's whole pool.
    """
    probes = [
        subprocess.Popen(
            ["psql", url, "--no-psqlrc", "--quiet", "--no-align", "--tuples-only"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(BOUNCER_POOL_SIZE)
    ]
    counts = {}
    try:
        for probe in probes:
            assert probe.stdin is not None
            probe.stdin.write(f"BEGIN; {PREPARED_STATEMENTS_HERE};\n")
            probe.stdin.flush()
        for probe in probes:
            assert probe.stdout is not None
            pid, count = probe.stdout.readline().strip().split("|")
            counts[int(pid)] = int(count)
    finally:
        for probe in probes:
            probe.communicate("COMMIT;\n", timeout=30)
    return counts


def test_concurrent_load_through_pgbouncer_meets_no_error_within_its_pool(
    project: Project, bouncer: PgBouncer, database: str, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    env = {
        "DATABASE_URL": on_database(bouncer.url, database),
        "DATABASE_POOLER": "pgbouncer",
        "WEB_CONCURRENCY": "2",
        "LOG_LEVEL": "WARNING",  # Problems only: one line per request would cost the app CPU.
    }
    users_before = count_users(database)
    with (
        serving(project.path, env, production=True, log=log) as base,
        census_of(bouncer, database) as census,
    ):
        report = load(base, threads=LOAD_THREADS, seconds=LOAD_SECONDS)
        left_behind = prepared_statements_per_server(on_database(bouncer.url, database))
    users = count_users(database) - users_before

    assert report.failures == [], report.failures[:20]
    created = report.answers["POST /users", 201]
    assert created > 100, report.answers
    assert users == created, "every 201 is a row, and nothing else is"
    app_log = log.read_text()
    assert "prepared statement" not in app_log.lower()
    assert " ERROR " not in app_log, app_log[-3000:]
    assert "Traceback" not in app_log, app_log[-3000:]
    assert len(left_behind) == BOUNCER_POOL_SIZE, left_behind
    assert set(left_behind.values()) == {0}, f"prepared statements left behind: {left_behind}"
    assert len(census.server_connections) >= 10, "sampled throughout the load"
    assert max(census.server_connections) <= BOUNCER_POOL_SIZE, census
    assert max(census.backends) <= BOUNCER_POOL_SIZE, census
    # The pool is what held the server back: the app's workers kept more connections open.
    assert max(census.clients) > BOUNCER_POOL_SIZE, census


STARTUP_PARAMETERS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")


def test_without_the_setting_the_app_fails_through_pgbouncer(
    project: Project, bouncer: PgBouncer, database: str, tmp_path: Path
) -> None:
    # Each driver sends the timeouts as startup parameters, which PgBouncer refuses.
    log = tmp_path / "refused.log"
    env = {"DATABASE_URL": bouncer.url}
    with serving(project.path, env, production=True, ready="/health/live", log=log) as base:
        status, body = request("GET", base + "/users")
    assert status == 503, body
    assert "unsupported startup parameter" in log.read_text()

    if project.driver not in PREPARES_STATEMENTS:
        return  # psycopg2 prepares nothing: a PgBouncer ignoring the parameters would serve it.
    log = tmp_path / "prepared.log"
    report = load_with_prepared_statements(project, bouncer, database, log)
    assert report.failures, f"{project.driver}'s prepared statements went unnoticed by PgBouncer"
    assert "prepared statement" in log.read_text()


def load_with_prepared_statements(
    project: Project, bouncer: PgBouncer, database: str, log: Path
) -> LoadReport:
    """A short load on the app through PgBouncer, its driver preparing statements as by default."""
    if project.driver == "psycopg":
        # libpq sends the timeouts as `options`, which PgBouncer cannot be told to ignore: the app
        # keeps DATABASE_POOLER, but psycopg prepares statements. By default it prepares one after
        # its 5th run on a connection, which a short load may not reach on every one: 0 prepares
        # each at once.
        env = {"DATABASE_URL": on_database(bouncer.url, database), "DATABASE_POOLER": "pgbouncer"}
        database_module = project.path / "src/my_service/database.py"
        with (
            edited(database_module, '"prepare_threshold": None', '"prepare_threshold": 0'),
            serving(project.path, env, production=True, log=log) as base,
        ):
            return load(base, threads=8, seconds=3)
    # An operator might let PgBouncer ignore them: asyncpg's cached prepared statements then meet
    # PgBouncer's sharing of server connections, and requests fail.
    ignored = ("extra_float_digits", *STARTUP_PARAMETERS)
    with pgbouncer(postgres.SERVER_URL, pool_size=2, ignore_startup_parameters=ignored) as lenient:
        env = {"DATABASE_URL": on_database(lenient.url, database)}
        with serving(project.path, env, production=True, log=log) as base:
            return load(base, threads=8, seconds=3)


@contextmanager
def edited(path: Path, old: str, new: str) -> Iterator[None]:
    """`path` with `old` replaced by `new` until the block ends."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))
    try:
        yield
    finally:
        path.write_text(text)


# --- A read replica -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replicated:
    """A project served with DATABASE_URL on the primary and DATABASE_READ_URL on the replica."""

    project: Project
    pair: StreamingPair
    database: str
    base: str
    log: Path

    @property
    def primary_url(self) -> str:
        return on_database(self.pair.primary.url, self.database)

    @property
    def replica_url(self) -> str:
        return on_database(self.pair.replica.url, self.database)


MAX_CONNECTIONS = 20
"""The pair's: 17 for clients that are not superusers, one worker's pools (15) and no more."""
POOLS = {"POOL_SIZE": "5", "MAX_OVERFLOW": "10"}


@pytest.fixture(scope="module")
def pair() -> Iterator[StreamingPair]:
    with streaming_pair(settings={"max_connections": str(MAX_CONNECTIONS)}) as running:
        yield running


@pytest.fixture(scope="module")
def replicated(
    project: Project, pair: StreamingPair, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicated]:
    database = f"scaling_{project.name}"
    pair.primary.query(f"CREATE DATABASE {database}")
    migrate(project, on_database(pair.primary.url, database))
    pair.wait_for_replay()
    env = {
        "DATABASE_URL": on_database(pair.primary.url, database),
        "DATABASE_READ_URL": on_database(pair.replica.url, database),
        "WEB_CONCURRENCY": "1",
        **POOLS,
    }
    log = tmp_path_factory.mktemp("replicated") / "app.log"
    with serving(project.path, env, production=True, log=log) as base:
        yield Replicated(project, pair, database, base, log)


def running_select_of_a_user(server_url: str, database: str) -> int:
    """How many connections to `database` last ran the read of one user by its id."""
    return int(
        psql(
            server_url,
            "SELECT count(*) FROM pg_stat_activity"
            f" WHERE datname = '{database}' AND pid <> pg_backend_pid()"
            " AND query LIKE 'SELECT users.id,%FROM users%WHERE users.id = %'",
        )
    )


def create_user(base: str, email: str) -> dict[str, object]:
    status, user = request("POST", base + "/users", {"email": email, "name": "Replicated"})
    assert status == 201, user
    assert isinstance(user, dict)
    return user


def test_reads_go_to_the_replica_and_writes_to_the_primary(replicated: Replicated) -> None:
    user = create_user(replicated.base, "ada@example.com")
    has_ada = "SELECT count(*) FROM users WHERE email = 'ada@example.com'"
    assert psql(replicated.primary_url, has_ada) == "1", "the write went to the primary"
    replicated.pair.wait_for_replay()
    assert psql(replicated.replica_url, has_ada) == "1"

    assert request("GET", f"{replicated.base}/users/{user['id']}") == (200, user)
    # pg_stat_activity shows each connection's last statement, idle ones included: the app's
    # read of one user ran on the replica, and on no connection of the primary.
    assert running_select_of_a_user(replicated.pair.replica.url, replicated.database) >= 1
    assert running_select_of_a_user(replicated.pair.primary.url, replicated.database) == 0
    status, users = request("GET", replicated.base + "/users?limit=50")
    assert status == 200
    assert isinstance(users, list)
    assert user in users


@contextmanager
def replay_paused(pair: StreamingPair) -> Iterator[None]:
    """The replica stops applying the primary's writes until the block ends: a lagging replica."""
    pair.replica.query("SELECT pg_wal_replay_pause()")
    try:
        deadline = time.monotonic() + 30
        while pair.replica.query("SELECT pg_get_wal_replay_pause_state()") != "paused":
            assert time.monotonic() < deadline, "replay did not pause"
            time.sleep(0.05)
        yield
    finally:
        pair.replica.query("SELECT pg_wal_replay_resume()")


def test_a_read_right_after_a_write_may_miss_it_on_a_lagging_replica(
    replicated: Replicated,
) -> None:
    base = replicated.base
    with replay_paused(replicated.pair):
        user = create_user(base, "grace@example.com")
        path = f"{base}/users/{user['id']}"
        # GET reads through a read-only session, from the replica, which has not replayed it.
        assert request("GET", path)[0] == 404
        # PATCH loads the user through the read-write session, from the primary.
        assert request("PATCH", path, {}) == (200, user)
    replicated.pair.wait_for_replay()
    assert request("GET", path) == (200, user)


WRITE_THROUGH_A_READ_ONLY_SESSION = string.Template("""\
import asyncio
import json

from sqlalchemy import exc, text
from starlette.requests import Request

from my_service.dependencies import read_session_scope
from my_service.errors import database_error, error_code


${async_}def write() -> exc.DBAPIError:
    ${async_}with read_session_scope() as session:
        try:
            ${await_}session.execute(text("INSERT INTO users (email, name) VALUES ('w', 'W')"))
        except exc.DBAPIError as error:
            return error
    raise AssertionError("the write was taken")


error = ${run}(write())
request = Request({"type": "http", "method": "POST", "path": "/users", "headers": []})
response = asyncio.run(database_error(request, error))
print(json.dumps([error_code(error), response.status_code, response.headers.get("Retry-After")]))
""")


def test_the_replica_refuses_writes_of_a_read_only_session_with_a_503(
    replicated: Replicated,
) -> None:
    is_async = replicated.project.mode == "async"
    script = WRITE_THROUGH_A_READ_ONLY_SESSION.substitute(
        async_="async " if is_async else "",
        await_="await " if is_async else "",
        run="asyncio.run" if is_async else "",
    )
    env = {"DATABASE_URL": replicated.primary_url, "DATABASE_READ_URL": replicated.replica_url}
    python = (uv(), "run", "--no-sync", "python", "-c", script)
    result = run(*python, cwd=replicated.project.path, env=env)

    sqlstate, status, retry_after = json.loads(result.stdout)
    assert sqlstate == "25006"  # read_only_sql_transaction: the standby refused it
    assert status == 503
    assert str(retry_after).isdigit()
    # The handler logged it as an outage (an error, with the code), through logging's last resort.
    assert "database outage (SQLSTATE 25006)" in result.stderr, result.stderr


# --- The connection budget ------------------------------------------------------------------------


def budget_warnings(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "connection budget" in line]


def test_the_app_warns_when_its_pools_can_exceed_the_servers_connections(
    replicated: Replicated, tmp_path: Path
) -> None:
    # One worker's pools fit each server of the pair: 1 x (15 + 0) = 15 <= 20 - 3.
    assert budget_warnings(replicated.log) == []

    # Four workers' do not, on either server. Each worker checks as it starts, alike: one process
    # shows it. (Four starting at once beside the other tests' apps on a 2-core runner take longer
    # than uvicorn's 5 s worker health check, which kills and restarts them.)
    log = tmp_path / "app.log"
    env = {
        "DATABASE_URL": replicated.primary_url,
        "DATABASE_READ_URL": replicated.replica_url,
        "WEB_CONCURRENCY": "4",
        **POOLS,
    }
    with serving(replicated.project.path, env, ready="/health/live", log=log):
        pass  # Ready: the start-up, and so the check, is over.

    warnings = budget_warnings(log)
    assert len(warnings) == 2, warnings
    for name in ("DATABASE_URL", "DATABASE_READ_URL"):
        assert any(f"connection budget of {name} can be exceeded" in line for line in warnings)
    numbers = (
        "WEB_CONCURRENCY 4 x (POOL_SIZE 5 + MAX_OVERFLOW 10) = 60 connections, but the server"
        f" takes 17 (max_connections {MAX_CONNECTIONS} - superuser_reserved_connections 3)"
    )
    for warning in warnings:
        assert " WARNING " in warning
        assert numbers in warning


def test_a_mariadb_app_warns_when_its_pools_can_exceed_the_servers_connections(
    tmp_path: Path,
) -> None:
    """MariaDB keeps no connection of `max_connections` for administrators: all of them count."""
    project = render(
        tmp_path / "my-service", database="mariadb", sqlalchemy_mode="async", primary_key="int"
    )
    run(uv(), "sync", cwd=project)
    log = tmp_path / "app.log"
    with mariadb.private_server(f"--max-connections={MAX_CONNECTIONS}") as server:
        env = {"DATABASE_URL": server.url, "WEB_CONCURRENCY": "4", **POOLS}
        with serving(project, env, ready="/health/live", log=log):
            pass  # Ready: the start-up, and so the check, is over.

    warnings = budget_warnings(log)
    assert warnings, log.read_text()
    numbers = (
        "WEB_CONCURRENCY 4 x (POOL_SIZE 5 + MAX_OVERFLOW 10) = 60 connections, but the server"
        f" takes {MAX_CONNECTIONS} (max_connections), for every client and every replica"
    )
    for warning in warnings:
        assert " WARNING " in warning
        assert numbers in warning
