"""selectinload against joinedload: the cost of loading users with their posts, in-process (no HTTP).

Each load opens what a GET request would (a read-only session from the generated engine) and loads
either one user with N posts or a page of 50 users with N posts each, through
`selectinload(User.posts)` (a second SELECT ... WHERE author_id IN (...)) or `joinedload(User.posts)`
(one SELECT with a LEFT OUTER JOIN, a user's columns repeated on each of its posts' rows). The two
run interleaved, in 9 batches (their order swapped every batch, garbage collected before each); the
median batch's CPU time (time.process_time: this process only, not PostgreSQL's) and wall time per
load, and the median over the batches of joinedload's CPU ÷ selectinload's, are printed as a Markdown
table.

Run it with the Python of a generated PostgreSQL project, async or sync (bench/run.py leaves them in
bench/.work/projects/), from the repository root:

    bench/.work/projects/async-int/.venv/bin/python bench/eager_loading.py
    bench/.work/projects/sync-int/.venv/bin/python bench/eager_loading.py

It creates the database `bench_eager_loading` on 127.0.0.1:5432 (user postgres), and drops it at the end.
"""

import asyncio
import gc
import os
import statistics
import time
from typing import Any

import sqlalchemy

SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "bench_eager_loading"
os.environ["DATABASE_URL"] = f"{SERVER}/{DATABASE}"

ONE_USER = [1, 10, 100, 300, 1000]
"""Posts of the one user loaded."""
PAGE = 50
PAGE_POSTS = [1, 3, 10, 100]
"""Posts of each of the 50 users on a page."""
BATCHES = 9
WORK_PER_BATCH = 2000
"""Posts loaded per batch and variant, roughly: loads per batch = this ÷ posts per load (5 at least)."""


def admin(sql: str) -> None:
    """Run one statement on the server's `postgres` database, outside a transaction."""
    from my_service.database import engine

    url = engine.url.set(database="postgres")
    if url.get_dialect().is_async:
        import asyncpg

        async def execute() -> None:
            connection = await asyncpg.connect(f"{SERVER}/postgres")
            await connection.execute(sql)
            await connection.close()

        asyncio.run(execute())
        return
    admin_engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as connection:
        connection.exec_driver_sql(sql)
    admin_engine.dispose()


SEED = """
INSERT INTO users (email, name) VALUES {users};
INSERT INTO posts (title, body, author_id)
SELECT 'Post ' || n, repeat('Some words of a post. ', 10), u.id
FROM users AS u
JOIN LATERAL generate_series(1, split_part(split_part(u.email, '@', 1), '-', 2)::int) AS n ON true;
ANALYZE;
"""


def seed_sql() -> str:
    """Users named by their post count: one-<N>-0@ for the single users, page-<N>-<i>@ for pages."""
    emails = [f"one-{n}-0@example.org" for n in ONE_USER]
    emails += [f"page-{n}-{i}@example.org" for n in PAGE_POSTS for i in range(PAGE)]
    return SEED.format(users=", ".join(f"('{email}', 'User')" for email in emails))


def cases() -> list[tuple[str, int, Any]]:
    """(label, posts per load, WHERE clause of the users loaded)."""
    from my_service.models import User

    found: list[tuple[str, int, Any]] = [
        (f"1 user, {n} post{'s' * (n > 1)}", n, User.email == f"one-{n}-0@example.org")
        for n in ONE_USER
    ]
    found += [
        (f"{PAGE} users, {n} post{'s' * (n > 1)} each", PAGE * n, User.email.like(f"page-{n}-%"))
        for n in PAGE_POSTS
    ]
    return found


def statements() -> dict[str, dict[str, Any]]:
    from my_service.models import User
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload, selectinload

    loaders = {"selectinload": selectinload(User.posts), "joinedload": joinedload(User.posts)}
    return {
        label: {
            name: select(User).where(where).order_by(User.id).limit(PAGE).options(loader)
            for name, loader in loaders.items()
        }
        for label, _, where in cases()
    }


def report(
    mode: str,
    medians: dict[str, dict[str, tuple[float, float]]],
    ratios: dict[str, float],
) -> None:
    print(f"{mode}, SQLAlchemy {sqlalchemy.__version__}")
    print(
        "| load | selectinload CPU µs | joinedload CPU µs | selectinload wall µs "
        "| joinedload wall µs | joinedload ÷ selectinload, CPU | cheaper (CPU) |"
        "\n|---|--:|--:|--:|--:|--:|---|"
    )
    for label, by_loader in medians.items():
        (s_cpu, s_wall), (j_cpu, j_wall) = by_loader["selectinload"], by_loader["joinedload"]
        cheaper = "selectinload" if ratios[label] > 1 else "joinedload"
        print(
            f"| {label} | {s_cpu:.0f} | {j_cpu:.0f} | {s_wall:.0f} | {j_wall:.0f} "
            f"| {ratios[label]:.2f} | {cheaper} |"
        )


