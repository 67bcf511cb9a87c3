"""The apps under test: the generated projects, and the hand-written reference apps in bench/apps/."""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .common import BENCH, PG_HOST, PG_PORT, PG_USER, REPO, WORK, median

REFERENCE_APPS = BENCH / "apps"
PACKAGE = "my_service"  # the package name of `copier copy --defaults`

ROUTES = {
    "get": "GET /users/{id}",
    "list": "GET /users?limit=50",
    "post": "POST /users",
}
USER_KEYS = {"id", "email", "name", "created_at", "updated_at"}
VARIANTS = [("async", "int"), ("async", "uuid"), ("sync", "int"), ("sync", "uuid")]
"""The generated projects on each mode's default driver (asyncpg, psycopg2)."""
OTHER_DRIVERS = [("async", "int", "psycopg"), ("sync", "int", "psycopg")]
"""The generated projects on the drivers that are not their mode's default: psycopg 3."""
BASELINE = "raw"
"""The app every ratio is taken against, and whose throughput sets the fixed rate."""
CHECKOUT_TAG = hashlib.sha256(str(REPO).encode()).hexdigest()[:6]
"""Ends every database name: one PostgreSQL server may serve several checkouts at once (each one's
test suite runs the smoke run), and each keeps its own databases as it keeps its own bench/.work/."""


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
    answers_conflict: bool = True
    """Whether a duplicate email answers 409 (the tutorials' apps have no handler: a 500)."""
    database: str = ""
    ids_file: Path = Path()
    results: dict[str, list[dict]] = field(default_factory=lambda: collections.defaultdict(list))
    """wrk's results per route, one per round: the load at saturation."""
    rate_results: dict[str, list[dict]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    """loadtest's results per route, one per round: the load at a fixed rate."""
    rss_start_kib: list[int] = field(default_factory=list)
    hwm_kib: list[int] = field(default_factory=list)
    busy_starts: int = 0
    """Starts of this app that went ahead while other work kept the machine busy."""
    checked: bool = False
    database_url: str = ""
    """The app's DATABASE_URL when it is not a database on the PostgreSQL server (a SQLite file)."""

    @property
    def url(self) -> str:
        return self.database_url or f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.database}"

    def at_saturation(self, route: str, key: str) -> float:
        """The median over the rounds of one of wrk's figures on a route (NaN if not measured)."""
        return median([result[key] for result in self.results[route]])

    def at_fixed_rate(self, route: str, key: str) -> float:
        """The median over the rounds of one of loadtest's figures on a route (NaN if not measured)."""
        return median([result[key] for result in self.rate_results[route]])


def project_dir(mode: str, pk: str, driver: str = "", database: str = "postgresql") -> Path:
    """The project of these answers; `driver` only when it is not the mode's default, `database`
    only when it is not PostgreSQL."""
    prefix = "" if database == "postgresql" else database
    return WORK / "projects" / "-".join(filter(None, (prefix, mode, pk, driver)))


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
    for mode, pk, driver in OTHER_DRIVERS:
        apps[f"gen-{mode}-{pk}-{driver}"] = App(
            name=f"gen-{mode}-{pk}-{driver}",
            description=f"generated, sqlalchemy_mode={mode}, primary_key={pk}, driver={driver}",
            project=project_dir(mode, pk, driver),
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
        answers_conflict=False,
    )
    apps["seed-tutorial"] = App(
        name="seed-tutorial",
        description="the seed tutorials' async SQLAlchemy, pool 20 + 10, pre-ping "
        "(bench/apps/seed_tutorial.py)",
        project=project_dir("async", "int"),
        target="seed_tutorial:app",
        app_dir=REFERENCE_APPS,
        pk="int",
        answers_conflict=False,
    )
    apps["raw"] = App(
        name="raw",
        description="FastAPI + bare asyncpg pool (bench/apps/raw_asyncpg.py)",
        project=project_dir("async", "int"),
        target="raw_asyncpg:app",
        app_dir=REFERENCE_APPS,
        pk="int",
    )
    # The generated async app with pool_pre_ping turned off through the environment: what it costs.
    apps["gen-async-int-noping"] = App(
        name="gen-async-int-noping",
        description="gen-async-int with POOL_PRE_PING=false",
        project=project_dir("async", "int"),
        target=f"{PACKAGE}.main:app",
        app_dir=None,
        pk="int",
        env={"POOL_PRE_PING": "false"},
    )
    for app in apps.values():
        app.database = f"bench_{app.name.replace('-', '_')}_{CHECKOUT_TAG}"
        app.ids_file = WORK / "ids" / f"{app.database}.txt"
    return apps
