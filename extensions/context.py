"""What each answer means for the generated code, kept as data in one place.

Templates never branch on raw answers to pick a driver, a URL scheme or a class name: they read the
objects this hook puts in the context (`db`, `driver`, `mode`, `pk`). A new backend or driver is one
more entry in the tables below.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from copier.errors import UserMessageError
from copier_template_extensions import ContextHook
from jinja2 import Environment
from jinja2.ext import Extension


@dataclass(frozen=True)
class Driver:
    """A DB-API driver as SQLAlchemy and PyPI know it."""

    name: str
    """The driver's own name: `asyncpg`, `psycopg`, `psycopg2`, `aiosqlite`, `sqlite3`."""
    drivername: str
    """The SQLAlchemy URL scheme, e.g. `postgresql+asyncpg`."""
    requirement: str
    """The PyPI requirement, or "" for a driver in the standard library."""
    connect_timeout_arg: str | None = None
    """The `connect_args` key that bounds how long opening a connection may take."""
    pre_ping: str = ""
    """What `pool_pre_ping` sends on each checkout, for the generated README."""
    error_code_attribute: str = "sqlite_errorname"
    """The attribute of the driver's exception (SQLAlchemy's `DBAPIError.orig`) holding the
    database's error code; `args`: the error number is its first argument (MySQL protocol)."""
    threads: bool = False
    """Whether the driver runs each connection's calls on a thread of its own (aiosqlite)."""
    session_settings: str = ""
    """How the server's per-session limits reach a new connection: `server_settings` (asyncpg's
    startup parameters), `options` (libpq's `-c name=value`) or `init_command` (a statement the
    MySQL protocol drivers run first on each connection); "" for a database file."""
    libpq: bool = False
    """Whether the driver connects through libpq (psycopg, psycopg2): it takes `sslmode` and the
    other libpq parameters from the URL, and startup parameters as `options=-c name=value`; a
    refused connection carries no SQLSTATE, only the server's message. asyncpg speaks the protocol
    itself: TLS parameters go in a DSN, startup parameters in `server_settings`."""
    pgbouncer_arguments: tuple[tuple[str, str], ...] = ()
    """The `connect_args` (name, Python expression) that make the driver work behind PgBouncer in
    transaction mode, where each transaction may run on another server connection."""
    pgbouncer_reason: str = ""
    """Why those arguments, for a code comment."""
    pgbouncer_readme: str = ""
    """What those arguments do, for the generated README's "Scaling out"."""


@dataclass(frozen=True)
class ErrorCode:
    """A database error code (or the prefix of a class of codes) and how the service answers it."""

    code: str
    meaning: str
    unavailable: bool
    """True: the database cannot serve anyone now (503, logged as an error); False: this request met
    contention or a timeout and may simply be retried (503, logged as a warning)."""


@dataclass(frozen=True)
class MissingTable:
    """How the database says a table does not exist: the schema was never migrated."""

    code: str
    message_start: str = ""
    """The start of the error's message, where the code alone names a broader class of errors."""


@dataclass(frozen=True)
class Container:
    """The server's official image, as the generated compose file and CI workflow run it.

    Strings may hold `{name}` (the package name) and `{driver}` (the URL scheme).
    """

    image: str
    password_variable: str
    """The environment variable of compose's database password."""
    app_url: str
    """The app's DATABASE_URL in compose."""
    environment: tuple[tuple[str, str], ...]
    """The image's environment in compose."""
    health_comment: tuple[str, ...]
    """Why the health check is what it is, in comment lines."""
    health_test: str
    """The compose health check's command, as a YAML flow sequence."""
    data_path: str
    """Where the image keeps its data (compose's volume)."""
    ci_service: str
    """The CI service container's name."""
    ci_environment: tuple[tuple[str, str], ...]
    """The CI service container's environment."""
    ci_port: int
    ci_test_url: str
    """TEST_DATABASE_URL in CI: an account that may create and drop databases."""
    ci_database_url: str
    """DATABASE_URL of the CI step that migrates an empty database."""

    @property
    def ci_health_cmd(self) -> str:
        """Compose's health check as the CI service container's `--health-cmd`: the same check."""
        return " ".join(json.loads(self.health_test)[1:])


