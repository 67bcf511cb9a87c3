"""Drives the load generators: wrk keeps every connection busy (saturation), loadtest sends requests at
a fixed rate whether or not the app keeps up (open model). Both measure from 127.0.0.1."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

from .common import BENCH, log, run
from .resources import machine_cpu, process_cpu_seconds
from .serving import Server

WRK_SCRIPT = BENCH / "wrk" / "users.lua"
LOADTEST_DIR = BENCH / "loadtest"
LOADTEST_SCRIPT = LOADTEST_DIR / "users.mjs"
RESULT_LINE = re.compile(r"^BENCH_JSON (\{.*\})$", re.MULTILINE)


def _route_arg(server: Server, route: str, tag: str) -> str:
    """What the scripts take after the route: the file of ids to read, or a tag that makes emails unique."""
    return str(server.app.ids_file) if route == "get" else tag


def _measured(server: Server, cmd: list[str], timeout: float) -> tuple[dict, float, float]:
    """Run a load generator against the server: its BENCH_JSON result, the app's CPU seconds and the
    machine's busy share while it ran."""
    cpu0, machine0 = process_cpu_seconds(server.pid), machine_cpu()
    output = run(cmd, timeout=timeout).stdout
    cpu1, machine1 = process_cpu_seconds(server.pid), machine_cpu()
    match = RESULT_LINE.search(output)
    if not match:
        raise SystemExit(f"no result from {cmd[0]}:\n{output}")
    busy = (machine1[0] - machine0[0]) / max(1, machine1[1] - machine0[1])
    return json.loads(match.group(1)), cpu1 - cpu0, busy


def wrk(
    server: Server, route: str, seconds: float, connections: int, threads: int, tag: str
) -> dict:
    """Saturation: `connections` connections, each sending its next request as soon as it has an answer."""
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(WRK_SCRIPT),
        server.base,
        "--",
        route,
        _route_arg(server, route, tag),
    ]
    result, cpu, busy = _measured(server, cmd, seconds + 60)
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    # CPU of the app's process, 1.0 = one core; and of the whole machine, 1.0 = every core.
    result["app_cpu"] = cpu / (result["duration_us"] / 1e6)
    result["machine_cpu"] = busy
    result["errors"] = sum(
        result[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return result


def fixed_rate(server: Server, route: str, rate: int, seconds: float, tag: str) -> dict:
    """A fixed rate: `rate` requests per second for `seconds`, on as many connections as it takes."""
    cmd = [
        "node",
        str(LOADTEST_SCRIPT),
        server.base,
        str(rate),
        f"{max(1.0, seconds):g}",
        route,
        _route_arg(server, route, tag),
    ]
    # users.mjs waits up to twice the run's length (5 s at least) for the last answers.
    result, cpu, busy = _measured(server, cmd, 3 * seconds + 60)
    elapsed = result["elapsed_us"] / 1e6
    for key in ("p50_us", "p90_us", "p99_us", "max_us"):
        if result[key] is None:  # the percentile falls on a request that was never answered
            result[key] = math.inf
    result["sent_rps"] = result["sent"] / result["seconds"]
    result["answered_rps"] = result["answered_while_sending"] / result["seconds"]
    result["app_cpu"] = cpu / elapsed
    result["cpu_us_per_request"] = 1e6 * cpu / max(1, result["completed"])
    result["machine_cpu"] = busy
    result["errors"] = result["status_errors"] + result["socket_errors"] + result["unanswered"]
    return result


def _locked_loadtest_version() -> str:
    lock = json.loads((LOADTEST_DIR / "package-lock.json").read_text())
    return lock["packages"]["node_modules/loadtest"]["version"]


def loadtest_version() -> str | None:
    """The installed loadtest's version, or None when it is not installed."""
    installed = LOADTEST_DIR / "node_modules" / "loadtest" / "package.json"
    return json.loads(installed.read_text())["version"] if installed.exists() else None


def ensure_loadtest() -> None:
    """Install loadtest from bench/loadtest/package-lock.json (into bench/loadtest/node_modules)
    unless that version is installed already."""
    if loadtest_version() == _locked_loadtest_version():
        return
    log("installing loadtest (npm ci in bench/loadtest)")
    # No install scripts: they only build optional native parts of its WebSocket client.
    run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--quiet"],
        cwd=LOADTEST_DIR,
        timeout=600,
    )


def tool_versions() -> list[tuple[str, str]]:
    """wrk's, Node.js's and loadtest's versions, for the report."""
    # wrk exits 1 after printing its version.
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    versions = [("wrk", wrk_version.stdout.splitlines()[0].split(" Copyright")[0])]
    if shutil.which("node"):
        node = run(["node", "--version"], timeout=30).stdout.strip()
        versions.append(("loadtest", f"loadtest {loadtest_version()} on Node.js {node}"))
    return versions
