"""Schema changes on a live service (issue 22): the proof under load, on PostgreSQL and MariaDB.

The next release's migrations run while the running release serves steady reads and writes and a
long transaction holds a lock on `users` (a report, a forgotten psql session). With the generated
safeguards (`MIGRATION_LOCK_TIMEOUT`, retries), no request fails or waits past the service's own
timeouts, readiness stays 200, each migration either succeeds (done the non-blocking ways the
README shows) or gives up naming the session in its way, and every acknowledged write is kept.
Without them (no limit on a migration's wait for a lock), the same migration queues behind the
transaction, every request on `users` queues behind the migration and fails at its timeout: the
outage they prevent.

One project per PostgreSQL and MariaDB combination of `COMBINATIONS`, rendered and installed once
per worker; the checks of each form one xdist group, so a project is rendered once in the whole
run. Failures are counted, not latencies measured: the one bound on time is the service's
`LOCK_TIMEOUT`, five times what a migration waits for a lock.
"""

from __future__ import annotations

import http.client
import itertools
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
from _pytest.mark.structures import ParameterSet

from tests import mariadb, postgres
from tests.clients import call
from tests.pgcluster import psql
from tests.rendering import COMBINATIONS, combination_id, install_runtime, render, run
from tests.serving import Server, environment, poll_until, production_server, venv_program

pytestmark = pytest.mark.matrix

SERVICE_LOCK_TIMEOUT = 5
"""The service's `LOCK_TIMEOUT` (its default): how long a request may wait for a lock."""
MIGRATION_LOCK_TIMEOUT = "1"
MIGRATION_RETRIES = "1"
PAUSE = 0.02
"""Seconds each client waits between its requests: steady load, not a benchmark."""
INDEX_AND_FOREIGN_KEY = "1ive00000001"
POSTGRESQL_INDEX_AND_FOREIGN_KEY = '''"""Index users by name; posts get an editor (non-blocking)."""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Takes only posts' lock for long; users' (SHARE ROW EXCLUSIVE) lets a reader of users be.
    op.add_column("posts", sa.Column("editor_id", {key_type}, nullable=True))
    op.create_foreign_key(
        "fk_posts_editor_id_users",
        "posts",
        "users",
        ["editor_id"],
        ["id"],
        postgresql_not_valid=True,
    )
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_users_name", "users", ["name"], if_not_exists=True, postgresql_concurrently=True
        )
        op.execute("ALTER TABLE posts VALIDATE CONSTRAINT fk_posts_editor_id_users")
'''
COLUMN = "1ive00000002"
POSTGRESQL_COLUMN_AND_CHECK = '''"""Users get a nickname, and a check on names."""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ACCESS EXCLUSIVE on users, for an instant: it waits for any transaction reading users.
    op.add_column("users", sa.Column("nickname", sa.String(100), nullable=True))
    op.execute(
        "ALTER TABLE users ADD CONSTRAINT ck_users_name_not_blank CHECK (name <> '') NOT VALID"
    )
    with op.get_context().autocommit_block():
        op.execute("ALTER TABLE users VALIDATE CONSTRAINT ck_users_name_not_blank")
'''
MARIADB_INDEX_AND_FOREIGN_KEY = '''"""Posts get an editor, indexed, with a foreign key (online)."""

from alembic import op

revision = "{revision}"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each statement names its algorithm, so that MariaDB refuses it rather than copy the table
    # under a write lock. Only posts' definition is locked, for an instant.
    op.execute("ALTER TABLE posts ADD COLUMN editor_id {key_type} NULL, ALGORITHM=INSTANT")
    op.execute("CREATE INDEX ix_posts_editor_id ON posts (editor_id) ALGORITHM=INPLACE LOCK=NONE")
    # Checked against existing rows, a foreign key would copy posts; every editor_id is NULL.
    op.execute("SET SESSION foreign_key_checks = 0")
    op.execute(
        "ALTER TABLE posts ADD CONSTRAINT fk_posts_editor_id_users FOREIGN KEY (editor_id)"
        " REFERENCES users (id), ALGORITHM=INPLACE, LOCK=NONE"
    )
    op.execute("SET SESSION foreign_key_checks = 1")
'''
MARIADB_COLUMN = '''"""Users get a nickname."""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ALGORITHM=INSTANT, but first users' definition to itself: it waits for any transaction
    # that read users.
    op.add_column("users", sa.Column("nickname", sa.String(100), nullable=True))
'''


