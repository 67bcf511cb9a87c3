"""CPU per read of one user, through each way SQLAlchemy can run it, in-process (no HTTP).

Isolates the database layer of GET /users/{id}: each variant opens what a request would open (a
session or a connection from the generated engine, with its pool settings), reads user 5, and
closes it; the last one reads it through a bare asyncpg pool, as the raw reference app does.
Variants run interleaved, 1000 reads per batch, 7 batches; the median batch is reported.

Run it with the Python of a generated async PostgreSQL project (bench/run.py leaves one in
bench/.work/projects/async-int), from the repository root:

    bench/.work/projects/async-int/.venv/bin/python bench/read_paths.py
    POOL_PRE_PING=false bench/.work/projects/async-int/.venv/bin/python bench/read_paths.py

It creates the database `bench_read_paths` on 127.0.0.1:5432 (user postgres), and drops it at the end.
"""

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg

SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "bench_read_paths"
os.environ["DATABASE_URL"] = f"{SERVER}/{DATABASE}"

READS = 1000
BATCHES = 7


async def create_database() -> None:
    admin = await asyncpg.connect(f"{SERVER}/postgres")
    await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    await admin.execute(f"CREATE DATABASE {DATABASE}")
    await admin.close()


async def drop_database() -> None:
    admin = await asyncpg.connect(f"{SERVER}/postgres")
    await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    await admin.close()


async def measure() -> dict[str, float]:
    # Imported here: the generated settings read DATABASE_URL when the package is imported.
    from my_service.database import Base, ReadSessionLocal, SessionLocal, engine, read_engine
    from my_service.models import User
    from my_service.routes.users import SELECT_USER
    from my_service.schemas import UserPublic, columns_of
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import AsyncConnection

    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        await connection.exec_driver_sql(
            "INSERT INTO users (email, name) "
            "SELECT 'user-' || n || '@example.org', 'User' FROM generate_series(1, 1000) AS n"
        )

    orm_columns = columns_of(User, UserPublic)
    table = User.__table__
    table_columns = [table.c[name] for name in UserPublic.model_fields]
    # The floor: the driver alone, as bench/apps/raw_asyncpg.py uses it.
    pool = await asyncpg.create_pool(f"{SERVER}/{DATABASE}", min_size=5, max_size=15)
    raw_sql = f"SELECT {', '.join(UserPublic.model_fields)} FROM users WHERE id = $1"

    async def session_get() -> object:
        async with SessionLocal() as session:
            return await session.get(User, 5)

    async def read_session_prebuilt() -> object:
        async with ReadSessionLocal() as session:
            result = await session.execute(SELECT_USER, {"user_id": 5})
            return result.one_or_none()

    async def session_prebuilt() -> object:
        async with SessionLocal() as session:
            result = await session.execute(SELECT_USER, {"user_id": 5})
            return result.one_or_none()

    async def session_orm_columns() -> object:
        async with SessionLocal() as session:
            result = await session.execute(select(*orm_columns).where(User.id == 5))
            return result.one_or_none()

    async def session_table_columns() -> object:
        async with SessionLocal() as session:
            result = await session.execute(select(*table_columns).where(table.c.id == 5))
            return result.one_or_none()

    async def core(connection: AsyncConnection) -> object:
        result = await connection.execute(select(*table_columns).where(table.c.id == 5))
        return result.one_or_none()

    async def connection_table_columns() -> object:
        async with engine.connect() as connection:
            return await core(connection)

    async def autocommit_table_columns() -> object:
        async with read_engine.connect() as connection:
            return await core(connection)

    async def raw_asyncpg() -> object:
        return await pool.fetchrow(raw_sql, 5)

    variants: dict[str, Callable[[], Awaitable[object]]] = {
        "session.get(User, id) (the tutorial's read)": session_get,
        "read-only session, SELECT_USER built once (generated GET routes)": read_session_prebuilt,
        "read-write session, SELECT_USER built once": session_prebuilt,
        "session.execute(select(*columns_of(User, UserPublic))), built per read": session_orm_columns,
        "session.execute(select(*table columns))": session_table_columns,
        "engine.connect(), READ COMMITTED transaction, table columns (Core)": connection_table_columns,
        "read_engine.connect(), autocommit, table columns (Core)": autocommit_table_columns,
        "asyncpg pool, no SQLAlchemy (the raw app's read)": raw_asyncpg,
    }
    for read in variants.values():
        for _ in range(300):
            await read()
    batches: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(BATCHES):
        for name, read in variants.items():
            started = time.process_time()
            for _ in range(READS):
                await read()
            batches[name].append((time.process_time() - started) / READS * 1e6)
    await engine.dispose()
    await read_engine.dispose()
    await pool.close()
    return {name: statistics.median(values) for name, values in batches.items()}


async def main() -> None:
    await create_database()
    try:
        medians = await measure()
    finally:
        await drop_database()
    print(f"POOL_PRE_PING={os.environ.get('POOL_PRE_PING', 'default')}")
    print("| read path | CPU µs per read (median batch) |\n|---|--:|")
    for name, value in medians.items():
        print(f"| {name} | {value:.0f} |")


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
