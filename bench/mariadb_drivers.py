"""CPU per statement of each MariaDB driver SQLAlchemy supports, in-process (no HTTP): the figures
behind the template's choice of asyncmy (async) and PyMySQL (sync).

Each variant is a SQLAlchemy engine as the generated projects build it (a pool of one connection,
pre-ping on), on the same server and table, and runs what a request of the service runs: read one
user by a random id, read a page of 50, insert one user and commit. Variants run interleaved,
`STATEMENTS` per batch, `BATCHES` batches; the median batch is reported, as CPU µs of this process
per statement (the driver's and SQLAlchemy's Python; the figure least disturbed by other work) and
wall µs (which includes the server and the round trip, the same for all).

Its own environment, from the repository root (mysqlclient compiles against `libmariadb-dev`, from
Debian's packages):

    uv run --no-project --python 3.11 --with 'sqlalchemy[asyncio]==2.1.*' --with asyncmy \\
        --with aiomysql --with pymysql --with mysqlclient --with uvloop \\
        python bench/mariadb_drivers.py

It creates the database `bench_mariadb_drivers` on the server of `TEST_MARIADB_URL` (the template's
tests' account by default), and drops it at the end.
"""

import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version

import uvloop
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SERVER = os.environ.get("TEST_MARIADB_URL", "mariadb://tests:tests@127.0.0.1:3306/mysql").rsplit(
    "/", 1
)[0]
DATABASE = "bench_mariadb_drivers"
STATEMENTS = 1000
BATCHES = 7
USERS = 1000

SCHEMA = """
CREATE TABLE users (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(320) NOT NULL UNIQUE,
    name VARCHAR(100) NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin
"""
READ_ONE = text("SELECT id, email, name, created_at, updated_at FROM users WHERE id = :id")
READ_PAGE = text(
    "SELECT id, email, name, created_at, updated_at FROM users ORDER BY created_at, id LIMIT 50"
)
INSERT = text("INSERT INTO users (email, name) VALUES (:email, :name)")

ASYNC_DRIVERS = ("asyncmy", "aiomysql")
SYNC_DRIVERS = ("pymysql", "mysqldb")
DISTRIBUTIONS = {
    "asyncmy": "asyncmy",
    "aiomysql": "aiomysql",
    "pymysql": "pymysql",
    "mysqldb": "mysqlclient",
}
Result = dict[tuple[str, str], tuple[float, float]]
"""(driver, statement) -> (CPU µs, wall µs) per statement, the median batch's."""


def url(driver: str, database: str = DATABASE) -> str:
    return f"{SERVER.replace('mariadb://', f'mariadb+{driver}://', 1)}/{database}"


def prepare() -> None:
    engine = create_engine(url("pymysql", "mysql"))
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {DATABASE}")
        connection.exec_driver_sql(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
        connection.exec_driver_sql(f"USE {DATABASE}")
        connection.exec_driver_sql(SCHEMA)
        connection.execute(
            INSERT, [{"email": f"seed-{n}@example.org", "name": "Seed"} for n in range(USERS)]
        )
    engine.dispose()


def drop() -> None:
    engine = create_engine(url("pymysql", "mysql"))
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {DATABASE}")
    engine.dispose()


def engine_arguments() -> dict[str, object]:
    return {"pool_size": 1, "max_overflow": 0, "pool_pre_ping": True}


def median_batch(batches: list[tuple[float, float]]) -> tuple[float, float]:
    cpu = statistics.median(each[0] for each in batches)
    wall = statistics.median(each[1] for each in batches)
    return cpu * 1e6 / STATEMENTS, wall * 1e6 / STATEMENTS


async def measure_async() -> Result:
    engines = {
        driver: create_async_engine(url(driver), **engine_arguments()) for driver in ASYNC_DRIVERS
    }
    counter = iter(range(10**9))

    def statements(engine: AsyncEngine) -> dict[str, Callable[[], Awaitable[object]]]:
        async def read_one() -> object:
            async with engine.connect() as connection:
                return (await connection.execute(READ_ONE, {"id": random.randint(1, USERS)})).one()

        async def read_page() -> object:
            async with engine.connect() as connection:
                return (await connection.execute(READ_PAGE)).all()

        async def insert() -> object:
            async with engine.begin() as connection:
                email = f"new-{next(counter)}@example.org"
                return await connection.execute(INSERT, {"email": email, "name": "New"})

        return {"read one": read_one, "read 50": read_page, "insert": insert}

    runs = {driver: statements(engine) for driver, engine in engines.items()}
    batches: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(BATCHES):
        for driver in random.sample(ASYNC_DRIVERS, len(ASYNC_DRIVERS)):
            for name, statement in runs[driver].items():
                await statement()  # Warm: the connection is open before the clock starts.
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(STATEMENTS):
                    await statement()
                elapsed = (time.process_time() - cpu, time.perf_counter() - wall)
                batches.setdefault((driver, name), []).append(elapsed)
    for engine in engines.values():
        await engine.dispose()
    return {key: median_batch(each) for key, each in batches.items()}


def measure_sync() -> Result:
    engines = {driver: create_engine(url(driver), **engine_arguments()) for driver in SYNC_DRIVERS}
    counter = iter(range(10**9))

    def statements(driver: str) -> dict[str, Callable[[], object]]:
        engine = engines[driver]

        def read_one() -> object:
            with engine.connect() as connection:
                return connection.execute(READ_ONE, {"id": random.randint(1, USERS)}).one()

        def read_page() -> object:
            with engine.connect() as connection:
                return connection.execute(READ_PAGE).all()

        def insert() -> object:
            with engine.begin() as connection:
                email = f"new-sync-{next(counter)}@example.org"
                return connection.execute(INSERT, {"email": email, "name": "New"})

        return {"read one": read_one, "read 50": read_page, "insert": insert}

    runs = {driver: statements(driver) for driver in SYNC_DRIVERS}
    batches: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(BATCHES):
        for driver in random.sample(SYNC_DRIVERS, len(SYNC_DRIVERS)):
            for name, statement in runs[driver].items():
                statement()
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(STATEMENTS):
                    statement()
                elapsed = (time.process_time() - cpu, time.perf_counter() - wall)
                batches.setdefault((driver, name), []).append(elapsed)
    for engine in engines.values():
        engine.dispose()
    return {key: median_batch(each) for key, each in batches.items()}


def table(title: str, drivers: tuple[str, ...], result: Result) -> str:
    first = drivers[0]
    lines = [
        f"{title}: CPU µs per statement (÷ {first}), wall µs",
        "",
        "| statement | " + " | ".join(f"{d} CPU | {d} wall" for d in drivers) + " |",
        "|---|" + "--:|--:|" * len(drivers),
    ]
    for statement in ("read one", "read 50", "insert"):
        cells = []
        for driver in drivers:
            cpu, wall = result[(driver, statement)]
            ratio = cpu / result[(first, statement)][0]
            cells.append(f"{cpu:.0f}" + ("" if driver == first else f" ({ratio:.2f})"))
            cells.append(f"{wall:.0f}")
        lines.append(f"| {statement} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    prepare()
    try:
        sync_result = measure_sync()
        async_result = uvloop.run(measure_async())
    finally:
        drop()
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("sqlalchemy", *DISTRIBUTIONS.values(), "uvloop")
    )
    print(f"{STATEMENTS} statements × {BATCHES} batches, median batch; {packages}\n")
    print(table("async (uvloop)", ASYNC_DRIVERS, async_result))
    print()
    print(table("sync", SYNC_DRIVERS, sync_result))


if __name__ == "__main__":
    main()
