#!/usr/bin/env python3
"""Benchmark the services the template generates against two hand-written reference apps.

    python3 bench/run.py            # the full run (about 9 minutes), writes bench/RESULTS.md
    python3 bench/run.py --quick    # a smoke run of the same steps (about a minute), writes bench/.work/
    python3 bench/run.py --profile  # py-spy profiles of GET /users/{id} and GET /users, writes bench/PROFILE.md

See bench/README.md for what is measured and how to read it. Standard library only; needs copier in
the repository's .venv, uv, wrk, psql and a PostgreSQL server on 127.0.0.1:5432 (user postgres,
trust authentication). Every server it starts listens on 127.0.0.1 and is stopped before it exits.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"
COPIER = REPO / ".venv" / "bin" / "copier"
LUA = BENCH / "wrk" / "users.lua"
REFERENCE_APPS = BENCH / "apps"

PG_HOST = "127.0.0.1"  # loopback only: the benchmark never sends traffic anywhere else
PG_PORT = 5432
PG_USER = "postgres"
PACKAGE = "my_service"  # the package name of `copier copy --defaults`

ROUTES = {
    "get": "GET /users/{id}",
    "list": "GET /users?limit=50",
    "post": "POST /users",
}
USER_KEYS = {"id", "email", "name", "created_at", "updated_at"}
VARIANTS = [("async", "int"), ("async", "uuid"), ("sync", "int"), ("sync", "uuid")]
BASELINE = "raw"
MATRIX_TEST = "tests/test_matrix.py"
ONE_COMBINATION = "postgresql-async-uuid"  # the default mode and key, on the server database
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


# ---------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(
    cmd: list[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    quiet: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (bounded by `timeout`); raise with its output if it fails."""
    result = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        text=True,
        timeout=timeout,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
    )
    if result.returncode != 0:
        output = (result.stdout or "")[-4000:]
        raise SystemExit(f"command failed ({result.returncode}): {shlex.join(cmd)}\n{output}")
    return result


def psql(sql: str, database: str = "postgres") -> str:
    cmd = [
        "psql",
        "-h",
        PG_HOST,
        "-p",
        str(PG_PORT),
        "-U",
        PG_USER,
        "-d",
        database,
        "-v",
        "ON_ERROR_STOP=1",
        "-Atq",
        "-c",
        sql,
    ]
    return run(cmd, timeout=120).stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: dict | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in {"VmRSS", "VmHWM"}:
                values[key] = int(rest.split()[0])
    return values


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def machine_busy(seconds: float) -> float:
    """Share of all CPUs (0-1) busy over the next `seconds`."""
    busy0, total0 = machine_cpu()
    time.sleep(seconds)
    busy1, total1 = machine_cpu()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_for_quiet(limit: float) -> float | None:
    """Wait up to `limit` seconds for other processes to leave the CPUs idle; return the busy share seen
    last, or None when the wait is off. Something else running on the machine skews every number."""
    if limit <= 0:
        return None
    deadline = time.monotonic() + limit
    while True:
        busy = machine_busy(1.0)
        if busy < 0.15 or time.monotonic() >= deadline:
            if busy >= 0.15:
                log(f"machine still {busy:.0%} busy with other work after {limit:g} s; going on")
            return busy
        log(f"machine {busy:.0%} busy with other work; waiting")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------------------------------------
# The apps
# ---------------------------------------------------------------------------------------------------