@dataclass(frozen=True)
class Database:
    """What the checks need of one database server: its revisions of each kind, and how to see
    what they did and who they waited for."""

    server: ModuleType
    """`tests.postgres` or `tests.mariadb`: the server, its throwaway databases, and a transaction
    held open (`transaction_left_open`, which gives the session's id)."""
    query: Callable[[str, str], str]
    key_types: dict[str, str]
    """The type of the primary keys, per key answer, as the revisions write it."""
    index_and_foreign_key: str
    column: str
    blocker_named: str
    """How the give-up message names the blocking session, `{}` its id."""
    schema: str
    """A query of what the two revisions made; `migrated` is its answer after both."""
    migrated: str
    no_lock_limit: str
    """`MIGRATION_LOCK_TIMEOUT` with no safeguard: a migration waits as long as it takes."""
    alter_waiting: str
    """A query: 1 while the column's `ALTER TABLE users` waits for its lock."""


DATABASES = {
    "postgresql": Database(
        server=postgres,
        query=psql,
        key_types={"uuid": "sa.Uuid()", "int": "sa.BigInteger()"},
        index_and_foreign_key=POSTGRESQL_INDEX_AND_FOREIGN_KEY,
        column=POSTGRESQL_COLUMN_AND_CHECK,
        blocker_named="pid {} ",
        schema=(
            "SELECT (SELECT indisvalid FROM pg_index"
            "  WHERE indexrelid = 'ix_users_name'::regclass),"
            " (SELECT bool_and(convalidated) FROM pg_constraint WHERE conname IN"
            "  ('fk_posts_editor_id_users', 'ck_users_name_not_blank')),"
            " (SELECT count(*) FROM information_schema.columns"
            "  WHERE table_name = 'users' AND column_name = 'nickname'),"
            " (SELECT version_num FROM alembic_version)"
        ),
        migrated=f"t|t|1|{COLUMN}",
        no_lock_limit="0",
        alter_waiting=(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE users%'"
        ),
    ),
    "mariadb": Database(
        server=mariadb,
        query=mariadb.query,
        key_types={"uuid": "UUID", "int": "BIGINT"},
        index_and_foreign_key=MARIADB_INDEX_AND_FOREIGN_KEY,
        column=MARIADB_COLUMN,
        blocker_named="connection {} ",
        schema=(
            "SELECT (SELECT count(*) FROM information_schema.statistics"
            "  WHERE table_schema = DATABASE() AND index_name = 'ix_posts_editor_id'),"
            " (SELECT count(*) FROM information_schema.referential_constraints"
            "  WHERE constraint_schema = DATABASE()"
            "  AND constraint_name = 'fk_posts_editor_id_users'),"
            " (SELECT count(*) FROM information_schema.columns WHERE table_schema = DATABASE()"
            "  AND table_name = 'users' AND column_name = 'nickname'),"
            " (SELECT version_num FROM alembic_version)"
        ),
        migrated=f"1\t1\t1\t{COLUMN}",
        no_lock_limit="3600",
        alter_waiting=(
            "SELECT count(*) FROM information_schema.processlist"
            " WHERE state = 'Waiting for table metadata lock' AND info LIKE 'ALTER TABLE users%'"
        ),
    ),
}


@dataclass(frozen=True)
class Project:
    path: Path
    database: Database
    key_type: str
    """The type of its primary keys, as a revision writes it."""


def on_each_combination_with_a_server() -> list[ParameterSet]:
    return [
        pytest.param(
            answers,
            id=combination_id(answers),
            marks=pytest.mark.xdist_group(f"live-migration-{combination_id(answers)}"),
        )
        for answers in COMBINATIONS
        if answers["database"] in DATABASES
    ]


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, str]], Project]:
    """Render and install a project the first time a check of this worker asks for it."""
    rendered: dict[str, Project] = {}

    def project(answers: dict[str, str]) -> Project:
        name = combination_id(answers)
        if name not in rendered:
            destination = tmp_path_factory.mktemp(name) / "my-service"
            path = install_runtime(render(destination, tasks=False, **answers))
            database = DATABASES[answers["database"]]
            rendered[name] = Project(path, database, database.key_types[answers["primary_key"]])
        return rendered[name]

    return project


@pytest.fixture
def project(
    request: pytest.FixtureRequest, projects: Callable[[dict[str, str]], Project]
) -> Project:
    answers: dict[str, str] = request.param
    DATABASES[answers["database"]].server.require_server()
    return projects(answers)


