#!/usr/bin/env python3
"""Memory soak: does a generated service's memory level off under a long mix of requests?

    python3 bench/soak.py            # the full soak (about 20 minutes), writes bench/SOAK.md
    python3 bench/soak.py --quick    # a smoke run (a few hundred requests), writes bench/.work/

Each app is generated, served once under uvicorn and loaded in steps by wrk with bench/wrk/mixed.lua
(POST, GET one, GET a page, PATCH and DELETE of users); the worker's RSS is read after every step.
See bench/README.md ("Memory soak"). Standard library only; needs copier in the repository's .venv,
uv and wrk, and for the PostgreSQL apps psql and the server on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

from harness.common import BENCH, COPIER, WORK, log, psql
from harness.soak import SOAK_APPS, prepare, soak, soak_report

DEFAULT_APPS = "sqlite-sync-int,sqlite-async-int,gen-async-int"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: sqlite-sync-int, 4 steps of 1 s on 2 connections, 20 seeded users; "
        "writes bench/.work/SOAK-quick.md",
    )
    parser.add_argument(
        "--apps", help=f"comma-separated subset of: {', '.join(SOAK_APPS)} (default {DEFAULT_APPS})"
    )
    parser.add_argument("--steps", type=int, help="load steps per app (default 16; --quick 4)")
    parser.add_argument("--duration", type=float, help="seconds per step (default 30; --quick 1)")
    parser.add_argument("--connections", type=int, help="default 8; --quick 2")
    parser.add_argument("--threads", type=int, help="default 2; --quick 1")
    parser.add_argument("--seed-users", type=int, help="default 1000; --quick 20")
    parser.add_argument("--vcs-ref", default="HEAD", help="template version to generate from")
    parser.add_argument(
        "--reuse", action="store_true", help="use an already generated and installed project"
    )
    parser.add_argument("--output", type=Path, help="where to write the Markdown")
    args = parser.parse_args()
    defaults: dict[str, object] = {
        "apps": DEFAULT_APPS,
        "steps": 16,
        "duration": 30.0,
        "connections": 8,
        "threads": 2,
        "seed_users": 1000,
        "output": BENCH / "SOAK.md",
    }
    if args.quick:
        defaults.update(
            apps="sqlite-sync-int",
            steps=4,
            duration=1.0,
            connections=2,
            threads=1,
            seed_users=20,
            output=WORK / "SOAK-quick.md",
        )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.app_names = args.apps.split(",")
    unknown = set(args.app_names) - set(SOAK_APPS)
    if unknown:
        parser.error(f"unknown app(s): {', '.join(sorted(unknown))}")
    if args.steps < 2:
        parser.error("--steps must be at least 2: the verdict compares two halves")
    return args


def main() -> None:
    args = parse_args()
    command = "python3 bench/soak.py" + "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    started = time.monotonic()
    missing = [tool for tool in ("wrk", "uv") if shutil.which(tool) is None]
    if not COPIER.exists():
        missing.append(str(COPIER))
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)}")
    specs = [SOAK_APPS[name] for name in args.app_names]
    if any(spec.database == "postgresql" for spec in specs):
        psql("SELECT 1")
    WORK.mkdir(exist_ok=True)
    results = []
    for spec in specs:
        app = prepare(spec, args.vcs_ref, args.seed_users, args.reuse)
        log(f"{spec.name}: {args.steps} steps of {args.duration:g} s")
        results.append(
            soak(app, args.steps, args.duration, args.connections, args.threads, args.seed_users)
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(soak_report(results, command, args.duration, args.connections))
    for result in results:
        first, second = result.growth()
        log(
            f"{result.app}: {result.requests} requests, RSS growth {first:+.1%} then {second:+.1%}: "
            + ("levels off" if result.levels_off else "still growing")
        )
    log(f"wrote {args.output} after {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