@dataclass
class App:
    name: str
    description: str
    project: Path
    """The generated project whose .venv runs the app (and whose migrations made its schema)."""
    target: str
    """What uvicorn imports."""
    app_dir: Path | None
    pk: str
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment of the server (the generated settings read POOL_SIZE, POOL_PRE_PING, ...)."""
    database: str = ""
    ids_file: Path = Path()
    results: dict[str, list[dict]] = field(default_factory=lambda: collections.defaultdict(list))
    rss_start_kib: list[int] = field(default_factory=list)
    hwm_kib: list[int] = field(default_factory=list)
    busy_starts: int = 0
    """Rounds this app started while other work kept the machine busy."""
    checked: bool = False

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.database}"


def project_dir(mode: str, pk: str) -> Path:
    return WORK / "projects" / f"{mode}-{pk}"


def all_apps() -> dict[str, App]:
    apps = {}
    for mode, pk in VARIANTS:
        apps[f"gen-{mode}-{pk}"] = App(
            name=f"gen-{mode}-{pk}",
            description=f"generated, sqlalchemy_mode={mode}, primary_key={pk}",
            project=project_dir(mode, pk),
            target=f"{PACKAGE}.main:app",
            app_dir=None,
            pk=pk,
        )
    apps["tutorial"] = App(
        name="tutorial",
        description="FastAPI SQL-tutorial style, async SQLAlchemy (bench/apps/tutorial_sqla.py)",
        project=project_dir("async", "int"),
        target="tutorial_sqla:app",
        app_dir=REFERENCE_APPS,
        pk="int",
    )
    apps["raw"] = App(
        name="raw",
        description="FastAPI + bare asyncpg pool (bench/apps/raw_asyncpg.py)",
        project=project_dir("async", "int"),
        target="raw_asyncpg:app",
        app_dir=REFERENCE_APPS,
        pk="int",
    )
    # The generated async app with its pool settings changed through the environment only (same 15
    # connections at most, none opened and closed under load, no pre-ping): what POOL_PRE_PING costs.
    apps["gen-async-int-tuned"] = App(
        name="gen-async-int-tuned",
        description="gen-async-int with POOL_SIZE=15 MAX_OVERFLOW=0 POOL_PRE_PING=false",
        project=project_dir("async", "int"),
        target=f"{PACKAGE}.main:app",
        app_dir=None,
        pk="int",
        env={"POOL_SIZE": "15", "MAX_OVERFLOW": "0", "POOL_PRE_PING": "false"},
    )
    for app in apps.values():
        app.database = "bench_" + app.name.replace("-", "_")
        app.ids_file = WORK / "ids" / f"{app.database}.txt"
    return apps


class Server:
    """One uvicorn process (one worker, no access log) on a free loopback port."""

    def __init__(self, app: App, label: str) -> None:
        self.app = app
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        log_path = WORK / "logs" / f"{app.name}-{label}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        cmd = [
            str(app.project / ".venv" / "bin" / "python"),
            "-m",
            "uvicorn",
            app.target,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        if app.app_dir:
            cmd += ["--app-dir", str(app.app_dir)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
        env.update(app.env, DATABASE_URL=app.url)
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            cmd, cwd=app.app_dir or app.project, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.pid = self.proc.pid

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if http("GET", self.base + "/users?limit=1")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(
            f"{self.app.name} did not start; log:\n{self.log_path.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


# ---------------------------------------------------------------------------------------------------
# Setup: projects, databases, data
# ---------------------------------------------------------------------------------------------------


def copier_copy(dest: Path, vcs_ref: str, answers: dict[str, str]) -> None:
    cmd = [str(COPIER), "copy", "--trust", "--defaults", "--quiet", "--vcs-ref", vcs_ref]
    for key, value in answers.items():
        cmd += ["-d", f"{key}={value}"]
    run([*cmd, str(REPO), str(dest)], timeout=300)


def time_copier(reps: int, vcs_ref: str) -> list[float]:
    """Wall time of `copier copy --trust --defaults` (the default answers), `reps` times."""
    times = []
    for i in range(reps):
        dest = WORK / "copier-timing" / str(i)
        shutil.rmtree(dest, ignore_errors=True)
        start = time.perf_counter()
        copier_copy(dest, vcs_ref, {})
        times.append(time.perf_counter() - start)
        shutil.rmtree(dest, ignore_errors=True)
    return times


def time_matrix(full: bool) -> list[tuple[str, str, float]]:
    """Wall time of the template's combination tests: all of them as the README's test command runs
    them (pytest-xdist, -n auto), and one combination alone (-n 0). Each generates its project(s),
    installs them with uv and runs their whole tool chain; uv's cache is warm after the first."""
    pytest = str(REPO / ".venv" / "bin" / "pytest")
    one = f"{MATRIX_TEST}::test_generated_project_passes_its_own_tool_chain[{ONE_COMBINATION}]"
    runs = [(f"one combination ({ONE_COMBINATION})", [pytest, "-q", "-n", "0", one])]
    if full:
        runs.insert(0, ("every combination", [pytest, "-q", MATRIX_TEST]))
    timings = []
    for label, cmd in runs:
        log(f"timing the template matrix: {label}")
        start = time.perf_counter()
        run([*cmd, "-p", "no:cacheprovider"], cwd=REPO, timeout=3600)
        elapsed = time.perf_counter() - start
        log(f"  {elapsed:.0f} s")
        timings.append((label, shlex.join(["pytest", *cmd[1:]]), elapsed))
    return timings