@dataclass(frozen=True)
class Server:
    """What differs between the server databases in the SQL the generated code and tests send."""

    transactional_ddl: bool
    """Whether a migration's DDL runs in its transaction: a failed upgrade then leaves nothing
    behind and may simply be retried (PostgreSQL); MariaDB commits each DDL statement."""
    sleep: str
    """A statement that runs for 5 seconds."""
    lock_timeout_code: str
    """The error code of a statement that waited longer than `LOCK_TIMEOUT` for a row lock."""
    read_only_code: str
    """The error code of a write where the server takes none (see `read_only` in the tests)."""
    unknown_role_code: str
    unknown_database_code: str
    backend_id: str
    """The id of the session's server process or thread, in SQL."""
    connection_count: tuple[str, ...]
    """How many sessions are connected to the database `:database`, in lines of Python strings."""
    lock_waits: tuple[str, ...]
    """How many statements on the database `:database` wait for a lock, in lines."""
    terminate: tuple[str, ...]
    """Kill every session of the database `:database` but the caller's, in lines; or, where
    `terminate_runs_rows`, list the ids of those sessions (MariaDB's KILL takes no subquery)."""
    terminate_runs_rows: bool
    quote: str
    """The quote around identifiers."""
    lock_table: str
    """Lock `users` against writes until the transaction ends."""
    lock_table_isolation: str | None
    """The isolation level `lock_table` needs, if not READ COMMITTED."""
    lock_table_against_reads: str
    """Lock `users` against reads too, until the transaction ends or `unlock_tables`."""
    unlock_tables: str | None
    """What ends `lock_table_against_reads`, where the transaction's end does not."""
    set_next_id: str
    """Make the next `users.id` 2,147,483,648: the first that needs 64 bits."""
    drop_database_suffix: str
    """What `DROP DATABASE name` needs to drop a database others are still connected to."""
    container: Container


POSTGRESQL_SERVER = Server(
    transactional_ddl=True,
    sleep="SELECT pg_sleep(5)",
    lock_timeout_code="55P03",
    read_only_code="25006",
    unknown_role_code="28000",
    unknown_database_code="3D000",
    backend_id="SELECT pg_backend_pid()",
    connection_count=("SELECT count(*) FROM pg_stat_activity WHERE datname = :database",),
    lock_waits=(
        "SELECT count(*) FROM pg_stat_activity",
        " WHERE datname = :database AND wait_event_type = 'Lock'",
    ),
    terminate=("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :database",),
    terminate_runs_rows=False,
    quote='"',
    lock_table="LOCK TABLE users",
    lock_table_isolation=None,
    lock_table_against_reads="LOCK TABLE users IN ACCESS EXCLUSIVE MODE",
    unlock_tables=None,
    set_next_id="SELECT setval('users_id_seq', 2147483647)",
    drop_database_suffix=" WITH (FORCE)",
    container=Container(
        image="postgres:17",
        password_variable="POSTGRES_PASSWORD",
        app_url="{driver}://postgres:${{POSTGRES_PASSWORD:-postgres}}@db:5432/{name}",
        environment=(
            ("POSTGRES_DB", "{name}"),
            ("POSTGRES_PASSWORD", "${{POSTGRES_PASSWORD:-postgres}}"),
        ),
        health_comment=(
            "Over TCP: the server the image runs while it creates the database listens on no port,"
            " so",
            "this turns healthy only once the real server accepts connections.",
        ),
        health_test='["CMD", "pg_isready", "--host=127.0.0.1", "--username=postgres",'
        ' "--dbname={name}"]',
        data_path="/var/lib/postgresql/data",
        ci_service="postgres",
        ci_environment=(("POSTGRES_PASSWORD", "postgres"), ("POSTGRES_DB", "{name}")),
        ci_port=5432,
        ci_test_url="postgresql://postgres:postgres@127.0.0.1:5432/postgres",
        ci_database_url="postgresql://postgres:postgres@127.0.0.1:5432/{name}",
    ),
)

MARIADB_SERVER = Server(
    transactional_ddl=False,
    sleep="SELECT SLEEP(5)",
    lock_timeout_code="1205",
    read_only_code="1142",
    unknown_role_code="1045",
    unknown_database_code="1049",
    backend_id="SELECT CONNECTION_ID()",
    connection_count=("SELECT count(*) FROM information_schema.processlist WHERE db = :database",),
    # A table's lock (a metadata lock, LOCK TABLES) shows in the state. A row's shows nowhere
    # for a locking read (INNODB_TRX lists its transaction only once it writes): a statement
    # running for 200 ms in these tests waits for one.
    lock_waits=(
        "SELECT count(*) FROM information_schema.processlist",
        " WHERE db = :database AND command = 'Query' AND id <> CONNECTION_ID()",
        " AND (state LIKE 'Waiting for table%' OR time_ms > 200)",
    ),
    terminate=(
        "SELECT id FROM information_schema.processlist",
        " WHERE db = :database AND id <> CONNECTION_ID()",
    ),
    terminate_runs_rows=True,
    quote="`",
    # LOCK TABLES would outlive the transaction. Under REPEATABLE READ, a locking read of every
    # row locks the gaps between them too, so no INSERT gets in until the transaction ends.
    lock_table="SELECT id FROM users FOR UPDATE",
    lock_table_isolation="REPEATABLE READ",
    lock_table_against_reads="LOCK TABLES users WRITE",
    unlock_tables="UNLOCK TABLES",
    set_next_id="ALTER TABLE users AUTO_INCREMENT = 2147483648",
    drop_database_suffix="",
    container=Container(
        image="mariadb:10.11",
        password_variable="MARIADB_PASSWORD",
        app_url="{driver}://{name}:${{MARIADB_PASSWORD:-{name}}}@db:3306/{name}",
        environment=(
            ("MARIADB_DATABASE", "{name}"),
            ("MARIADB_USER", "{name}"),
            ("MARIADB_PASSWORD", "${{MARIADB_PASSWORD:-{name}}}"),
            ("MARIADB_RANDOM_ROOT_PASSWORD", '"1"'),
        ),
        health_comment=(
            "The image's own check: healthy once the server takes connections and InnoDB is ready,",
            "not while the entrypoint's temporary server creates the database and the user.",
        ),
        health_test='["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]',
        data_path="/var/lib/mysql",
        ci_service="mariadb",
        ci_environment=(("MARIADB_ROOT_PASSWORD", "root"), ("MARIADB_DATABASE", "{name}")),
        ci_port=3306,
        ci_test_url="mariadb://root:root@127.0.0.1:3306/mysql",
        ci_database_url="mariadb://root:root@127.0.0.1:3306/{name}",
    ),
)


