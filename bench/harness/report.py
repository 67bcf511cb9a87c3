"""Writes RESULTS.md: the machine and versions, the targets, then every figure the run measured."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
from collections.abc import Callable
from pathlib import Path

from .apps import BASELINES, GRANIAN_APP, METRICS_BEFORE, METRICS_OFF, METRICS_ON, ROUTES, App
from .common import COPIER, REPO, mariadb, median, psql, ratio, run
from .load import tool_versions
from .targets import TARGETS

PACKAGES = [
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic-core",
    "email-validator",
    "sqlalchemy",
    "asyncpg",
    "psycopg2-binary",
    "psycopg",
    "psycopg-binary",
    "asyncmy",
    "pymysql",
    "greenlet",
    "uvicorn",
    "granian",
    "uvloop",
    "httptools",
    "alembic",
    "prometheus-client",
]


def commit_of(ref: str) -> str:
    return run(["git", "-C", str(REPO), "rev-parse", "--short", ref], timeout=30).stdout.strip()


def template_state(vcs_ref: str, before_ref: str | None = None) -> dict[str, str]:
    """The start time, and the template's commit and whether copier sees uncommitted changes in it
    (and the commit of `--before-ref`)."""
    head = commit_of("HEAD")
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
    if vcs_ref != "HEAD":
        template = f"--vcs-ref {vcs_ref} (HEAD is commit {head})"
    elif dirty:
        template = f"commit {head} + uncommitted template changes (copier includes them)"
    else:
        template = f"commit {head}, no uncommitted template changes"
    state = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"), "template": template}
    if before_ref:
        state["before"] = f"--before-ref {before_ref}: commit {commit_of(before_ref)}"
    return state


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


def machine_info(
    state: dict[str, str], fixed_rate: bool, backends: set[str]
) -> list[tuple[str, str]]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    tools = [(name, text) for name, text in tool_versions() if fixed_rate or name == "wrk"]
    return [
        ("date (UTC)", state["date"]),
        ("template", state["template"]),
        *([(f"template of {METRICS_BEFORE}", state["before"])] if "before" in state else []),
        ("CPU", f"{os.cpu_count()} × {cpu} (nproc {len(os.sched_getaffinity(0))})"),
        ("memory", f"{mem_kib / 1024 / 1024:.1f} GiB"),
        ("kernel", platform.release()),
        ("PostgreSQL", psql("SHOW server_version")),
        *([("MariaDB", mariadb("SELECT VERSION()"))] if "mariadb" in backends else []),
        *tools,
        ("uv", run(["uv", "--version"], timeout=10).stdout.strip()),
        ("copier", run([str(COPIER), "--version"], timeout=60).stdout.strip()),
    ]


def fmt(value: float, digits: int = 2) -> str:
    """A figure for a table: n/a where it was not measured, ∞ where no answer came."""
    if math.isnan(value):
        return "n/a"
    return "∞" if math.isinf(value) else f"{value:.{digits}f}"


def ms(microseconds: float, digits: int = 2) -> str:
    return fmt(microseconds / 1000, digits)


def targets_section(apps: list[App]) -> list[str]:
    by_name = {app.name: app for app in apps}
    lines = [
        "## Targets",
        "",
        "The generated apps with their default settings (pool pre-ping on) against the reference "
        "apps, as ratios of the medians in the tables below: req/s higher is better, p99 lower. "
        "The targets are PostgreSQL's, against `raw`; the MariaDB apps have none (their ratios, "
        f"against `{BASELINES['mariadb']}`, are in the tables). "
        "A benchmark, not a test: a missed target fails nothing.",
        "",
        "| target | required | int keys | met | uuid keys | met |",
        "|---|--:|--:|:-:|--:|:-:|",
    ]
    met = judged = 0
    for target in TARGETS:
        cells = []
        for name in target.apps:
            app, reference = by_name.get(name), by_name.get(target.measure.reference)
            measured = target.ratio(app, reference) if app and reference else math.nan
            if math.isnan(measured):
                cells += [fmt(measured), "–"]
                continue
            judged += 1
            met += target.met(measured)
            cells += [fmt(measured), "yes" if target.met(measured) else "**no**"]
        lines.append(f"| {target.label} | {target.requirement} | {' | '.join(cells)} |")
    lines += [
        "",
        f"Met: {met} of {judged}."
        if judged
        else "No target could be judged: their apps did not run.",
    ]
    return lines


def saturation_section(apps: list[App]) -> list[str]:
    by_name = {app.name: app for app in apps}
    lines = [
        "## Throughput and latency",
        "",
        "Medians over the rounds; req/s range is min–max over the rounds. Ratios are against the "
        f"reference app of the app's database server: `{BASELINES['postgresql']}` for PostgreSQL, "
        f"`{BASELINES['mariadb']}` for MariaDB "
        "(req/s: higher is better for the app; p99: lower is better). app CPU: the worker process's "
        "CPU time per second of load (1.00 = one core saturated); CPU µs/req: that CPU time per request, "
        "the figure least disturbed by other work on the machine.",
        "",
        "| route | app | req/s | range | p50 ms | p99 ms | req/s ÷ raw | p99 ÷ raw | app CPU | "
        "CPU µs/req | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for route, label in ROUTES.items():
        for app in apps:
            baseline = by_name.get(app.baseline)
            base_rps = baseline.at_saturation(route, "rps") if baseline else math.nan
            base_p99 = baseline.at_saturation(route, "p99_us") if baseline else math.nan
            runs = app.results[route]
            rps = app.at_saturation(route, "rps")
            p99 = app.at_saturation(route, "p99_us")
            lines.append(
                f"| {label} | {app.name} | {rps:.0f} | {min(r['rps'] for r in runs):.0f}–"
                f"{max(r['rps'] for r in runs):.0f} | {app.at_saturation(route, 'p50_us') / 1000:.2f} | "
                f"{p99 / 1000:.2f} | {fmt(ratio(rps, base_rps))} | {fmt(ratio(p99, base_p99))} | "
                f"{app.at_saturation(route, 'app_cpu'):.2f} | "
                f"{median([per_request_cpu(r) for r in runs]):.0f} | {sum(r['errors'] for r in runs)} |"
            )
    return lines


METRICS_COST_BOUND = 0.95
"""Issue 23: metrics on may cost at most 5 % of req/s on GET /users/{id}."""


def per_request_cpu(result: dict) -> float:
    """The app's CPU µs per request in one of wrk's runs (NaN without a single answer)."""
    return 1e6 * result["app_cpu"] / result["rps"] if result["rps"] else math.nan


def paired(app: App, reference: App, route: str, figure: Callable[[dict], float]) -> str:
    """The per-round ratios of a figure (the apps alternate within each round), and their median."""
    ratios = [
        ratio(figure(mine), figure(theirs))
        for mine, theirs in zip(app.results[route], reference.results[route], strict=False)
    ]
    return f"{fmt(median(ratios))} ({', '.join(fmt(r) for r in ratios)})"


def metrics_section(apps: list[App], args: argparse.Namespace) -> list[str]:
    """What the metrics cost: the default app against the same app rendered with metrics off, and
    (with --before-ref) the default app of an earlier template version against both."""
    by_name = {app.name: app for app in apps}
    off = by_name.get(METRICS_OFF)
    measured = [by_name[name] for name in (METRICS_ON, METRICS_BEFORE) if name in by_name]
    lines = ["## What the metrics cost", ""]
    if off is None or not measured:
        return [*lines, f"Not measured in this run: it needs `{METRICS_ON}` and `{METRICS_OFF}`."]
    before = (
        f"; `{METRICS_BEFORE}` is `{METRICS_ON}` generated from `--before-ref {args.before_ref}`"
    )
    lines += [
        f"`{METRICS_ON}` (metrics on, the default) against `{METRICS_OFF}` (the same answers with "
        f"`metrics=none`){before if METRICS_BEFORE in by_name else ''}. From the rounds at "
        "saturation above: CPU µs per request first (the steadier figure), then req/s; the medians "
        "over the rounds, their ratio, and the ratio within each round (the apps alternate, so a "
        "round pairs runs made minutes apart). Issue 23's bound: with metrics on, at least "
        f"{METRICS_COST_BOUND:g} × the req/s of metrics off on GET /users/{{id}}.",
        "",
        "| route | app | CPU µs/req | ÷ off | ÷ off, per round | req/s | ÷ off | ÷ off, per round |",
        "|---|---|--:|--:|---|--:|--:|---|",
    ]
    for route, label in ROUTES.items():
        off_cpu = median([per_request_cpu(r) for r in off.results[route]])
        off_rps = off.at_saturation(route, "rps")
        lines.append(f"| {label} | {off.name} | {off_cpu:.0f} | | | {off_rps:.0f} | | |")
        for app in measured:
            cpu = median([per_request_cpu(r) for r in app.results[route]])
            rps = app.at_saturation(route, "rps")
            lines.append(
                f"| {label} | {app.name} | {cpu:.0f} | {fmt(ratio(cpu, off_cpu))} | "
                f"{paired(app, off, route, per_request_cpu)} | {rps:.0f} | "
                f"{fmt(ratio(rps, off_rps))} | {paired(app, off, route, lambda r: r['rps'])} |"
            )
    verdicts = []
    for app in measured:
        kept = ratio(app.at_saturation("get", "rps"), off.at_saturation("get", "rps"))
        met = "met" if kept >= METRICS_COST_BOUND else "**not met**"
        verdicts.append(
            f"`{app.name}` keeps {fmt(kept)} × the req/s of metrics off "
            f"(≥ {METRICS_COST_BOUND:g}: {met})"
        )
    return [*lines, "", "GET /users/{id}: " + "; ".join(verdicts) + "."]


def fixed_rate_section(
    apps: list[App], rates: dict[str, dict[str, int]], args: argparse.Namespace
) -> list[str]:
    lines = ["## Latency at a fixed rate", ""]
    if not rates:
        reason = (
            "`--fixed-rate-share 0`"
            if args.fixed_rate_share <= 0
            else "no reference app ("
            + ", ".join(f"`{name}`" for name in BASELINES.values())
            + ") was among the apps, so there was no rate to set"
        )
        return [*lines, f"Not measured in this run: {reason}."]
    by_name = {app.name: app for app in apps}
    offered = "; ".join(
        f"`{name}`'s: " + ", ".join(f"{ROUTES[route]} {rate}/s" for route, rate in routes.items())
        for name, routes in rates.items()
    )
    missing = [app.name for app in apps if app.baseline not in rates]
    lines += [
        f"loadtest sends each route's requests at a fixed rate, {args.fixed_rate_share:g} × the "
        "median req/s at saturation above of the reference app of the app's database server "
        f"({offered}), whether or not the earlier ones have been "
        "answered, opening connections as it needs them; latency runs from sending to the end of "
        "the response. Each app is started afresh for it. Medians over the rounds (max ms and "
        "connections: the largest). sent req/s under the offered rate means the generator fell "
        "behind; answered req/s (answers while it was sending) under the offered rate means the "
        "app could not keep up: its queue grew for the whole run, and its latency is that queue's. "
        "errors: non-2xx answers, socket errors, and requests still unanswered when the wait for "
        "the last answers (twice the run's length) ran out; in the percentiles those rank above "
        "every answer, and ∞ is a percentile that fell on one."
        + (
            f" Not loaded at a fixed rate (their reference app did not run): {', '.join(missing)}."
            if missing
            else ""
        ),
        "",
        "| route | app | offered req/s | sent req/s | answered req/s | p50 ms | p90 ms | p99 ms | "
        "p99 ÷ raw | max ms | connections | app CPU | CPU µs/req | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for route, label in ROUTES.items():
        for app in apps:
            if app.baseline not in rates:
                continue
            base_p99 = by_name[app.baseline].at_fixed_rate(route, "p99_us")
            runs = app.rate_results[route]
            p99 = app.at_fixed_rate(route, "p99_us")
            lines.append(
                f"| {label} | {app.name} | {rates[app.baseline][route]} | {app.at_fixed_rate(route, 'sent_rps'):.0f} | "
                f"{app.at_fixed_rate(route, 'answered_rps'):.0f} | "
                f"{ms(app.at_fixed_rate(route, 'p50_us'))} | "
                f"{ms(app.at_fixed_rate(route, 'p90_us'))} | {ms(p99)} | "
                f"{fmt(ratio(p99, base_p99))} | {ms(max(r['max_us'] for r in runs), 1)} | "
                f"{max(r['connections'] for r in runs)} | {app.at_fixed_rate(route, 'app_cpu'):.2f} | "
                f"{app.at_fixed_rate(route, 'cpu_us_per_request'):.0f} | {sum(r['errors'] for r in runs)} |"
            )
    return lines


def report(
    apps: list[App],
    args: argparse.Namespace,
    state: dict[str, str],
    rates: dict[str, dict[str, int]],
    copier_times: list[float],
    matrix_times: list[tuple[str, str, float]],
    command: str,
) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `bench/run.py`; see `bench/README.md` for what is measured and how to read it.",
        "",
        f"Command: `{command}`",
        "",
    ]
    lines += ["| | |", "|---|---|"]
    lines += [
        f"| {key} | {value} |"
        for key, value in machine_info(state, bool(rates), {app.backend for app in apps})
    ]
    found: dict[str, str] = {}
    for python in sorted({app.python for app in apps}):
        found.update(versions(python, PACKAGES))
    lines.append(f"| Python (apps) | {found.pop('python')} |")
    lines.append("| packages (apps) | " + ", ".join(f"{k} {v}" for k, v in found.items()) + " |")
    lines.append(
        f"| load | wrk, {args.threads} threads, {args.connections} connections, {args.rounds} "
        f"round(s) × {args.duration:g} s per app and route, {args.warmup:g} s warm-up per "
        f"GET route, apps in a different order each round |"
    )
    if rates:
        lines.append(
            f"| fixed-rate load | loadtest, {args.fixed_rate_share:g} × the req/s of the reference "
            "app of the app's database server per route, "
            f"{args.rounds} round(s) × {args.duration:g} s per app and route, {args.warmup:g} s "
            "warm-up at that rate per GET route, each app started afresh |"
        )
    lines.append(
        f"| data | {args.seed_users} users per database; POST's rows deleted after each run |"
    )
    lines.append(
        "| server | uvicorn, 1 worker, `--no-access-log --log-level warning`"
        + (
            f"; `{GRANIAN_APP}`: Granian, 1 worker, `--interface asgi --loop uvloop --http 1 "
            "--no-access-log --log-level warning`"
            if any(app.server == "granian" for app in apps)
            else ""
        )
        + "; on the same machine as the database servers and the load generators |"
    )
    busy = sum(app.busy_starts for app in apps)
    starts = args.rounds * (len(apps) + sum(app.baseline in rates for app in apps))
    lines.append(
        f"| quiet check | before each app start, waited up to {args.quiet_wait:g} s for other "
        f"processes to leave the CPUs under 15 % busy; {busy} of {starts} starts "
        "went ahead on a busy machine |"
    )
    lines += ["", *targets_section(apps)]
    lines += ["", *saturation_section(apps)]
    lines += ["", *metrics_section(apps, args)]
    lines += ["", *fixed_rate_section(apps, rates, args)]
    lines += [
        "",
        "## Memory per worker",
        "",
        "RSS of the worker process after start-up, and its peak (VmHWM) after the three routes' "
        "load at saturation; the largest value over the rounds.",
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