def generate(mode: str, pk: str, vcs_ref: str) -> None:
    dest = project_dir(mode, pk)
    shutil.rmtree(dest, ignore_errors=True)
    copier_copy(
        dest, vcs_ref, {"database": "postgresql", "sqlalchemy_mode": mode, "primary_key": pk}
    )
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    run(["uv", "sync", "--quiet"], cwd=dest, env=env, timeout=600)


def create_database(app: App, seed_users: int) -> None:
    psql(f'DROP DATABASE IF EXISTS "{app.database}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{app.database}"')
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["DATABASE_URL"] = app.url
    run(
        [str(app.project / ".venv" / "bin" / "alembic"), "upgrade", "head"],
        cwd=app.project,
        env=env,
        timeout=120,
    )
    id_column = "id, " if app.pk == "uuid" else ""
    id_value = "gen_random_uuid(), " if app.pk == "uuid" else ""
    # The same users in every database: seed-1 .. seed-N, one second apart.
    psql(
        f"INSERT INTO users ({id_column}email, name, created_at, updated_at) "
        f"SELECT {id_value}format('seed-%s@example.org', g), format('Seed User %s', g), "
        f"timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second', "
        f"timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second' "
        f"FROM generate_series(1, {seed_users}) AS g",
        app.database,
    )
    psql("VACUUM ANALYZE users", app.database)
    ids = psql("SELECT id FROM users ORDER BY created_at, id", app.database).splitlines()
    app.ids_file.parent.mkdir(parents=True, exist_ok=True)
    app.ids_file.write_text("\n".join(ids) + "\n")


def reset_table(app: App) -> None:
    """Remove the users POST created, so every run reads the same table."""
    psql("DELETE FROM users WHERE email NOT LIKE 'seed-%'", app.database)
    psql("VACUUM ANALYZE users", app.database)


def drop_database(app: App) -> None:
    psql(f'DROP DATABASE IF EXISTS "{app.database}" WITH (FORCE)')


def check_app(server: Server) -> None:
    """The app answers the three routes with the generated app's JSON shape and the seeded data."""
    app = server.app
    first_id = app.ids_file.read_text().split()[0]
    status, body = http("GET", f"{server.base}/users/{first_id}")
    assert status == 200 and isinstance(body, dict) and set(body) == USER_KEYS, (
        app.name,
        status,
        body,
    )
    assert body["email"] == "seed-1@example.org", (app.name, body)
    status, body = http("GET", f"{server.base}/users?limit=50")
    assert status == 200 and isinstance(body, list) and len(body) == 50, (app.name, status, body)
    assert all(set(item) == USER_KEYS for item in body), (app.name, body[0])
    emails = [item["email"] for item in body]
    assert emails == [f"seed-{i}@example.org" for i in range(1, 51)], (app.name, emails[:5])
    status, body = http(
        "POST", f"{server.base}/users", {"email": f"check-{app.name}@example.org", "name": "Check"}
    )
    assert status == 201 and isinstance(body, dict) and set(body) == USER_KEYS, (
        app.name,
        status,
        body,
    )
    if (
        app.name != "tutorial"
    ):  # the tutorial has no IntegrityError handler: a duplicate is a 500 there
        status, _ = http(
            "POST",
            f"{server.base}/users",
            {"email": f"check-{app.name}@example.org", "name": "Check"},
        )
        assert status == 409, (app.name, "a duplicate email must answer 409", status)
    app.checked = True


# ---------------------------------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------------------------------