@dataclass(frozen=True)
class Database:
    """A database backend and the drivers used for it in each SQLAlchemy mode."""

    label: str
    url_backends: tuple[str, ...]
    """Backend names accepted in DATABASE_URL and normalised to the project's driver."""
    timezone_aware: bool
    """Whether `DateTime(timezone=True)` keeps the offset (else UTC is stored naive)."""
    pooled: bool
    """Whether the engine gets the pool settings (a server database with a QueuePool)."""
    clock_has_microseconds: bool
    """Whether the database's `now()` keeps microseconds; if not, the models stamp rows in Python
    (SQLite's CURRENT_TIMESTAMP has whole seconds: rows made within a second would tie)."""
    names_primary_keys: bool
    """Whether a primary key keeps the name it is given (`pk_users`); MariaDB calls every one
    PRIMARY and warns at each name it ignores."""
    drivers: dict[tuple[str, str], Driver]
    """Each driver by (mode, name): the modes it serves and what it is called in answers."""
    default_drivers: dict[str, str]
    """Each mode's driver when none is chosen: the one the measurements favour (see the README)."""
    default_url: str
    """The development URL, after `{driver}` and `{name}` are filled in."""
    test_server_url: str | None
    """Where the generated tests create their throwaway database, or None for a temporary file."""
    unreachable_url: str
    """A URL no database answers at, for the generated tests of outages."""
    integer_key: str
    """The annotation of a 64-bit integer key column in the models (`BigInt`, defined in
    `models/common.py`, or a plain `int` where the database's INTEGER is 64-bit already)."""
    error_code_name: str
    """What the database calls the code of an error: `SQLSTATE`, or SQLite's result code name."""
    error_codes: tuple[ErrorCode, ...]
    """The errors that answer 503 with `Retry-After`; any other database error is a 500 (or a 409
    for a broken constraint). Codes are matched exactly, else by their longest listed prefix."""
    missing_table: MissingTable
    """A statement on a table that does not exist: 503 (the database was never migrated)."""
    unique_violation: str
    """A regular expression on the first line of a unique constraint's error: its `field` group
    is the column whose value is taken."""
    pool_names: tuple[str, str]
    """The `pool` label of the metrics of each pool: the read-write one, and the one that reads."""
    migration_lint: str | None = None
    """How `migrations/lint.py` refuses revisions that lock a live table for long: "squawk" (a
    maintained linter, `migration_linter`) or "rules" (a rule set of its own, where no linter reads
    this database's SQL); None where schema changes cannot run beside the service anyway."""
    migration_linter: str | None = None
    """The PyPI requirement of the linter of `migration_lint` "squawk" (a dev dependency)."""
    server: Server | None = None
    """What the server's own SQL says, or None for a database file."""
    port: int = 0
    """The server's usual TCP port."""
    idle_timeout: int | None = None
    """Seconds after which the server closes an idle connection by default (MariaDB's
    `wait_timeout`): `pool_recycle` must be on and under it, or a pooled connection dies unseen."""
    conflict_codes: str = "`23…`"
    """The error codes of a broken unique or foreign-key constraint, for the README."""
    other_driver: str = ""
    """A SQLAlchemy URL scheme of another driver for the same database, which the project's
    settings point at its own."""
    other_database_urls: tuple[str, str] = ("mysql://app@localhost/app", "sqlite:///app.db")
    """URLs of other databases, which the settings refuse."""
    poolers: tuple[str, ...] = ()
    """The connection poolers the service can run behind (`DATABASE_POOLER`)."""
    datetime_type: str = "DateTime(timezone=True)"
    """The column type of timestamps, as `sqlalchemy` names it (for `column_types.py`)."""
    migration_datetime_type: str = "sa.DateTime(timezone=True)"
    """The same type as a revision writes it."""
    now: str = "now()"
    """The SQL function call that gives the current time as the timestamps store it."""
    foreign_keys_need_an_index: bool = False
    """Whether a foreign key's index can only go with its constraint (InnoDB)."""
    table_options: tuple[tuple[str, str], ...] = ()
    """Keyword arguments of every table (`__table_args__`, `op.create_table`)."""

    def driver_names(self, mode: str) -> tuple[str, ...]:
        """The drivers offered for `mode`, its default first."""
        default = self.default_drivers[mode]
        others = [name for each_mode, name in self.drivers if each_mode == mode and name != default]
        return (default, *others)

    def driver_refusal(self, mode: str, answer: object) -> str:
        """The `driver` question's complaint about `answer` in `mode`, or "" when it is offered."""
        # The context hook may have put the Driver in the answer's place (see `chosen_driver`).
        name = getattr(answer, "name", answer)
        offered = self.driver_names(mode)
        return "" if name in offered else f"{mode} offers {' or '.join(offered)}"

    @property
    def url_backends_set(self) -> str:
        """`url_backends` as a Python set literal."""
        return "{" + ", ".join(f'"{name}"' for name in self.url_backends) + "}"