def next_release(project: Project, folder: Path) -> Path:
    """The migrations of the project's next release in `folder`: its own, and two revisions of
    the kinds the README shows. The running service never sees them, as in a real deploy."""
    shutil.copy(project.path / "alembic.ini", folder / "alembic.ini")
    shutil.copytree(
        project.path / "migrations",
        folder / "migrations",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    versions = folder / "migrations" / "versions"
    (first,) = versions.glob("*.py")
    found = re.search(r'^revision(?:: str)? = "(\w+)"', first.read_text(), re.MULTILINE)
    assert found, first
    for down_revision, revision, text in (
        (found[1], INDEX_AND_FOREIGN_KEY, project.database.index_and_foreign_key),
        (INDEX_AND_FOREIGN_KEY, COLUMN, project.database.column),
    ):
        (versions / f"{revision}.py").write_text(
            text.format(revision=revision, down_revision=down_revision, key_type=project.key_type)
        )
    return folder / "alembic.ini"


def alembic(
    project: Project, config: Path, env: dict[str, str], *arguments: str
) -> subprocess.CompletedProcess[str]:
    """Run the project's `alembic -c config ...` (the next release's migrations); never raises."""
    return subprocess.run(
        (venv_program(project.path, "alembic"), "-c", str(config), *arguments),
        cwd=project.path,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@dataclass
class Load:
    """What the clients of `steady_load` got back, counted across threads."""

    answers: Counter[str] = field(default_factory=Counter)
    """Per request kind and status, "POST /users 201" say; an exception counts by its name."""
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    users: set[str] = field(default_factory=set)
    posts: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, what: str, status: str, expected: int, seconds: float) -> None:
        with self.lock:
            self.answers[f"{what} {status}"] += 1
            self.slowest = max(self.slowest, seconds)
            if status != str(expected):
                self.failures.append(f"{what}: {status} after {seconds:.1f} s")


def client(
    server: Server, load: Load, stop: threading.Event, requests: Iterator[tuple[str, str, object]]
) -> None:
    """Send `requests` (method, path, body) one after another, a pause between, until `stop`."""
    with server.connect(timeout=60) as connection:
        for method, path, body in requests:
            if stop.is_set():
                return
            what = f"{method} {re.sub(r'/users/[^/?]+', '/users/{id}', path)}"
            expected = 201 if method == "POST" else 200
            started = time.monotonic()
            try:
                reply = call(connection, method, path, body)
            except (OSError, http.client.HTTPException) as error:
                load.record(what, type(error).__name__, expected, time.monotonic() - started)
                connection.close()
                continue
            load.record(what, str(reply.status), expected, time.monotonic() - started)
            if reply.status == 201:
                created = load.users if path == "/users" else load.posts
                with load.lock:
                    created.add(str(reply.json()["id"]))
            stop.wait(PAUSE)


@contextmanager
def steady_load(server: Server) -> Iterator[Load]:
    """Reads, writes and readiness probes on `server` until the block ends (one client each)."""
    load, stop = Load(), threading.Event()
    with server.connect() as connection:
        seeded = [
            call(connection, "POST", "/users", {"email": f"seed-{n}@example.com", "name": "Seed"})
            for n in range(10)
        ]
    assert {reply.status for reply in seeded} == {201}
    author = seeded[0].json()["id"]
    load.users.update(str(reply.json()["id"]) for reply in seeded)
    streams = [
        (
            ("POST", "/users", {"email": f"user-{n}@example.com", "name": f"User {n}"})
            for n in itertools.count()
        ),
        (
            ("POST", f"/users/{author}/posts", {"title": f"Post {n}", "body": "Text"})
            for n in itertools.count()
        ),
        (
            ("PATCH", f"/users/{reply.json()['id']}", {"name": f"Renamed {n}"})
            for n, reply in enumerate(itertools.cycle(seeded))
        ),
        itertools.cycle(
            [("GET", "/users?limit=10", None)]
            + [("GET", f"/users/{reply.json()['id']}", None) for reply in seeded]
        ),
        itertools.repeat(("GET", "/health/ready", None)),
    ]
    threads = [
        threading.Thread(target=client, args=(server, load, stop, requests)) for requests in streams
    ]
    for thread in threads:
        thread.start()
    try:
        stop.wait(1)  # The service under load before anything else happens.
        yield load
        stop.wait(1)  # And after.
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)


def stored(project: Project, url: str, table: str) -> set[str]:
    return set(project.database.query(url, f"SELECT id FROM {table}").split())