def ordered(by_loader: dict[str, Any], batch: int) -> list[tuple[str, Any]]:
    """The loaders in turn, the first one first in even batches and last in odd ones."""
    items = list(by_loader.items())
    return items if batch % 2 == 0 else items[::-1]


def loads_per_batch(posts: int) -> int:
    return max(5, WORK_PER_BATCH // posts)


def run_sync() -> None:
    import my_service.models  # noqa: F401 (registers the tables on Base.metadata)
    from my_service.database import Base, ReadSessionLocal, engine, read_engine

    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        for statement in seed_sql().split(";"):
            if statement.strip():
                connection.exec_driver_sql(statement)
    queries = statements()
    expected = {label: posts for label, posts, _ in cases()}

    def load(statement: Any) -> int:
        with ReadSessionLocal() as session:
            users = session.scalars(statement).unique().all()
            return sum(len(user.posts) for user in users)

    batches: dict[str, dict[str, list[tuple[float, float]]]] = {
        label: {name: [] for name in by_loader} for label, by_loader in queries.items()
    }
    for label, by_loader in queries.items():
        for statement in by_loader.values():
            assert load(statement) == expected[label], label
            for _ in range(3):
                load(statement)
    for batch in range(BATCHES):
        for label, by_loader in queries.items():
            reps = loads_per_batch(expected[label])
            for name, statement in ordered(by_loader, batch):
                gc.collect()
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(reps):
                    load(statement)
                batches[label][name].append(
                    (
                        (time.process_time() - cpu) / reps * 1e6,
                        (time.perf_counter() - wall) / reps * 1e6,
                    )
                )
    engine.dispose()
    read_engine.dispose()
    report("sync", medians_of(batches), paired_ratios(batches))


async def run_async() -> None:
    import my_service.models  # noqa: F401 (registers the tables on Base.metadata)
    from my_service.database import Base, ReadSessionLocal, engine, read_engine

    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        for statement in seed_sql().split(";"):
            if statement.strip():
                await connection.exec_driver_sql(statement)
    queries = statements()
    expected = {label: posts for label, posts, _ in cases()}

    async def load(statement: Any) -> int:
        async with ReadSessionLocal() as session:
            users = (await session.scalars(statement)).unique().all()
            return sum(len(user.posts) for user in users)

    batches: dict[str, dict[str, list[tuple[float, float]]]] = {
        label: {name: [] for name in by_loader} for label, by_loader in queries.items()
    }
    for label, by_loader in queries.items():
        for statement in by_loader.values():
            assert await load(statement) == expected[label], label
            for _ in range(3):
                await load(statement)
    for batch in range(BATCHES):
        for label, by_loader in queries.items():
            reps = loads_per_batch(expected[label])
            for name, statement in ordered(by_loader, batch):
                gc.collect()
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(reps):
                    await load(statement)
                batches[label][name].append(
                    (
                        (time.process_time() - cpu) / reps * 1e6,
                        (time.perf_counter() - wall) / reps * 1e6,
                    )
                )
    await engine.dispose()
    await read_engine.dispose()
    report("async", medians_of(batches), paired_ratios(batches))


def medians_of(
    batches: dict[str, dict[str, list[tuple[float, float]]]],
) -> dict[str, dict[str, tuple[float, float]]]:
    """Per case and loader, the median batch's CPU and wall time (the batch of median CPU)."""
    result = {}
    for label, by_loader in batches.items():
        result[label] = {}
        for name, values in by_loader.items():
            median_cpu = statistics.median_low([cpu for cpu, _ in values])
            result[label][name] = next(v for v in values if v[0] == median_cpu)
    return result


def paired_ratios(batches: dict[str, dict[str, list[tuple[float, float]]]]) -> dict[str, float]:
    """Per case, the median over the batches of joinedload's CPU ÷ selectinload's in the same batch:
    steadier than a ratio of medians on a machine whose load changes from batch to batch."""
    return {
        label: statistics.median(
            j[0] / s[0]
            for s, j in zip(by_loader["selectinload"], by_loader["joinedload"], strict=True)
        )
        for label, by_loader in batches.items()
    }


def main() -> None:
    from my_service.database import engine

    admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    admin(f"CREATE DATABASE {DATABASE}")
    try:
        if not engine.url.get_dialect().is_async:
            run_sync()
            return
        try:
            import uvloop
        except ImportError:
            asyncio.run(run_async())
        else:
            uvloop.run(run_async())
    finally:
        admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


if __name__ == "__main__":
    main()