@dataclass(frozen=True)
class Mode:
    """Names that differ between the asyncio and the blocking SQLAlchemy APIs."""

    is_async: bool
    sqlalchemy_requirement: str
    engine_module: str
    create_engine: str
    engine_class: str
    connection_class: str
    sessionmaker: str
    session_class: str
    session_iterator: str
    context_manager: str
    test_client_import: str
    test_client_requirement: str
    test_client_class: str
    pool_class: str
    """The pool SQLAlchemy gives a database file or server in this mode (`sqlalchemy.pool`)."""
    async_: str = field(init=False)
    """Put before `def`, `with` and `for`: "async " or ""."""
    await_: str = field(init=False)
    """Put before a call that does I/O: "await " or ""."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "async_", "async " if self.is_async else "")
        object.__setattr__(self, "await_", "await " if self.is_async else "")


@dataclass(frozen=True)
class PrimaryKey:
    """How the `id` columns, path parameters and JSON ids are typed."""

    annotation: str
    imports: tuple[str, ...]
    column_args: str
    """Extra `mapped_column` arguments of the primary key."""
    path_type: str
    """The annotation of an `{id}` path parameter."""
    migration_type: str
    server_type: str
    """The column's type as PostgreSQL's and MariaDB's DDL write it, for a revision's raw SQL."""
    example: str
    """A well-formed id that matches no row, as a Python expression."""
    malformed: str
    """A path segment that is not an id."""
    spelling: str
    """The one way an id is written in a path, as a regular expression."""
    spelling_words: str
    """`spelling` in words, for the 422 that refuses another."""
    spelling_others: str
    """What the type alone would accept besides `spelling`, in words."""
    other_spellings: tuple[str, ...]
    """Python expressions of other ways to write the id `user_id` (a str) that would name the same
    row, for the generated tests; each must answer 422."""


PSYCOPG = Driver(
    "psycopg",
    "postgresql+psycopg",
    "psycopg[binary]>=3.2",
    connect_timeout_arg="connect_timeout",
    pre_ping="psycopg sends an empty query (`;`)",
    error_code_attribute="sqlstate",
    session_settings="options",
    libpq=True,
    pgbouncer_arguments=(("prepare_threshold", "None"),),
    pgbouncer_reason="PgBouncer runs each transaction on any of its server connections: psycopg"
    " prepares a statement it ran `prepare_threshold` times (5) on one of them, then would run it"
    " by name on another, which never saw it. None: psycopg prepares nothing.",
    pgbouncer_readme="psycopg then prepares no statement (`prepare_threshold=None`): a"
    " statement prepared on one of PgBouncer's server connections would be unknown on the"
    " next.",
)
"""psycopg 3: one SQLAlchemy dialect, `postgresql+psycopg`, for sync and async connections."""


DATABASES: dict[str, Database] = {
    "postgresql": Database(
        label="PostgreSQL",
        url_backends=("postgres", "postgresql"),
        timezone_aware=True,
        pooled=True,
        clock_has_microseconds=True,
        names_primary_keys=True,
        drivers={
            ("async", "asyncpg"): Driver(
                "asyncpg",
                "postgresql+asyncpg",
                "asyncpg>=0.30",
                connect_timeout_arg="timeout",
                pre_ping="asyncpg sends an empty prepared statement",
                error_code_attribute="sqlstate",
                session_settings="server_settings",
                pgbouncer_arguments=(
                    ("statement_cache_size", "0"),
                    ("prepared_statement_cache_size", "0"),
                    ("prepared_statement_name_func", "unnamed_statement"),
                ),
                pgbouncer_reason="PgBouncer runs each transaction on any of its server connections:"
                " prepared statements are never cached, and never named. asyncpg closes a named"
                " statement only when it prepares the next one, often on another server connection"
                " by then, so named ones pile up where they were prepared (one for every other"
                " request under load, measured). The unnamed one is replaced by the next statement,"
                " and asyncpg sends it again with its Bind.",
                pgbouncer_readme="asyncpg then caches no prepared statement and prepares each one"
                " unnamed, so the next statement replaces it: none is left behind on PgBouncer's"
                " server connections, whichever of them a statement ran on (named ones piled up by"
                " the hundred in the template's load test).",
            ),
            ("async", "psycopg"): PSYCOPG,
            ("sync", "psycopg"): PSYCOPG,
            ("sync", "psycopg2"): Driver(
                "psycopg2",
                "postgresql+psycopg2",
                "psycopg2-binary>=2.9.10",
                connect_timeout_arg="connect_timeout",
                pre_ping="psycopg2 sends `SELECT 1`",
                error_code_attribute="pgcode",
                session_settings="options",
                libpq=True,
                pgbouncer_readme="psycopg2 needs nothing more: it prepares no statement on the"
                " server.",
            ),
        },
        default_drivers={"async": "asyncpg", "sync": "psycopg2"},
        default_url="{driver}://postgres@localhost:5432/{name}",
        test_server_url="{driver}://postgres@127.0.0.1:5432/postgres",
        unreachable_url="{driver}://postgres@127.0.0.1:1/postgres",
        integer_key="BigInt",
        error_code_name="SQLSTATE",
        # One pool serves both kinds of session, unless reads go to a replica.
        pool_names=("primary", "replica"),
        error_codes=(
            ErrorCode("40001", "serialization failure", unavailable=False),
            ErrorCode("40P01", "deadlock detected", unavailable=False),
            ErrorCode("55P03", "lock not available within `LOCK_TIMEOUT`", unavailable=False),
            ErrorCode("57014", "statement cancelled after `STATEMENT_TIMEOUT`", unavailable=False),
            ErrorCode("08", "connection exception (refused, lost, failed)", unavailable=True),
            ErrorCode("28", "authentication failed or unknown role", unavailable=True),
            ErrorCode("3D000", "the database does not exist", unavailable=True),
            ErrorCode(
                "25006",
                "read-only transaction (a standby, e.g. after a failover)",
                unavailable=True,
            ),
            ErrorCode(
                "53", "insufficient resources (too many connections, disk full)", unavailable=True
            ),
            ErrorCode(
                "57P", "server shutting down, restarting or not yet accepting", unavailable=True
            ),
            ErrorCode("58", "system error (I/O)", unavailable=True),
        ),
        missing_table=MissingTable("42P01"),
        # The constraint's name, from the naming convention `uq_<table>_<column>` (models.Base).
        unique_violation=r"unique constraint \Wuq_[a-z0-9]+_(?P<field>\w+)",
        migration_lint="squawk",
        migration_linter="squawk-cli>=2.70",
        server=POSTGRESQL_SERVER,
        port=5432,
        other_driver="postgresql+pg8000",
        poolers=("pgbouncer",),
    ),
    "mariadb": Database(
        label="MariaDB",
        url_backends=("mysql", "mariadb"),
        # DATETIME keeps no offset: UTC is stored naive (column_types.py), the session's time_zone
        # is UTC, so NOW(6) agrees with the values the ORM writes.
        timezone_aware=False,
        pooled=True,
        clock_has_microseconds=True,
        names_primary_keys=False,
        migration_lint="rules",
        drivers={
            ("async", "asyncmy"): Driver(
                "asyncmy",
                "mariadb+asyncmy",
                "asyncmy>=0.2.10",
                connect_timeout_arg="connect_timeout",
                pre_ping="asyncmy sends a COM_PING packet",
                error_code_attribute="args",
                session_settings="init_command",
            ),
            ("sync", "pymysql"): Driver(
                "pymysql",
                "mariadb+pymysql",
                "pymysql>=1.1.1",
                connect_timeout_arg="connect_timeout",
                pre_ping="PyMySQL sends a COM_PING packet",
                error_code_attribute="args",
                session_settings="init_command",
            ),
        },
        default_drivers={"async": "asyncmy", "sync": "pymysql"},
        default_url="{driver}://{name}:{name}@127.0.0.1:3306/{name}",
        test_server_url="{driver}://tests:tests@127.0.0.1:3306/mysql",
        unreachable_url="{driver}://tests@127.0.0.1:1/mysql",
        integer_key="BigInt",
        error_code_name="error number",
        pool_names=("primary", "replica"),
        error_codes=(
            ErrorCode("1205", "lock wait longer than `LOCK_TIMEOUT`", unavailable=False),
            ErrorCode("1213", "deadlock found", unavailable=False),
            ErrorCode("1969", "statement stopped after `STATEMENT_TIMEOUT`", unavailable=False),
            ErrorCode("1040", "too many connections", unavailable=True),
            ErrorCode("1044", "access to the database denied", unavailable=True),
            ErrorCode("1045", "access denied (unknown user or wrong password)", unavailable=True),
            ErrorCode("1049", "the database does not exist", unavailable=True),
            ErrorCode("1053", "server shutting down", unavailable=True),
            ErrorCode(
                "1142",
                "the account may not write (a read-only account or replica)",
                unavailable=True,
            ),
            ErrorCode("1290", "the server is read-only (a replica)", unavailable=True),
            ErrorCode("1792", "read-only transaction", unavailable=True),
            ErrorCode("1927", "connection killed", unavailable=True),
            ErrorCode("2002", "cannot connect (socket)", unavailable=True),
            ErrorCode("2003", "cannot connect (refused or timed out)", unavailable=True),
            ErrorCode("2006", "server has gone away", unavailable=True),
            ErrorCode("2013", "connection lost during a query", unavailable=True),
        ),
        missing_table=MissingTable("1146"),
        # The constraint's name, from the naming convention `uq_<table>_<column>` (models.Base).
        unique_violation=r"for key '(?:\w+\.)?uq_[a-z0-9]+_(?P<field>\w+)'",
        server=MARIADB_SERVER,
        port=3306,
        other_driver="mysql+mysqldb",
        other_database_urls=("postgres://app@localhost/app", "sqlite:///app.db"),
        conflict_codes="`1062`, `1451`, `1452`",
        idle_timeout=28_800,
        datetime_type="DATETIME(fsp=6)",
        migration_datetime_type="mysql.DATETIME(fsp=6)",
        now="now(6)",
        foreign_keys_need_an_index=True,
        # utf8mb4_nopad_bin compares code points, like PostgreSQL's `=`: `é` is not `e`, and
        # `a ` is not `a`.
        table_options=(
            ("mariadb_engine", "InnoDB"),
            ("mariadb_charset", "utf8mb4"),
            ("mariadb_collate", "utf8mb4_nopad_bin"),
        ),
    ),
    "sqlite": Database(
        label="SQLite",
        url_backends=("sqlite",),
        timezone_aware=False,
        pooled=False,
        clock_has_microseconds=False,
        names_primary_keys=True,
        drivers={
            ("async", "aiosqlite"): Driver(
                "aiosqlite", "sqlite+aiosqlite", "aiosqlite>=0.21", threads=True
            ),
            ("sync", "sqlite3"): Driver("sqlite3", "sqlite+pysqlite", ""),
        },
        default_drivers={"async": "aiosqlite", "sync": "sqlite3"},
        default_url="{driver}:///./{name}.db",
        test_server_url=None,
        unreachable_url="{driver}:////nonexistent-folder/unreachable.db",
        integer_key="int",
        error_code_name="SQLite code",
        pool_names=("write", "read"),
        error_codes=(
            ErrorCode(
                "SQLITE_BUSY", "another writer held the lock for `LOCK_TIMEOUT`", unavailable=False
            ),
            ErrorCode(
                "SQLITE_LOCKED", "a table was locked by another connection", unavailable=False
            ),
            ErrorCode("SQLITE_CANTOPEN", "the database file cannot be opened", unavailable=True),
            ErrorCode("SQLITE_READONLY", "the database file is read-only", unavailable=True),
            ErrorCode("SQLITE_IOERR", "disk I/O error", unavailable=True),
            ErrorCode("SQLITE_FULL", "the disk is full", unavailable=True),
            ErrorCode("SQLITE_NOTADB", "the file is not a SQLite database", unavailable=True),
        ),
        # SQLITE_ERROR is any SQL error: only its message tells a missing table.
        missing_table=MissingTable("SQLITE_ERROR", "no such table"),
        unique_violation=r"UNIQUE constraint failed: \w+\.(?P<field>\w+)",
        other_database_urls=("mysql://app@localhost/app", "postgres://app@localhost/app"),
        conflict_codes="`SQLITE_CONSTRAINT…`",
    ),
}

# 2.0.44 is the first release with every fix for connections leaked on cancelled requests.
_SQLALCHEMY_MIN = ">=2.0.44"

MODES: dict[str, Mode] = {
    "async": Mode(
        is_async=True,
        sqlalchemy_requirement=f"sqlalchemy[asyncio]{_SQLALCHEMY_MIN}",
        engine_module="sqlalchemy.ext.asyncio",
        create_engine="create_async_engine",
        engine_class="AsyncEngine",
        connection_class="AsyncConnection",
        sessionmaker="async_sessionmaker",
        session_class="AsyncSession",
        session_iterator="AsyncIterator",
        context_manager="asynccontextmanager",
        test_client_import="from httpx import AsyncClient",
        test_client_requirement="httpx>=0.28",
        test_client_class="AsyncClient",
        pool_class="AsyncAdaptedQueuePool",
    ),
    "sync": Mode(
        is_async=False,
        sqlalchemy_requirement=f"sqlalchemy{_SQLALCHEMY_MIN}",
        engine_module="sqlalchemy",
        create_engine="create_engine",
        engine_class="Engine",
        connection_class="Connection",
        sessionmaker="sessionmaker",
        session_class="Session",
        session_iterator="Iterator",
        context_manager="contextmanager",
        test_client_import="from fastapi.testclient import TestClient",
        # Starlette's TestClient runs on httpx2, the maintained successor of httpx.
        test_client_requirement="httpx2>=2.16",
        test_client_class="TestClient",
        pool_class="QueuePool",
    ),
}

PRIMARY_KEYS: dict[str, PrimaryKey] = {
    "uuid": PrimaryKey(
        annotation="uuid.UUID",
        imports=("import uuid",),
        column_args="default=uuid.uuid4",
        path_type="uuid.UUID",
        migration_type="sa.Uuid()",
        server_type="UUID",
        example="uuid.UUID(int=1)",
        malformed="not-a-uuid",
        spelling="(?i)[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}",
        spelling_words="32 hexadecimal digits in groups of 8-4-4-4-12, joined by hyphens",
        spelling_others="an id in braces, as a `urn:uuid:` or without hyphens",
        other_spellings=(
            '"{" + user_id + "}"',
            'f"urn:uuid:{user_id}"',
            'user_id.replace("-", "")',
            'f"%20{user_id}"',
        ),
    ),
    "int": PrimaryKey(
        annotation="int",
        imports=(),
        column_args="",
        path_type="IntId",
        # Portable: SQLite's INTEGER PRIMARY KEY is its 64-bit rowid; a BIGINT key would not be.
        migration_type='sa.BigInteger().with_variant(sa.Integer(), "sqlite")',
        server_type="BIGINT",
        example="9_223_372_036_854_775_807",
        malformed="not-a-number",
        spelling="[1-9][0-9]*",
        spelling_words="decimal digits, without a sign, spaces, underscores or leading zeros",
        spelling_others="`+7`, `07`, ` 7` and `7 ` for `7`",
        other_spellings=('f"%20{user_id}"', 'f"{user_id}%20"', 'f"+{user_id}"', 'f"0{user_id}"'),
    ),
}


@dataclass(frozen=True)
class Metrics:
    """A metrics exporter the service can ship with."""

    requirement: str
    """The PyPI requirement of its client library."""


METRICS: dict[str, Metrics | None] = {
    "prometheus": Metrics(requirement="prometheus-client>=0.21"),
    "none": None,
}
"""What each answer to `metrics` ships: None ships nothing, not even an unused import."""


@dataclass(frozen=True)
class Tracing:
    """A tracing library the service can ship with: spans of requests and SQL statements."""

    requirements: tuple[str, ...]
    """The PyPI requirements of its SDK, its exporter and its instrumentations."""


TRACING: dict[str, Tracing | None] = {
    "opentelemetry": Tracing(
        requirements=(
            "opentelemetry-exporter-otlp-proto-http>=1.45",
            "opentelemetry-instrumentation-fastapi>=0.66b0",
            "opentelemetry-instrumentation-sqlalchemy>=0.66b0",
            "opentelemetry-sdk>=1.45",
        )
    ),
    "none": None,
}
"""What each answer to `tracing` ships: None ships nothing, not even an unused import."""


@dataclass(frozen=True)
class Bound:
    """The values a numeric answer may take, and so the setting it becomes the default of.

    The question's validator and the generated settings both read it: an accepted answer always
    makes a project that starts, and a setting accepts every value the question does.
    """

    low: float
    high: float | None
    """The largest value allowed, or None for no limit."""
    low_exclusive: bool = False
    """True: values must be greater than `low`, not equal to it."""
    off: int | None = None
    """A value below the range that turns the setting off (`pool_recycle=-1`)."""
    integer: bool = True

    def admits(self, value: object) -> bool:
        """Whether an answer is allowed (a bool, NaN or infinity never is)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.off is not None and value == self.off:
            return True
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_exclusive else value >= self.low
        return above and (self.high is None or value <= self.high)

    @property
    def text(self) -> str:
        """The range in words, as the help says it: `1 to 1000`, `> 0, at most 3600`."""
        if self.low_exclusive:
            text = f"> {self.low:g}"
            if self.high is not None:
                text += f", at most {self.high:g}"
        elif self.high is None:
            text = f"{self.low:g} or more"
        else:
            text = f"{self.low:g} to {self.high:g}"
        return text if self.off is None else f"{self.off} (off) or {text}"

    @property
    def message(self) -> str:
        """A validator's refusal: `must be from 1 to 1000`."""
        plain_range = not self.low_exclusive and self.high is not None and self.off is None
        return f"must be {'from ' if plain_range else ''}{self.text}"

    @property
    def field_arguments(self) -> str:
        """The pydantic `Field` constraints of the setting, e.g. `ge=1, le=1000`.

        A bound with an `off` value gets `ge=<off>` only: the setting refuses the values between
        `off` and the range itself (`pool_recycle=0`).
        """
        if self.off is not None:
            arguments = [f"ge={self.off}"]
        else:
            arguments = [f"{'gt' if self.low_exclusive else 'ge'}={self.low:g}"]
        if self.high is not None:
            arguments.append(f"le={self.high:g}")
        if not self.integer:
            arguments.append("allow_inf_nan=False")
        return ", ".join(arguments)