@pytest.mark.parametrize("project", on_each_combination_with_a_server(), indirect=True)
def test_migrations_behind_a_long_transaction_fail_no_request_of_a_loaded_service(
    project: Project, tmp_path: Path
) -> None:
    config = next_release(project, tmp_path)
    database = project.database
    with database.server.throwaway_database() as url:
        env = {
            "DATABASE_URL": url,
            "MIGRATION_LOCK_TIMEOUT": MIGRATION_LOCK_TIMEOUT,
            "MIGRATION_RETRIES": MIGRATION_RETRIES,
        }
        run(venv_program(project.path, "alembic"), "upgrade", "head", cwd=project.path, env=env)
        with production_server(project.path, {"DATABASE_URL": url}) as server:
            with steady_load(server) as load:
                report = database.server.transaction_left_open(url, "SELECT count(*) FROM users")
                with report as blocker:
                    # Index, foreign key and validation take no lock the reader of users holds.
                    indexed = alembic(project, config, env, "upgrade", INDEX_AND_FOREIGN_KEY)
                    # A new column needs the table to itself, for an instant it never gets.
                    gave_up = alembic(project, config, env, "upgrade", COLUMN)
                # The transaction over, the same migration runs again, and through.
                migrated = alembic(project, config, env, "upgrade", "head")
            users, posts = stored(project, url, "users"), stored(project, url, "posts")
            schema = database.query(url, database.schema).strip()

    assert indexed.returncode == 0, indexed.stderr
    assert gave_up.returncode == 1, gave_up.stderr
    assert "Migrations gave up" in gave_up.stderr, gave_up.stderr
    assert database.blocker_named.format(blocker) in gave_up.stderr, gave_up.stderr
    assert migrated.returncode == 0, migrated.stderr
    assert load.failures == [], f"{len(load.failures)} failed: {load.failures[:10]}"
    assert load.slowest < SERVICE_LOCK_TIMEOUT, f"a request took {load.slowest:.1f} s"
    kinds = {answer.rsplit(" ", 1)[0] for answer in load.answers}
    assert len(kinds) == 6, f"every kind of request was served: {dict(load.answers)}"
    assert load.users <= users, f"{len(load.users - users)} acknowledged users are missing"
    assert load.posts <= posts, f"{len(load.posts - posts)} acknowledged posts are missing"
    assert schema == database.migrated


@pytest.mark.parametrize("project", on_each_combination_with_a_server(), indirect=True)
def test_without_the_safeguards_the_same_migration_makes_requests_fail_at_their_timeout(
    project: Project, tmp_path: Path
) -> None:
    """The counter-proof: with no limit on `MIGRATION_LOCK_TIMEOUT`, the column's migration waits
    behind the transaction, and every request on users waits behind it, until its own timeout."""
    config = next_release(project, tmp_path)
    database = project.database
    with database.server.throwaway_database() as url:
        env = {"DATABASE_URL": url, "MIGRATION_LOCK_TIMEOUT": database.no_lock_limit}
        run(venv_program(project.path, "alembic"), "upgrade", "head", cwd=project.path, env=env)
        with (
            production_server(project.path, {"DATABASE_URL": url}) as server,
            steady_load(server) as load,
        ):
            indexed = alembic(project, config, env, "upgrade", INDEX_AND_FOREIGN_KEY)
            with database.server.transaction_left_open(url, "SELECT count(*) FROM users"):
                upgrade = ("-c", str(config), "upgrade", COLUMN)
                migrator = subprocess.Popen(
                    (venv_program(project.path, "alembic"), *upgrade),
                    cwd=project.path,
                    env=environment(**env),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                waiting = database.alter_waiting
                poll_until(lambda: database.query(url, waiting).strip() == "1", 60, "ALTER to wait")
                # Requests queue behind the waiting ALTER for longer than they may wait.
                time.sleep(SERVICE_LOCK_TIMEOUT + 3)
            output = migrator.communicate(timeout=120)[0]

    assert indexed.returncode == 0, indexed.stderr
    assert migrator.returncode == 0, output
    timed_out = [failure for failure in load.failures if failure.split(": ")[1].startswith("503")]
    assert timed_out, f"no request failed at its timeout: {dict(load.answers)}"
    assert load.slowest >= SERVICE_LOCK_TIMEOUT, f"the slowest request took {load.slowest:.1f} s"
    assert load.answers["GET /health/ready 200"] > 0, "readiness answered meanwhile"
