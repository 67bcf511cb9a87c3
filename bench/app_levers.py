"""CPU per request of the generated app, in-process (no server, no socket), with one lever changed.

Where `read_paths.py` isolates the database layer, this measures the whole ASGI app that uvicorn
calls (the middleware, FastAPI's routing and dependencies, the session, the statement, the response)
for GET /users/{id}, and how much each lever of issue 24 would take off it. Every variant serves the
same route under a path of its own, `/lever/users/{id}`, added beside the generated routes, so all
of them pay the same routing; the request and its answer are the generated app's.

Variants, applied in the process that measures them (each variant runs in its own process, since
the generated settings are read once, at import):

- generated: the route as generated (the read-only session from FastAPI's dependency).
- pre-ping off: POOL_PRE_PING=false, the upper bound of any cheaper way to keep pre-ping's promise.
- no middleware: the template's four middleware layers removed, the upper bound of merging them.
- no read-only bookkeeping: the read-only session without its write-refusing listener and without
  the four `WeakKeyDictionary`s each transaction builds.
- session in the route: the route opens the read-only session itself (`async with`), instead of
  FastAPI's generator dependency.
- connection in the route: the route runs the statement on a connection of the read engine (Core),
  no session, no dependency.
- all of the above at once: the floor of what changing the template could reach.
- raw app: bench/apps/raw_asyncpg.py (async PostgreSQL projects only).

For a sync project: generated, pre-ping off, no middleware, and "no thread hops" (the same sync
code run on the event loop, the upper bound of removing the two hops a sync GET makes; blocking,
so not a production option).

Run it with the Python of a generated PostgreSQL project (bench/run.py leaves them in
bench/.work/projects/), from the repository root:

    bench/.work/projects/async-int/.venv/bin/python bench/app_levers.py
    bench/.work/projects/sync-int/.venv/bin/python bench/app_levers.py

It creates the database `bench_app_levers` on 127.0.0.1:5432 (user postgres) and drops it at the
end. Variants run one process each, in 3 rounds of alternating order; each process measures 5
batches of 2,000 requests after 500 of warm-up; the table shows the median of the rounds' medians.
"""

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "bench_app_levers"
APPS = Path(__file__).resolve().parent / "apps"
ROUNDS = 3
BATCHES = 5
REQUESTS = 2000
WARM_UP = 500

ASYNC_VARIANTS = [
    "generated",
    "pre-ping off",
    "no middleware",
    "no read-only bookkeeping",
    "session in the route",
    "connection in the route",
    "all of the above at once",
    "raw app",
]
SYNC_VARIANTS = ["generated", "pre-ping off", "no middleware", "no thread hops"]
MIDDLEWARE = {"HeadAsGet", "RequestBody", "RequestContext", "RequestMetrics"}


def scope_for(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def request(app: Any, path: str) -> int:
    """One GET through the ASGI app, as a server would call it; the status it answered."""
    delivered = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # The client never leaves.
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope_for("GET", path), receive, send)
    return status


def lever_app(variant: str) -> Any:
    """The app of `variant`, with its route at /lever/users/{user_id}."""
    if variant == "raw app":
        sys.path.insert(0, str(APPS))
        import raw_asyncpg  # type: ignore[import-not-found]

        raw_asyncpg.app.get("/lever/users/{user_id}")(raw_asyncpg.read_user)
        return raw_asyncpg.app

    from fastapi import APIRouter, HTTPException
    from my_service import database
    from my_service.dependencies import read_session_scope
    from my_service.main import app
    from my_service.routes import users

    lever = APIRouter()
    route = {"response_model": users.UserPublic}

    if variant in {"no middleware", "all of the above at once"}:
        app.user_middleware = [m for m in app.user_middleware if m.cls.__name__ not in MIDDLEWARE]
    if variant in {"no read-only bookkeeping", "all of the above at once"}:
        from sqlalchemy import event
        from sqlalchemy.orm import session as orm_session

        event.remove(database.ReadOnlySession, "do_orm_execute", database._refuse_writes)
        take_snapshot = orm_session.SessionTransaction._take_snapshot

        def no_bookkeeping(self: Any) -> None:
            if not isinstance(self.session, database.ReadOnlySession):
                take_snapshot(self)

        orm_session.SessionTransaction._take_snapshot = no_bookkeeping  # type: ignore[method-assign]

    def found(row: Any) -> Any:
        if row is None:
            raise HTTPException(404, "User not found")
        return row

    if variant == "session in the route":

        async def read_user(user_id: int) -> Any:
            async with read_session_scope() as session:
                result = await session.execute(users.SELECT_USER, {"user_id": user_id})
                return found(result.one_or_none())

        lever.get("/lever/users/{user_id}", **route)(read_user)
    elif variant in {"connection in the route", "all of the above at once"}:

        async def read_user(user_id: int) -> Any:
            async with database.read_engine.connect() as connection:
                result = await connection.execute(users.SELECT_USER, {"user_id": user_id})
                return found(result.one_or_none())

        lever.get("/lever/users/{user_id}", **route)(read_user)
    elif variant == "no thread hops":
        sync_read_user = users.read_user

        async def read_user(user_id: int) -> Any:
            with read_session_scope() as session:
                return sync_read_user(user_id, session)

        lever.get("/lever/users/{user_id}", **route)(read_user)
    else:
        lever.get("/lever/users/{user_id}", **route)(users.read_user)
    app.include_router(lever)
    return app