BOUNDS: dict[str, Bound] = {
    "pool_size": Bound(1, 1000),
    "max_overflow": Bound(0, 1000),
    "pool_timeout": Bound(0, 3600, low_exclusive=True, integer=False),
    "pool_recycle": Bound(0, None, low_exclusive=True, off=-1),
}
"""Each numeric question's range, stated once for its validator, its help and its setting."""


_FIRST_REVISIONS: dict[str, str] = {}


def first_revision(destination: str) -> str:
    """The id of a new project's first Alembic revision: random, like the ids Alembic makes.

    Two projects generated with the same answers must not share it: pointed at one database by
    mistake, the second would find the first's schema "at head" and serve on tables it did not
    make. With ids of their own, its `alembic upgrade head` fails ("Can't locate revision") and
    its readiness probe answers 503. One id per destination, however many times it is rendered.
    """
    return _FIRST_REVISIONS.setdefault(destination, secrets.token_hex(6))


ANSWERS = frozenset(
    {"database", "sqlalchemy_mode", "primary_key", "package_name", "metrics", "tracing"}
)
"""The answers the derived values depend on."""

FIXED_ANSWERS = {
    "database": "the data lives in that database; moving to another one takes a fresh generation "
    "and a data migration of your own",
    "primary_key": "the tables and their data already use that key type; changing it takes a data "
    "migration written by hand",
    "package_name": "the project's code lives in that package; rename it by hand",
}
"""Answers that `copier update` must not change, and why."""


