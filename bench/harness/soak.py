"""The memory soak: one app under a long mix of requests, its worker's RSS sampled after every step.

A service whose memory grows with the requests it has served runs out of it, however slowly. The
soak serves one app, loads it with bench/wrk/mixed.lua (POST, GET one, GET a page, PATCH, DELETE)
in steps, reads the worker's VmRSS after each, and judges the series: the growth over the second
half of the steps against the first. Memory that levels off grows little in the second half.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from .apps import PACKAGE, App, all_apps, project_dir
from .common import BENCH, WORK, http, log, run
from .load import _measured
from .resources import proc_status
from .serving import Server, create_database, drop_database, generate

MIXED_SCRIPT = BENCH / "wrk" / "mixed.lua"
LEVELS_OFF = 0.02
"""RSS growth over the second half of the steps below which the memory counts as levelled off."""
SETTLE = 0.5
"""Seconds between the end of a step and the RSS sample: the last answers are written out."""


@dataclass(frozen=True)
class SoakApp:
    name: str
    database: str
    mode: str
    pk: str


SOAK_APPS = {
    app.name: app
    for app in (
        SoakApp("sqlite-sync-int", "sqlite", "sync", "int"),
        SoakApp("sqlite-async-int", "sqlite", "async", "int"),
        SoakApp("gen-async-int", "postgresql", "async", "int"),
        SoakApp("gen-sync-int", "postgresql", "sync", "int"),
    )
}


@dataclass
class Soak:
    app: str
    steps: list[dict] = field(default_factory=list)
    """wrk's result per step, with the cumulative requests and the RSS after it (KiB)."""
    rss_start_kib: int = 0
    hwm_kib: int = 0

    @property
    def requests(self) -> int:
        return sum(step["requests"] for step in self.steps)

    @property
    def errors(self) -> int:
        return sum(step["errors"] for step in self.steps)

    def growth(self) -> tuple[float, float]:
        """RSS growth over the first half of the steps and over the second (shares of the RSS the
        half started with): from the first step's sample to the middle one, and on to the last."""
        rss = [step["rss_kib"] for step in self.steps]
        middle = rss[(len(rss) - 1) // 2]
        return (middle - rss[0]) / rss[0], (rss[-1] - middle) / middle

    @property
    def levels_off(self) -> bool:
        return self.growth()[1] < LEVELS_OFF


def _sqlite_app(spec: SoakApp) -> App:
    project = project_dir(spec.mode, spec.pk, database="sqlite")
    # The URL scheme the project's own .env.example gives (its driver), on a file in bench/.work.
    example = (project / ".env.example").read_text()
    scheme = next(
        line.split("=", 1)[1].split("://", 1)[0]
        for line in example.splitlines()
        if line.startswith("DATABASE_URL=")
    )
    path = WORK / "soak" / f"{spec.name}.db"
    return App(
        name=spec.name,
        description=f"generated, database=sqlite, sqlalchemy_mode={spec.mode}, primary_key={spec.pk}",
        project=project,
        target=f"{PACKAGE}.main:app",
        app_dir=None,
        pk=spec.pk,
        database_url=f"{scheme}:///{path}",
    )


def prepare(spec: SoakApp, vcs_ref: str, seed_users: int, reuse: bool) -> App:
    """Generate (unless `reuse` finds it) and install the app's project and make its database."""
    project = project_dir(spec.mode, spec.pk, database=spec.database)
    if not (reuse and (project / ".venv").exists()):
        generate(spec.mode, spec.pk, vcs_ref, database=spec.database)
    if spec.database == "postgresql":
        app = all_apps()[spec.name]
        create_database(app, seed_users)
        return app
    app = _sqlite_app(spec)
    path = WORK / "soak" / f"{spec.name}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["DATABASE_URL"] = app.url
    run(
        [str(project / ".venv" / "bin" / "alembic"), "upgrade", "head"],
        cwd=project,
        env=env,
        timeout=120,
    )
    return app


def _seed_over_http(server: Server, seed_users: int) -> None:
    """The same users as the PostgreSQL databases get, through the app (SQLite has no psql)."""
    for i in range(1, seed_users + 1):
        status, body = http(
            "POST",
            f"{server.base}/users",
            {"email": f"seed-{i}@example.org", "name": f"Seed User {i}"},
        )
        assert status == 201, (status, body)


def soak(
    app: App, steps: int, seconds: float, connections: int, threads: int, seed_users: int
) -> Soak:
    """Serve the app once and load it for `steps` steps of `seconds`, sampling RSS after each."""
    result = Soak(app.name)
    server = Server(app, "soak")
    try:
        server.wait_ready()
        if app.database_url:
            _seed_over_http(server, seed_users)
        result.rss_start_kib = proc_status(server.pid)["VmRSS"]
        total = 0
        for step in range(1, steps + 1):
            cmd = [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "5s",
                "-s",
                str(MIXED_SCRIPT),
                server.base,
                "--",
                f"{step}-{time.monotonic_ns()}",
            ]
            measured, cpu, _ = _measured(server, cmd, seconds + 60)
            time.sleep(SETTLE)
            total += measured["requests"]
            measured.update(
                step=step,
                total=total,
                rps=measured["requests"] / (measured["duration_us"] / 1e6),
                cpu_us_per_request=1e6 * cpu / max(1, measured["requests"]),
                rss_kib=proc_status(server.pid)["VmRSS"],
                errors=sum(
                    measured[k]
                    for k in (
                        "connect_errors",
                        "read_errors",
                        "write_errors",
                        "status_errors",
                        "timeouts",
                    )
                ),
            )
            result.steps.append(measured)
            log(
                f"{app.name} step {step}/{steps}: {total} requests, "
                f"RSS {measured['rss_kib'] / 1024:.1f} MiB, {measured['errors']} errors"
            )
        result.hwm_kib = proc_status(server.pid)["VmHWM"]
    finally:
        server.stop()
        if not app.database_url:
            drop_database(app)
    return result


def soak_report(soaks: list[Soak], args_line: str, seconds: float, connections: int) -> str:
    lines = [
        "# Memory soak",
        "",
        'Written by `bench/soak.py` (bench/README.md, "Memory soak"). Each app is served once (uvicorn, '
        f"one worker) and loaded in steps of {seconds:g} s by wrk ({connections} connections) with "
        "bench/wrk/mixed.lua: every connection cycles through POST /users, GET /users/{id}, "
        "GET /users?limit=50, PATCH /users/{id} and DELETE /users/{id}, so the table keeps its size. "
        "After each step the worker's VmRSS is read from /proc. The verdict compares the RSS growth "
        "over the second half of the steps (middle sample → last) with the first half (first → "
        f"middle); the memory levels off when the second half grows less than {LEVELS_OFF:.0%}.",
        "",
        f"Command: `{args_line}`",
        "",
        "## Verdict",
        "",
        "| app | requests | errors | RSS at start MiB | after step 1 | middle | last | peak (VmHWM) "
        "| growth, 1st half | growth, 2nd half | levels off |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in soaks:
        rss = [step["rss_kib"] / 1024 for step in s.steps]
        first, second = s.growth()
        lines.append(
            f"| {s.app} | {s.requests} | {s.errors} | {s.rss_start_kib / 1024:.1f} | {rss[0]:.1f} "
            f"| {rss[(len(rss) - 1) // 2]:.1f} | {rss[-1]:.1f} | {s.hwm_kib / 1024:.1f} "
            f"| {first:+.1%} | {second:+.1%} | {'yes' if s.levels_off else '**no**'} |"
        )
    for s in soaks:
        lines += [
            "",
            f"## {s.app}",
            "",
            "| step | requests so far | req/s | CPU µs/req | p99 ms | errors | RSS MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {step['step']} | {step['total']} | {step['rps']:.0f} | "
            f"{step['cpu_us_per_request']:.0f} | {step['p99_us'] / 1000:.1f} | {step['errors']} | "
            f"{step['rss_kib'] / 1024:.1f} |"
            for step in s.steps
        ]
    return "\n".join(lines) + "\n"
