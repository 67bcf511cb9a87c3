"""CPU per statement of the hooks SQLAlchemy offers the metrics, in-process, without a server.

The generated metrics time every statement and count the connections out of the pool. This script
times one `SELECT` on a connection taken from a pool and given back, as a request does, with:

- `none`: no hook (what `metrics=none` runs);
- `engine events`: the engine's `before_cursor_execute` and `after_cursor_execute` events and the
  pool's `checkout` and `checkin` events (the generated metrics up to issue 23's cost work);
- `dialect events`: the dialect's `do_execute` event and a pool that counts in `_do_get` and
  `_do_return_conn` (the generated metrics since).

Both measured variants also time the wait for a connection (`connect`) and listen to `handle_error`,
as the generated pool does. SQLite in memory keeps the database's own time out of the figures:
what is left is SQLAlchemy's and the hooks' Python. Variants run interleaved, 5,000 statements per
batch, 7 batches; the fastest batch is reported (CPU time of this process).

Run it with the Python of a generated project (it needs SQLAlchemy and prometheus-client), e.g.
after bench/run.py:

    bench/.work/projects/async-int/.venv/bin/python bench/metrics_hooks.py
"""

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from sqlalchemy import Column, Engine, Integer, MetaData, Table, create_engine, event, select
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, QueuePool

STATEMENTS = 5000
BATCHES = 7

registry = CollectorRegistry()
STATEMENT_DURATION = Histogram("statement", "", ["pool"], registry=registry).labels("write")
WAIT = Histogram("wait", "", ["pool"], registry=registry).labels("write")
WAITING = Gauge("waiting", "", ["pool"], registry=registry).labels("write")
CHECKED_OUT = Gauge("checked_out", "", ["pool"], registry=registry).labels("write")
USERS = Table("users", MetaData(), Column("id", Integer, primary_key=True))


class WaitTimingPool(QueuePool):
    def connect(self) -> PoolProxiedConnection:
        WAITING.inc()
        started = time.perf_counter()
        try:
            return super().connect()
        finally:
            WAITING.dec()
            WAIT.observe(time.perf_counter() - started)


class CountingPool(WaitTimingPool):
    def _do_get(self) -> ConnectionPoolEntry:
        record = super()._do_get()
        CHECKED_OUT.inc()
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        CHECKED_OUT.dec()
        super()._do_return_conn(record)


def engine_events(engine: Engine) -> None:
    counted_out: set[ConnectionPoolEntry] = set()

    @event.listens_for(engine, "checkout")
    def checked_out(_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        counted_out.add(record)
        CHECKED_OUT.inc()

    @event.listens_for(engine, "checkin")
    def checked_in(_connection: Any, record: ConnectionPoolEntry) -> None:
        if record in counted_out:
            counted_out.remove(record)
            CHECKED_OUT.dec()

    @event.listens_for(engine, "before_cursor_execute")
    def started(connection: Any, *_: Any) -> None:
        connection.info["statement_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def finished(connection: Any, *_: Any) -> None:
        STATEMENT_DURATION.observe(time.perf_counter() - connection.info["statement_started"])


def dialect_events(engine: Engine) -> None:
    @event.listens_for(engine, "do_execute")
    def execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        started = time.perf_counter()
        try:
            context.dialect.do_execute(cursor, statement, parameters, context)
        finally:
            STATEMENT_DURATION.observe(time.perf_counter() - started)
        return True


def build(pool: type[QueuePool], hooks: Callable[[Engine], None] | None) -> Engine:
    engine = create_engine(
        "sqlite:///file:metrics_hooks?mode=memory&cache=shared&uri=true", poolclass=pool
    )
    if hooks is not None:
        hooks(engine)
        event.listen(engine, "handle_error", lambda _context: None)
    USERS.create(engine, checkfirst=True)
    return engine


def main() -> None:
    variants = {
        "none": build(QueuePool, None),
        "engine events": build(WaitTimingPool, engine_events),
        "dialect events": build(CountingPool, dialect_events),
    }
    query = select(USERS).where(USERS.c.id == 1)
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(BATCHES):
        for name, engine in variants.items():
            started = time.process_time()
            for _ in range(STATEMENTS):
                with engine.connect() as connection:
                    connection.execute(query).all()
            per_statement = (time.process_time() - started) / STATEMENTS * 1e6
            best[name] = min(best[name], per_statement)
    for name, cpu in best.items():
        print(f"{name:15} {cpu:6.1f} µs CPU per statement, +{cpu - best['none']:5.1f} µs")


if __name__ == "__main__":
    main()
