#!/usr/bin/env python3
"""Benchmark the services the template generates against hand-written reference apps.

    python3 bench/run.py            # the full run (about 45 minutes), writes bench/RESULTS.md
    python3 bench/run.py --quick    # a smoke run of the same steps (about 8 minutes), writes bench/.work/
    python3 bench/run.py --profile  # py-spy profiles of GET /users/{id} and GET /users, writes bench/PROFILE.md

See bench/README.md for what is measured and how to read it; bench/harness/ does the work, one module
per job. Standard library only; needs copier in the repository's .venv, uv, wrk, Node.js with npm,
psql and a PostgreSQL server on 127.0.0.1:5432 (user postgres, trust authentication), and for the
MariaDB apps the mariadb client and a MariaDB server on 127.0.0.1:3306 (the tests' account, see
tests/mariadb.py). Every server it starts listens on 127.0.0.1 and is stopped before it exits.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

from harness.apps import (
    BASELINES,
    GRANIAN_APP,
    METRICS_BEFORE,
    PROJECTS,
    all_apps,
    before_app,
    project_dir,
)
from harness.benchmark import fixed_rate_rounds, fixed_rates, saturation_rounds
from harness.common import BENCH, COPIER, WORK, log, mariadb_ready, psql
from harness.load import ensure_loadtest
from harness.profiling import profile
from harness.report import report, template_state
from harness.serving import create_database, drop_database, generate_project, install_granian
from harness.timing import time_copier, time_matrix


def preflight(fixed_rate: bool, backends: set[str]) -> None:
    tools = [
        "wrk",
        "uv",
        "psql",
        *(["mariadb"] if "mariadb" in backends else []),
        *(["node", "npm"] if fixed_rate else []),
    ]
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not COPIER.exists():
        missing.append(str(COPIER))
    if missing:
        raise SystemExit(
            f"missing: {', '.join(missing)} (wrk: `apt-get install -y wrk`; node, npm: "
            "`apt-get install -y nodejs npm`; mariadb: `apt-get install -y mariadb-client`; "
            "copier: the repository's .venv)"
        )
    psql("SELECT 1")
    if "mariadb" in backends:
        mariadb_ready()
    if fixed_rate:
        ensure_loadtest()


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
    parser.add_argument(
        "--apps",
        help="comma-separated subset of: "
        + ", ".join(all_apps())
        + f" (and {METRICS_BEFORE}, with --before-ref)",
    )
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
    parser.add_argument(
        "--fixed-rate-share",
        type=float,
        default=0.1,
        help="after the load at saturation, load every app at this share of its database "
        f"server's reference app's median req/s per route ({BASELINES['postgresql']}, "
        f"{BASELINES['mariadb']}) with loadtest (default 0.1, a rate every app sustains; 0 turns "
        "the fixed-rate rounds off)",
    )
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
    parser.add_argument(
        "--before-ref",
        help=f"also run {METRICS_BEFORE}: gen-async-int generated from this template version "
        "(a commit, a branch), so that one run measures a template change before and after",
    )
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
    if args.before_ref and METRICS_BEFORE not in names:
        names.append(METRICS_BEFORE)
    known = [*all_apps(), METRICS_BEFORE]
    unknown = set(names) - set(known)
    if unknown:
        parser.error(f"unknown app(s): {', '.join(sorted(unknown))}")
    if METRICS_BEFORE in names and not args.before_ref:
        parser.error(f"{METRICS_BEFORE} needs --before-ref")
    args.app_names = names
    return args


def main() -> None:
    args = parse_args()
    command = "python3 bench/run.py" + ("".join(" " + shlex.quote(a) for a in sys.argv[1:]))
    started = time.monotonic()
    apps = [(all_apps() | {METRICS_BEFORE: before_app()})[name] for name in args.app_names]
    fixed_rate = (
        not args.profile
        and args.fixed_rate_share > 0
        and any(name in BASELINES.values() for name in args.app_names)
    )
    preflight(fixed_rate, {app.backend for app in apps})
    state = template_state(args.vcs_ref, args.before_ref)
    WORK.mkdir(exist_ok=True)

    copier_times: list[float] = []
    if args.copier_reps:
        log(f"timing copier copy --defaults ×{args.copier_reps}")
        copier_times = time_copier(args.copier_reps, args.vcs_ref)
        log("copier copy: " + ", ".join(f"{t:.2f} s" for t in copier_times))

    for project in PROJECTS:
        if any(app.project == project.path for app in apps):
            generate_project(project, args.before_ref if project.before else args.vcs_ref)
    if GRANIAN_APP in args.app_names:
        install_granian(project_dir("async", "int"))
    try:
        for app in apps:
            log(f"database {app.database}: migrate and seed {args.seed_users} users")
            create_database(app, args.seed_users)
        if args.profile:
            text = profile(apps, args, command)
        else:
            saturation_rounds(apps, args)
            rates = fixed_rates(apps, args.fixed_rate_share) if fixed_rate else {}
            for baseline, baseline_rates in rates.items():
                log(
                    f"fixed rates from {baseline} (req/s): "
                    + ", ".join(f"{r} {n}" for r, n in baseline_rates.items())
                )
            fixed_rate_rounds(apps, args, rates)
            # After the load runs, so that they have the machine to themselves.
            matrix_times = [] if args.matrix == "none" else time_matrix(args.matrix == "all")
            text = report(apps, args, state, rates, copier_times, matrix_times, command)
    finally:
        if not args.keep_databases:
            for app in apps:
                drop_database(app)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    log(f"wrote {args.output} after {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