def refuse_fixed_answer_changes(context: dict[str, Any]) -> None:
    """Stop an update (or recopy) that would change an answer no re-rendering can carry out."""
    conf = context["_copier_conf"]
    recorded = Path(conf["dst_path"]) / conf["answers_file"]
    if not recorded.is_file():
        return  # A new project: every answer is free.
    previous = yaml.safe_load(recorded.read_text()) or {}
    for key, reason in FIXED_ANSWERS.items():
        if key in previous and previous[key] != context[key]:
            was, now = previous[key], context[key]
            message = f"{key} cannot change on update (it is {was}, not {now}): {reason}"
            raise UserMessageError(message)


class QuestionBounds(Extension):
    """Registers `bounds` and `databases`, which the questions' defaults and validators read.

    A global rather than the context hook: Copier 9.6 (the lowest this template admits) renders
    questions without `_copier_conf`, so the hook never runs for them.
    """

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals["bounds"] = BOUNDS
        environment.globals["databases"] = DATABASES


def chosen_driver(context: dict[str, Any]) -> str:
    """The name of the project's driver: the `driver` answer, asked for PostgreSQL only."""
    db = DATABASES[context["database"]]
    mode = context["sqlalchemy_mode"]
    # The hook puts the Driver in the answer's place; it may meet a context it has updated.
    # (The Driver class may come from another import of this file: its name tells.)
    answer = getattr(context.get("driver"), "name", context.get("driver"))
    if answer not in db.driver_names(mode):
        # SQLite: the skipped question's default still reaches the context, naming a PostgreSQL
        # driver. (The question's validator refuses a PostgreSQL driver of the other mode.)
        return db.default_drivers[mode]
    return str(answer)