async def measure(variant: str) -> list[float]:
    app = lever_app(variant)
    async with app.router.lifespan_context(app):
        for _ in range(WARM_UP):
            assert await request(app, "/lever/users/5") == 200
        batches = []
        for _ in range(BATCHES):
            gc.collect()
            started = time.process_time()
            for _ in range(REQUESTS):
                await request(app, "/lever/users/5")
            batches.append((time.process_time() - started) / REQUESTS * 1e6)
    return batches


def run_variant(variant: str) -> None:
    """In a process of its own: print the variant's batches as JSON."""
    import logging

    import uvloop

    # The access log goes nowhere: only the cost of writing the record stays.
    logging.basicConfig(level=logging.WARNING, handlers=[logging.NullHandler()])
    logging.getLogger("my_service.access").setLevel(logging.INFO)
    print(json.dumps(uvloop.run(measure(variant))))


def psql(sql: str, database: str = "postgres") -> None:
    subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-c", sql],
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--only", help="comma-separated variants to run (default: all)")
    arguments = parser.parse_args()
    if arguments.variant:
        run_variant(arguments.variant)
        return

    from my_service import database

    asynchronous = database.engine.__class__.__name__ == "AsyncEngine"
    variants = ASYNC_VARIANTS if asynchronous else SYNC_VARIANTS
    if arguments.only:
        variants = [variant for variant in variants if variant in arguments.only.split(",")]
    driver = database.engine.url.drivername
    psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    psql(f"CREATE DATABASE {DATABASE}")
    url = f"{SERVER}/{DATABASE}"
    try:
        setup = (
            "CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL, name text NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL"
            " DEFAULT now());"
            " INSERT INTO users (email, name) SELECT 'user-' || n || '@example.org', 'User'"
            " FROM generate_series(1, 1000) AS n"
        )
        psql(setup, DATABASE)
        rounds: dict[str, list[float]] = {variant: [] for variant in variants}
        for number in range(ROUNDS):
            order = variants if number % 2 == 0 else variants[::-1]
            for variant in order:
                environment = {**os.environ, "DATABASE_URL": url.replace("postgresql", driver, 1)}
                if variant == "raw app":
                    environment["DATABASE_URL"] = url
                if variant in {"pre-ping off", "all of the above at once"}:
                    environment["POOL_PRE_PING"] = "false"
                output = subprocess.run(
                    [sys.executable, __file__, "--variant", variant],
                    env=environment,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                rounds[variant].append(statistics.median(json.loads(output)))
                print(
                    f"round {number + 1}: {variant}: {rounds[variant][-1]:.0f} µs", file=sys.stderr
                )
    finally:
        psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    base = statistics.median(rounds["generated"])
    print(
        f"{'async' if asynchronous else 'sync'} app ({driver}), GET /users/{{id}}, CPU µs per request"
    )
    print("| variant | µs CPU per request | ÷ generated | rounds |")
    print("|---|--:|--:|---|")
    for variant, values in rounds.items():
        median = statistics.median(values)
        each = ", ".join(f"{value:.0f}" for value in values)
        print(f"| {variant} | {median:.0f} | {median / base:.2f} | {each} |")


if __name__ == "__main__":
    main()