def wrk(
    server: Server, route: str, seconds: float, connections: int, threads: int, tag: str
) -> dict:
    arg = str(server.app.ids_file) if route == "get" else tag
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        server.base,
        "--",
        route,
        arg,
    ]
    cpu0, machine0 = process_cpu_seconds(server.pid), machine_cpu()
    output = run(cmd, timeout=seconds + 60).stdout
    cpu1, machine1 = process_cpu_seconds(server.pid), machine_cpu()
    match = re.search(r"^BENCH_JSON (\{.*\})$", output, re.MULTILINE)
    if not match:
        raise SystemExit(f"no result from wrk:\n{output}")
    result = json.loads(match.group(1))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    # CPU of the app's process, 1.0 = one core; and of the whole machine, 1.0 = every core.
    result["app_cpu"] = (cpu1 - cpu0) / (result["duration_us"] / 1e6)
    result["machine_cpu"] = (machine1[0] - machine0[0]) / max(1, machine1[1] - machine0[1])
    result["errors"] = sum(
        result[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return result


def benchmark(apps: list[App], args: argparse.Namespace) -> None:
    for round_no in range(args.rounds):
        shift = round_no % len(apps)
        for app in apps[shift:] + apps[:shift]:  # a different order each round
            busy = wait_for_quiet(args.quiet_wait)
            if busy is not None and busy >= 0.15:
                app.busy_starts += 1
            server = Server(app, f"round{round_no + 1}")
            try:
                server.wait_ready()
                app.rss_start_kib.append(proc_status(server.pid)["VmRSS"])
                if not app.checked:
                    check_app(server)
                    reset_table(app)
                if args.warmup > 0:
                    wrk(server, "get", args.warmup, args.connections, args.threads, "warm")
                    wrk(server, "list", args.warmup, args.connections, args.threads, "warm")
                for route in ROUTES:
                    result = wrk(
                        server,
                        route,
                        args.duration,
                        args.connections,
                        args.threads,
                        f"r{round_no + 1}",
                    )
                    app.results[route].append(result)
                    log(
                        f"round {round_no + 1}/{args.rounds} {app.name:15} {ROUTES[route]:20} "
                        f"{result['rps']:8.0f} req/s  p50 {result['p50_us'] / 1000:6.2f} ms  "
                        f"p99 {result['p99_us'] / 1000:6.2f} ms  app CPU {result['app_cpu']:4.0%} "
                        f"({1e6 * result['app_cpu'] / result['rps']:5.0f} µs/req)  "
                        f"machine CPU {result['machine_cpu']:4.0%}  errors {result['errors']}"
                    )
                    if route == "post":
                        reset_table(app)
                app.hwm_kib.append(proc_status(server.pid)["VmHWM"])
            finally:
                server.stop()


# ---------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------


def versions(python: Path, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {'python': sys.version.split()[0]}\n"
        f"for n in {names!r}:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    return json.loads(run([str(python), "-c", code], timeout=60).stdout)


TEMPLATE_STATE: dict[str, str] = {}


def record_template_state() -> None:
    """The start time, and the template's commit and whether copier sees uncommitted changes in it."""
    head = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], timeout=30).stdout.strip()
    dirty = run(
        [
            "git",
            "-C",
            str(REPO),
            "status",
            "--porcelain",
            "--",
            "template",
            "extensions",
            "copier.yml",
        ],
        timeout=30,
    ).stdout.strip()
    TEMPLATE_STATE["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    if VCS_REF[0] != "HEAD":
        TEMPLATE_STATE["template"] = f"--vcs-ref {VCS_REF[0]} (HEAD is commit {head})"
    elif dirty:
        TEMPLATE_STATE["template"] = (
            f"commit {head} + uncommitted template changes (copier includes them)"
        )
    else:
        TEMPLATE_STATE["template"] = f"commit {head}, no uncommitted template changes"


VCS_REF = ["HEAD"]


def machine_info() -> list[tuple[str, str]]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    return [
        ("date (UTC)", TEMPLATE_STATE["date"]),
        ("template", TEMPLATE_STATE["template"]),
        ("CPU", f"{os.cpu_count()} × {cpu} (nproc {len(os.sched_getaffinity(0))})"),
        ("memory", f"{mem_kib / 1024 / 1024:.1f} GiB"),
        ("kernel", platform.release()),
        ("PostgreSQL", psql("SHOW server_version")),
        (
            "wrk",
            subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
            .stdout.splitlines()[0]
            .split(" Copyright")[0],
        ),  # exits 1 after printing its version
        ("uv", run(["uv", "--version"], timeout=10).stdout.strip()),
        ("copier", run([str(COPIER), "--version"], timeout=60).stdout.strip()),
    ]


def fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def report(
    apps: list[App],
    args: argparse.Namespace,
    copier_times: list[float],
    matrix_times: list[tuple[str, str, float]],
    command: str,
) -> str:
    by_name = {app.name: app for app in apps}
    baseline = by_name.get(BASELINE)
    lines = [
        "# Benchmark results",
        "",
        "Written by `bench/run.py`; see `bench/README.md` for what is measured and how to read it.",
        "",
        f"Command: `{command}`",
        "",
    ]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in machine_info()]
    names = [
        "fastapi",
        "starlette",
        "pydantic",
        "pydantic-core",
        "email-validator",
        "sqlalchemy",
        "asyncpg",
        "psycopg2-binary",
        "greenlet",
        "uvicorn",
        "uvloop",
        "httptools",
        "alembic",
    ]
    found: dict[str, str] = {}
    for project in sorted({app.project for app in apps}):
        found.update(versions(project / ".venv" / "bin" / "python", names))
    lines.append(f"| Python (apps) | {found.pop('python')} |")
    lines.append("| packages (apps) | " + ", ".join(f"{k} {v}" for k, v in found.items()) + " |")
    lines.append(
        f"| load | wrk, {args.threads} threads, {args.connections} connections, {args.rounds} "
        f"round(s) × {args.duration:g} s per app and route, {args.warmup:g} s warm-up per "
        f"GET route, apps in a different order each round |"
    )
    lines.append(
        f"| data | {args.seed_users} users per database; POST's rows deleted after each run |"
    )
    lines.append(
        "| server | uvicorn, 1 worker, `--no-access-log --log-level warning`, on the same "
        "machine as PostgreSQL and wrk |"
    )
    busy = sum(app.busy_starts for app in apps)
    lines.append(
        f"| quiet check | before each app start, waited up to {args.quiet_wait:g} s for other "
        f"processes to leave the CPUs under 15 % busy; {busy} of {len(apps) * args.rounds} starts "
        "went ahead on a busy machine |"
    )
    lines += [
        "",
        "## Throughput and latency",
        "",
        "Medians over the rounds; req/s range is min–max over the rounds. Ratios are against `raw` "
        "(req/s: higher is better for the app; p99: lower is better). app CPU: the uvicorn process's "
        "CPU time per second of load (1.00 = one core saturated); CPU µs/req: that CPU time per request, "
        "the figure least disturbed by other work on the machine.",
        "",
        "| route | app | req/s | range | p50 ms | p99 ms | req/s ÷ raw | p99 ÷ raw | app CPU | "
        "CPU µs/req | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for route, label in ROUTES.items():
        base_rps = median([r["rps"] for r in baseline.results[route]]) if baseline else float("nan")
        base_p99 = (
            median([r["p99_us"] for r in baseline.results[route]]) if baseline else float("nan")
        )
        for app in apps:
            runs = app.results[route]
            rps = median([r["rps"] for r in runs])
            p99 = median([r["p99_us"] for r in runs])
            lines.append(
                f"| {label} | {app.name} | {rps:.0f} | {min(r['rps'] for r in runs):.0f}–"
                f"{max(r['rps'] for r in runs):.0f} | {median([r['p50_us'] for r in runs]) / 1000:.2f} | "
                f"{p99 / 1000:.2f} | {fmt(rps / base_rps)} | {fmt(p99 / base_p99)} | "
                f"{median([r['app_cpu'] for r in runs]):.2f} | "
                f"{median([1e6 * r['app_cpu'] / r['rps'] for r in runs]):.0f} | {sum(r['errors'] for r in runs)} |"
            )
    lines += [
        "",
        "## Memory per worker",
        "",
        "RSS of the uvicorn process after start-up, and its peak (VmHWM) after the three routes' "
        "load; the largest value over the rounds.",
        "",
        "| app | what it is | RSS after start MiB | peak RSS MiB |",
        "|---|---|--:|--:|",
    ]
    for app in apps:
        lines.append(
            f"| {app.name} | {app.description} | {max(app.rss_start_kib) / 1024:.1f} | "
            f"{max(app.hwm_kib) / 1024:.1f} |"
        )
    if copier_times:
        lines += [
            "",
            "## `copier copy --trust --defaults` wall time",
            "",
            "The default answers (SQLite, async, UUID), from the local repository, including Copier's "
            "start-up and git clone; seconds.",
            "",
            "| runs | median | min | max |",
            "|--:|--:|--:|--:|",
            f"| {len(copier_times)} | {median(copier_times):.2f} | {min(copier_times):.2f} | "
            f"{max(copier_times):.2f} |",
        ]
    if matrix_times:
        lines += [
            "",
            "## Template matrix wall time",
            "",
            "The template's own combination tests (`tests/test_matrix.py`): generate, `uv sync`, ruff, "
            "mypy --strict, the project's pytest suite, Alembic up/check/down, uvicorn and "
            "schemathesis, per combination. From the repository root, with uv's cache warm.",
            "",
            "| what | command | wall s |",
            "|---|---|--:|",
        ]
        lines += [f"| {label} | `{cmd}` | {elapsed:.0f} |" for label, cmd, elapsed in matrix_times]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# Profile
# ---------------------------------------------------------------------------------------------------

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# Where a sample's time goes: the first category, in this order, with a frame anywhere in the stack that
# matches (on "function [file]"). The database round trips come first, so that e.g. the pre-ping's
# BEGIN counts as pre-ping, and the SQLAlchemy work around them as SQLAlchemy.
CATEGORIES = [
    (
        "opening new connections (pool overflow churn)",
        r"_ConnectionRecord\.__connect |_create_ssl_connection |"
        r"connect_utils|first_connect |on_connect ",
    ),
    ("pool pre-ping (BEGIN; `;`; ROLLBACK)", r"_async_ping |do_ping "),
    # asyncpg's Transaction frames are often the root of a sample (a resumed coroutine), so BEGIN and
    # ROLLBACK that cannot be told apart from the pre-ping's count here.
    ("BEGIN (the session's; or the pre-ping's)", r"_start_transaction |Transaction\.start "),
    (
        "COMMIT / ROLLBACK (the session's; or the pre-ping's)",
        r"(Transaction\.(_Transaction__)?(rollback|commit)|Transaction\.__(rollback|commit)|_call_and_discard) ",
    ),
    (
        "the SQL statement (asyncpg / psycopg2 execute)",
        r"(_prepare_and_execute|Pool\.fetch(row)?|"
        r"Connection\.fetch(row)?|do_execute|Connection\._do_execute|PreparedStatement\.) ",
    ),
    ("asyncpg pool: reset query on release", r"Connection\.reset |PoolConnectionHolder\.release "),
    ("SQLAlchemy: session, pool, ORM, compile cache, greenlet", r"\[sqlalchemy/|greenlet"),
    ("asyncpg: other (pool acquire, release, ...)", r"\[asyncpg/"),
    (
        "response: validation and JSON",
        r"serialize_response |dump_json |JSONResponse|Response\.render |"
        r"\[json/|_json \[|_user \[",
    ),
    (
        "request: routing params, body, dependencies",
        r"solve_dependencies |request_params_to_args |"
        r"request_body_to_args |Request\.body |Request\.json ",
    ),
    ("endpoint's own code", r"run_endpoint_function "),
    (
        "sending the response (Starlette, uvicorn)",
        r"RequestResponseCycle\.send |Response\.__call__ ",
    ),
    ("FastAPI / Starlette: middleware, routing, request handling", r"\[fastapi/|\[starlette/"),
    ("uvicorn: HTTP parsing, event loop, other", r""),
]


def frame_parts(frame: str) -> tuple[str, str]:
    """(function, file) of a py-spy frame `func (path/to/file.py:123)`."""
    match = FRAME.match(frame)
    return (match["func"], match["file"]) if match else (frame, "")


def area(file: str) -> str:
    """The top-level package or module of a file as py-spy shortens it (`sqlalchemy/orm/session.py`)."""
    if file.startswith("<"):
        return file
    if "site-packages/" in file:
        file = file.split("site-packages/", 1)[1]
    elif file.startswith("/"):
        file = Path(file).name
    return file.split("/", 1)[0].removesuffix(".py")


def summarize_profile(path: Path, top: int, cpu_us_per_request: float) -> str:
    stacks: list[tuple[list[str], int]] = []
    pending = ""
    for line in path.read_text().splitlines():
        # A frame's "file" can be generated source with newlines in it: a sample ends with " <count>".
        pending += line
        frames, _, count = pending.rpartition(" ")
        if not count.isdigit():
            pending += " "
            continue
        pending = ""
        stacks.append(([f for f in frames.split(";") if " (" in f], int(count)))
    total = sum(count for _, count in stacks) or 1
    self_time: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    categories: collections.Counter[str] = collections.Counter()
    patterns = [(name, re.compile(pattern)) for name, pattern in CATEGORIES]
    for frames, count in stacks:
        if not frames:
            continue
        func, file = frame_parts(frames[-1])
        self_time[f"{func} ({area(file)})"] += count
        packages[area(file)] += count
        keys = [f"{fn} [{fl}]" for fn, fl in map(frame_parts, frames)]
        for name, pattern in patterns:
            if any(pattern.search(key) for key in keys):
                categories[name] += count
                break
    out = [
        f"{total} samples (on-CPU only); {cpu_us_per_request:.0f} µs of the worker's CPU per request.",
        "",
        "Where the time goes (each sample counted once, in the first matching row):",
        "",
        "| part | % of samples | µs CPU per request |",
        "|---|--:|--:|",
    ]
    out += [
        f"| {name} | {100 * categories[name] / total:.1f} | {cpu_us_per_request * categories[name] / total:.0f} |"
        for name, _ in CATEGORIES
        if categories[name]
    ]
    out += ["", "Self time by package (leaf frame):", "", "| package | % |", "|---|--:|"]
    out += [f"| {name} | {100 * n / total:.1f} |" for name, n in packages.most_common(10)]
    out += [
        "",
        f"Self time, top {top} functions (Cython and C time counts to the calling Python function):",
        "",
        "| function (package) | % |",
        "|---|--:|",
    ]
    out += [f"| `{name}` | {100 * n / total:.1f} |" for name, n in self_time.most_common(top)]
    return "\n".join(out) + "\n"


def py_spy() -> Path:
    venv = WORK / "tools"
    exe = venv / "bin" / "py-spy"
    if not exe.exists():
        run(["uv", "venv", "--quiet", str(venv)], timeout=120)
        run(["uv", "pip", "install", "--quiet", "--python", str(venv), "py-spy"], timeout=300)
    return exe


def profile(apps: list[App], args: argparse.Namespace, command: str) -> str:
    exe = py_spy()
    out_dir = WORK / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    routes = args.profile_routes.split(",")
    sections = [
        "# Profile",
        "",
        f"Command: `{command}`",
        "",
        f"py-spy {run([str(exe), '--version'], timeout=30).stdout.split()[-1]} samples the uvicorn worker "
        f"({args.profile_rate} Hz, `--nonblocking`, on-CPU only, Python frames) for {args.duration:g} s "
        f"of wrk load ({args.threads} threads, {args.connections} connections) per app and route, after "
        f"{max(args.warmup, 1):g} s of warm-up. µs CPU per request = the worker's CPU seconds ÷ requests "
        "in that window, split by the samples' shares. Collapsed stacks: "
        "`bench/.work/profile/<app>-<route>.txt` (speedscope or flamegraph.pl open them). "
        "See bench/README.md.",
        "",
    ]
    for app in apps:
        server = Server(app, "profile")
        try:
            server.wait_ready()
            for route in routes:
                wrk(server, route, max(args.warmup, 1), args.connections, args.threads, "warm")
                reset_table(app)
                raw = out_dir / f"{app.name}-{route}.txt"
                for attempt in (1, 2):  # py-spy reading a live process can fail now and then
                    raw.unlink(missing_ok=True)
                    spy = subprocess.Popen(
                        [
                            str(exe),
                            "record",
                            "--pid",
                            str(server.pid),
                            "--rate",
                            str(args.profile_rate),
                            "--duration",
                            str(max(1, round(args.duration))),
                            "--format",
                            "raw",
                            "--nonblocking",
                            "--output",
                            str(raw),
                        ],
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                    )
                    result = wrk(
                        server, route, args.duration, args.connections, args.threads, "profile"
                    )
                    spy_output, _ = spy.communicate(timeout=args.duration + 60)
                    if spy.returncode == 0 and raw.exists():
                        break
                    log(f"py-spy failed (attempt {attempt}): {spy_output.strip()[-500:]}")
                else:
                    raise SystemExit("py-spy failed twice")
                if route == "post":
                    reset_table(app)
                cpu_us = 1e6 * result["app_cpu"] / result["rps"]
                log(
                    f"profiled {app.name} {ROUTES[route]}: {result['rps']:.0f} req/s, {cpu_us:.0f} µs CPU "
                    "per request"
                )
                sections += [
                    f"## {app.name}: {ROUTES[route]}",
                    "",
                    f"{app.description}. While sampled: {result['rps']:.0f} req/s, p99 "
                    f"{result['p99_us'] / 1000:.1f} ms, worker CPU {result['app_cpu']:.2f} cores.",
                    "",
                    summarize_profile(raw, args.profile_top, cpu_us),
                ]
        finally:
            server.stop()
    return "\n".join(sections)


# ---------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------


def preflight() -> None:
    missing = [tool for tool in ("wrk", "uv", "psql") if shutil.which(tool) is None]
    if not COPIER.exists():
        missing.append(str(COPIER))
    if missing:
        raise SystemExit(
            f"missing: {', '.join(missing)} (wrk: `apt-get install -y wrk`; copier: the "
            "repository's .venv)"
        )
    psql("SELECT 1")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 round of 1 s per app and route, one copier timing, no warm-up; "
        "writes bench/.work/RESULTS-quick.md",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the benchmark, profile --profile-routes of --apps (default "
        "gen-async-int,raw) with py-spy; writes bench/PROFILE.md",
    )
    parser.add_argument("--apps", help="comma-separated subset of: " + ", ".join(all_apps()))
    parser.add_argument("--rounds", type=int, help="rounds (default 3; --quick 1)")
    parser.add_argument(
        "--duration",
        type=float,
        help="seconds per app, route and round (default 7; --quick 1; --profile 15)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        help="seconds of load per GET route after each start, not counted (default 1; --quick 0)",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed-users", type=int, default=1000)
    parser.add_argument(
        "--copier-reps", type=int, help="timed `copier copy --defaults` runs (default 3; --quick 1)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="before each app start, wait up to this many seconds for the machine to be idle "
        "(other processes under 15%% CPU); 0 turns it off (default 10; --quick 0)",
    )
    parser.add_argument(
        "--matrix",
        choices=["all", "one", "none"],
        help="time the template's combination tests: every combination and one alone (all), one "
        "alone (one), or not at all (default all; --quick one; --profile none)",
    )
    parser.add_argument("--vcs-ref", default="HEAD", help="template version to generate from")
    parser.add_argument("--profile-rate", type=int, default=250)
    parser.add_argument("--profile-top", type=int, default=15)
    parser.add_argument(
        "--profile-routes", default="get,list", help="routes to profile: get, list, post"
    )
    parser.add_argument("--keep-databases", action="store_true")
    parser.add_argument("--output", type=Path, help="where to write the Markdown")
    args = parser.parse_args()
    defaults = {
        "rounds": 3,
        "duration": 7.0,
        "warmup": 1.0,
        "copier_reps": 3,
        "quiet_wait": 10.0,
        "matrix": "all",
    }
    if args.quick:
        defaults.update(
            rounds=1, duration=1.0, warmup=0.0, copier_reps=1, quiet_wait=0.0, matrix="one"
        )
    if args.profile:
        defaults.update(copier_reps=0, duration=3.0 if args.quick else 15.0, matrix="none")
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.output is None:
        args.output = (
            BENCH / "PROFILE.md"
            if args.profile and not args.quick
            else WORK / "PROFILE-quick.md"
            if args.profile
            else WORK / "RESULTS-quick.md"
            if args.quick
            else BENCH / "RESULTS.md"
        )
    names = (
        args.apps.split(",")
        if args.apps
        else (["gen-async-int", "raw"] if args.profile else list(all_apps()))
    )
    unknown = set(names) - set(all_apps())
    if unknown:
        parser.error(f"unknown app(s): {', '.join(sorted(unknown))}")
    args.app_names = names
    return args


def main() -> None:
    args = parse_args()
    command = "python3 bench/run.py" + ("".join(" " + shlex.quote(a) for a in sys.argv[1:]))
    started = time.monotonic()
    preflight()
    VCS_REF[0] = args.vcs_ref
    record_template_state()
    WORK.mkdir(exist_ok=True)
    apps = [all_apps()[name] for name in args.app_names]

    copier_times: list[float] = []
    if args.copier_reps:
        log(f"timing copier copy --defaults ×{args.copier_reps}")
        copier_times = time_copier(args.copier_reps, args.vcs_ref)
        log("copier copy: " + ", ".join(f"{t:.2f} s" for t in copier_times))

    for mode, pk in VARIANTS:
        if any(app.project == project_dir(mode, pk) for app in apps):
            log(f"generating and installing {mode}-{pk}")
            generate(mode, pk, args.vcs_ref)
    try:
        for app in apps:
            log(f"database {app.database}: migrate and seed {args.seed_users} users")
            create_database(app, args.seed_users)
        if args.profile:
            text = profile(apps, args, command)
        else:
            benchmark(apps, args)
            # After the load runs, so that they have the machine to themselves.
            matrix_times = [] if args.matrix == "none" else time_matrix(args.matrix == "all")
            text = report(apps, args, copier_times, matrix_times, command)
    finally:
        if not args.keep_databases:
            for app in apps:
                drop_database(app)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    log(f"wrote {args.output} after {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