class ContextUpdater(ContextHook):
    """Adds `db`, `driver`, `mode`, `pk`, `metrics_kit`, `tracing_kit`, `request_threads` and the
    async/await prefixes to the rendering context."""

    def hook(self, context: dict[str, Any]) -> None:
        if not context.keys() >= ANSWERS:
            return  # Still asking the questions: there is nothing to derive yet.
        refuse_fixed_answer_changes(context)
        db = DATABASES[context["database"]]
        mode = MODES[context["sqlalchemy_mode"]]
        driver = db.drivers[context["sqlalchemy_mode"], chosen_driver(context)]
        name = context["package_name"]
        pk = PRIMARY_KEYS[context["primary_key"]]
        context.update(
            db=db,
            driver=driver,
            mode=mode,
            pk=pk,
            metrics_kit=METRICS[context["metrics"]],
            tracing_kit=TRACING[context["tracing"]],
            # Whether threads do the requests' work: sync path operations, or the driver's calls.
            request_threads=not mode.is_async or driver.threads,
            # What `Mapped[...]` says of key columns in the models.
            key_annotation=db.integer_key if pk.annotation == "int" else pk.annotation,
            async_=mode.async_,
            await_=mode.await_,
            first_revision=first_revision(str(context["_copier_conf"]["dst_path"])),
            default_database_url=db.default_url.format(driver=driver.drivername, name=name),
            test_server_url=(
                db.test_server_url.format(driver=driver.drivername) if db.test_server_url else None
            ),
        )
