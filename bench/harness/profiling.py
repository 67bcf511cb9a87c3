"""py-spy profiles of the uvicorn worker under wrk load, summarised into PROFILE.md: where each
request's CPU time goes (pre-ping, BEGIN, the statement, SQLAlchemy, validation, routing, ...)."""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
from pathlib import Path

from .apps import ROUTES, App
from .common import WORK, log, run
from .load import wrk
from .serving import Server, reset_table

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
    ("pool pre-ping (`;`, outside a transaction)", r"_async_ping |do_ping "),
    # asyncpg's Transaction frames are often the root of a sample (a resumed coroutine). Connections
    # rest in autocommit, so only read-write sessions begin and end transactions.
    ("BEGIN (a read-write session's)", r"_start_transaction |Transaction\.start "),
    (
        "COMMIT / ROLLBACK (a read-write session's)",
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
