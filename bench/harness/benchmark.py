"""The rounds: every app started afresh, checked once, and loaded route by route; first at
saturation (wrk), then at a fixed rate (loadtest) set from its database server's reference app's
saturation throughput."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from . import load
from .apps import ROUTES, App
from .common import log, median
from .resources import BUSY, proc_status, wait_for_quiet
from .serving import Server, check_app, reset_table


def rotated(apps: list[App], round_no: int) -> list[App]:
    """The apps in a different order each round."""
    shift = round_no % len(apps)
    return apps[shift:] + apps[:shift]


@contextmanager
def started(app: App, label: str, quiet_wait: float) -> Iterator[Server]:
    """The app under uvicorn, ready to answer, once the machine is quiet (or `quiet_wait` is up)."""
    busy = wait_for_quiet(quiet_wait)
    if busy is not None and busy >= BUSY:
        app.busy_starts += 1
    server = Server(app, label)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def saturation_rounds(apps: list[App], args: argparse.Namespace) -> None:
    """wrk on each route, `args.rounds` times per app; memory after start-up and after the load."""
    for round_no in range(args.rounds):
        for app in rotated(apps, round_no):
            with started(app, f"round{round_no + 1}", args.quiet_wait) as server:
                app.rss_start_kib.append(proc_status(server.pid)["VmRSS"])
                if not app.checked:
                    check_app(server)
                    reset_table(app)
                if args.warmup > 0:
                    load.wrk(server, "get", args.warmup, args.connections, args.threads, "warm")
                    load.wrk(server, "list", args.warmup, args.connections, args.threads, "warm")
                for route in ROUTES:
                    result = load.wrk(
                        server,
                        route,
                        args.duration,
                        args.connections,
                        args.threads,
                        f"r{round_no + 1}",
                    )
                    app.results[route].append(result)
                    # A loaded machine can leave a short round without a single answer.
                    per_request = 1e6 * result["app_cpu"] / result["rps"] if result["rps"] else 0
                    log(
                        f"round {round_no + 1}/{args.rounds} {app.name:15} {ROUTES[route]:20} "
                        f"{result['rps']:8.0f} req/s  p50 {result['p50_us'] / 1000:6.2f} ms  "
                        f"p99 {result['p99_us'] / 1000:6.2f} ms  app CPU {result['app_cpu']:4.0%} "
                        f"({per_request:5.0f} µs/req)  "
                        f"machine CPU {result['machine_cpu']:4.0%}  errors {result['errors']}"
                    )
                    if route == "post":
                        reset_table(app)
                app.hwm_kib.append(proc_status(server.pid)["VmHWM"])


def fixed_rates(apps: list[App], share: float) -> dict[str, dict[str, int]]:
    """Requests per second per route for the fixed-rate rounds, per reference app (`raw` for
    PostgreSQL, `raw-mariadb` for MariaDB): `share` of its median throughput at saturation in this
    run. Only the reference apps in the run have rates; none with a share of 0."""
    if share <= 0:
        return {}
    return {
        app.name: {
            route: max(1, round(share * median([r["rps"] for r in app.results[route]])))
            for route in ROUTES
        }
        for app in apps
        if app.name in {each.baseline for each in apps}
    }


def fixed_rate_rounds(
    apps: list[App], args: argparse.Namespace, rates: dict[str, dict[str, int]]
) -> None:
    """loadtest at its reference app's `rates` on each route, `args.rounds` times per app whose
    reference app ran, each app started afresh."""
    measured = [app for app in apps if app.baseline in rates]
    for round_no in range(args.rounds):
        for app in rotated(measured, round_no):
            app_rates = rates[app.baseline]
            with started(app, f"rate{round_no + 1}", args.quiet_wait) as server:
                if args.warmup > 0:
                    for route in ("get", "list"):
                        load.fixed_rate(server, route, app_rates[route], args.warmup, "warm")
                for route in ROUTES:
                    result = load.fixed_rate(
                        server, route, app_rates[route], args.duration, f"f{round_no + 1}"
                    )
                    app.rate_results[route].append(result)
                    log(
                        f"fixed rate {round_no + 1}/{args.rounds} {app.name:15} "
                        f"{ROUTES[route]:20} {app_rates[route]} req/s: {result['sent_rps']:.0f} sent, "
                        f"{result['answered_rps']:.0f} answered  "
                        f"p50 {result['p50_us'] / 1000:6.2f} ms  "
                        f"p99 {result['p99_us'] / 1000:6.2f} ms  "
                        f"connections {result['connections']:3}  "
                        f"app CPU {result['app_cpu']:4.0%} ({result['cpu_us_per_request']:5.0f} µs/req)  "
                        f"machine CPU {result['machine_cpu']:4.0%}  errors {result['errors']}"
                    )
                    if route == "post":
                        reset_table(app)
