"""The apps under test: the generated projects, and the hand-written reference apps in bench/apps/."""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .common import BENCH, PG_HOST, PG_PORT, PG_USER, REPO, WORK, mariadb_url, median

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
MARIADB_VARIANTS = [("async", "int"), ("sync", "int")]
"""The generated MariaDB projects, on each mode's default driver (asyncmy, PyMySQL)."""
METRICS_ON, METRICS_OFF, METRICS_BEFORE = (
    "gen-async-int",
    "gen-async-int-nometrics",
    "gen-async-int-before",
)
"""The apps that show what the metrics cost: the default async int-key app (metrics on), the same
rendered with `metrics=none`, and, with `--before-ref`, the same rendered from an earlier version."""
GRANIAN_APP = "gen-async-int-granian"
"""`gen-async-int` served by Granian instead of uvicorn (issue 24)."""
GRANIAN_VENV = WORK / "granian"
"""Granian's virtualenv: the async-int project's locked dependencies, the project, and Granian."""
BASELINE = "raw"
"""The app every ratio of the PostgreSQL apps is taken against (the targets' too), and whose
throughput sets their fixed rate."""
BASELINES = {"postgresql": BASELINE, "mariadb": "raw-mariadb"}
"""Each database server's reference app: an app's ratios and fixed rate come from its server's."""
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
    """What the server (uvicorn, Granian) imports."""
    app_dir: Path | None
    pk: str
    backend: str = "postgresql"
    """The database server: "postgresql" or "mariadb"."""
    server: str = "uvicorn"
    """The HTTP server: "uvicorn" (from the project's .venv) or "granian" (from a venv of its own)."""
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
        if self.database_url:
            return self.database_url
        if self.backend == "mariadb":
            return mariadb_url(self.database)
        return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.database}"

    @property
    def python(self) -> Path:
        """The Python that serves the app."""
        venv = GRANIAN_VENV if self.server == "granian" else self.project / ".venv"
        return venv / "bin" / "python"

    @property
    def baseline(self) -> str:
        """The reference app of this app's database server."""
        return BASELINES[self.backend]

    def at_saturation(self, route: str, key: str) -> float:
        """The median over the rounds of one of wrk's figures on a route (NaN if not measured)."""
        return median([result[key] for result in self.results[route]])

    def at_fixed_rate(self, route: str, key: str) -> float:
        """The median over the rounds of one of loadtest's figures on a route (NaN if not measured)."""
        return median([result[key] for result in self.rate_results[route]])


def project_dir(
    mode: str, pk: str, driver: str = "", database: str = "postgresql", variant: str = ""
) -> Path:
    """The project of these answers; `driver` only when it is not the mode's default, `database`
    only when it is not PostgreSQL, `variant` for other answers or another template version."""
    prefix = "" if database == "postgresql" else database
    return WORK / "projects" / "-".join(filter(None, (prefix, mode, pk, driver, variant)))


@dataclass(frozen=True)
class Project:
    """A project the benchmark generates and installs, and the answers it takes besides the defaults."""

    mode: str
    pk: str
    driver: str = ""
    database: str = "postgresql"
    metrics: str = ""
    """The `metrics` answer when it is not the default."""
    before: bool = False
    """Generated from `--before-ref` rather than `--vcs-ref`."""

    @property
    def path(self) -> Path:
        variant = ["nometrics"] if self.metrics == "none" else []
        if self.before:
            variant.append("before")
        return project_dir(
            self.mode, self.pk, self.driver, self.database, variant="-".join(variant)
        )

    @property
    def answers(self) -> dict[str, str]:
        answers = {
            "database": self.database,
            "sqlalchemy_mode": self.mode,
            "primary_key": self.pk,
            "driver": self.driver,
        }
        return {key: value for key, value in (answers | {"metrics": self.metrics}).items() if value}


PROJECTS = [
    *(Project(mode, pk) for mode, pk in VARIANTS),
    *(Project(mode, pk, driver) for mode, pk, driver in OTHER_DRIVERS),
    *(Project(mode, pk, database="mariadb") for mode, pk in MARIADB_VARIANTS),
    Project("async", "int", metrics="none"),
    Project("async", "int", before=True),
]


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
    apps[GRANIAN_APP] = App(
        name=GRANIAN_APP,
        description="gen-async-int served by Granian (1 worker, uvloop, HTTP/1)",
        project=project_dir("async", "int"),
        target=f"{PACKAGE}.main:app",
        app_dir=None,
        pk="int",
        server="granian",
    )
    apps[METRICS_OFF] = App(
        name=METRICS_OFF,
        description="gen-async-int generated with metrics=none",
        project=Project("async", "int", metrics="none").path,
        target=f"{PACKAGE}.main:app",
        app_dir=None,
        pk="int",
    )
    # MariaDB: the generated apps and their reference app.
    for mode, pk in MARIADB_VARIANTS:
        apps[f"gen-{mode}-mariadb-{pk}"] = App(
            name=f"gen-{mode}-mariadb-{pk}",
            description=f"generated, database=mariadb, sqlalchemy_mode={mode}, primary_key={pk}",
            project=project_dir(mode, pk, database="mariadb"),
            target=f"{PACKAGE}.main:app",
            app_dir=None,
            pk=pk,
            backend="mariadb",
        )
    apps[BASELINES["mariadb"]] = App(
        name=BASELINES["mariadb"],
        description="FastAPI + bare asyncmy pool on MariaDB (bench/apps/raw_asyncmy.py)",
        project=project_dir("async", "int", database="mariadb"),
        target="raw_asyncmy:app",
        app_dir=REFERENCE_APPS,
        pk="int",
        backend="mariadb",
    )
    for app in apps.values():
        name_database(app)
    return apps


def name_database(app: App) -> None:
    app.database = f"bench_{app.name.replace('-', '_')}_{CHECKOUT_TAG}"
    app.ids_file = WORK / "ids" / f"{app.database}.txt"


def before_app() -> App:
    """`gen-async-int` generated from the template version of `--before-ref`: the same run measures
    a change to the template before and after."""
    app = App(
        name=METRICS_BEFORE,
        description="gen-async-int generated from --before-ref",
        project=Project("async", "int", before=True).path,
        target=f"{PACKAGE}.main:app",
        app_dir=None,
        pk="int",
    )
    name_database(app)
    return app
