"""Fast checks of the questions and of what every combination renders (no installs)."""

from __future__ import annotations

import datetime
import hashlib
import re
from pathlib import Path

import jinja2
import pytest
import yaml

from extensions.context import BOUNDS
from extensions.filters import ascii_slug, package_name
from tests import rendering
from tests.rendering import COMBINATIONS, TEMPLATE, combination_id

POOL_QUESTIONS = ("pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping")

# The Apache License 2.0 exactly as the Apache Software Foundation publishes it
# (https://www.apache.org/licenses/LICENSE-2.0.txt).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def render(destination: Path, **answers: object) -> Path:
    """Render without the tasks (no `uv lock`, no git): these checks only read the files."""
    return rendering.render(destination, tasks=False, **answers)


def recorded_answers(project: Path) -> dict[str, object]:
    answers: dict[str, object] = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return answers


SLUG = "a-z, 0-9 and one - between words"
IDENTIFIER = "only a-z, 0-9, _; no digit first"
TIMEOUT = "must be > 0, at most 3600"
RECYCLE = "must be -1 (off) or > 0"
SHADOWS = "must not shadow an imported module"
ASYNC_DRIVERS = "async offers asyncpg or psycopg"
SYNC_DRIVERS = "sync offers psycopg2 or psycopg"

# Answers each validator refuses, and the message that says what it allows instead.
REFUSED = [
    ({"project_name": "  "}, "must not be empty"),
    ({"project_slug": "My Service"}, SLUG),
    ({"project_slug": "newbie-svc-"}, SLUG),
    ({"project_slug": "-svc"}, SLUG),
    ({"project_slug": "my--service"}, SLUG),
    ({"project_slug": "my_service"}, SLUG),
    ({"project_slug": "über"}, SLUG),
    ({"package_name": "my-service"}, IDENTIFIER),
    ({"package_name": "2fast"}, IDENTIFIER),
    ({"package_name": "class"}, "must not be a Python keyword"),
    ({"package_name": "fastapi"}, SHADOWS),
    ({"package_name": "sqlalchemy"}, SHADOWS),
    ({"package_name": "tests"}, SHADOWS),
    ({"copyright": " "}, "must not be empty"),
    ({"database": "postgresql", "pool_size": 0}, "must be from 1 to 1000"),
    ({"database": "postgresql", "pool_size": 1001}, "must be from 1 to 1000"),
    ({"database": "postgresql", "max_overflow": -1}, "must be from 0 to 1000"),
    ({"database": "postgresql", "max_overflow": 1001}, "must be from 0 to 1000"),
    ({"database": "postgresql", "pool_timeout": 0}, TIMEOUT),
    ({"database": "postgresql", "pool_timeout": -2.5}, TIMEOUT),
    ({"database": "postgresql", "pool_timeout": "nan"}, TIMEOUT),
    ({"database": "postgresql", "pool_timeout": float("nan")}, TIMEOUT),
    ({"database": "postgresql", "pool_timeout": "inf"}, TIMEOUT),
    ({"database": "postgresql", "pool_timeout": "-inf"}, TIMEOUT),
    ({"database": "postgresql", "pool_timeout": 3600.5}, TIMEOUT),
    ({"database": "postgresql", "pool_timeout": 5000}, TIMEOUT),
    ({"database": "postgresql", "pool_recycle": 0}, RECYCLE),
    ({"database": "postgresql", "pool_recycle": -5}, RECYCLE),
    ({"database": "mariadb", "pool_recycle": -1}, "must be 1 to 28799 (wait_timeout)"),
    ({"database": "mariadb", "pool_recycle": 28_800}, "must be 1 to 28799 (wait_timeout)"),
    ({"database": "postgresql", "driver": "psycopg2"}, ASYNC_DRIVERS),
    ({"database": "postgresql", "sqlalchemy_mode": "async", "driver": "psycopg2"}, ASYNC_DRIVERS),
    ({"database": "postgresql", "sqlalchemy_mode": "sync", "driver": "asyncpg"}, SYNC_DRIVERS),
]


def refusal(tmp_path: Path, answers: dict[str, object], message: str) -> str:
    """What Copier says, `message` among it, when `answers` are given with `--data`."""
    destination = tmp_path / "project"
    with pytest.raises(ValueError, match=re.escape(message)) as refused:
        render(destination, **answers)
    assert not destination.exists(), "a rejected answer renders nothing"
    return str(refused.value)


@pytest.mark.parametrize(("answers", "message"), REFUSED)
def test_bad_answers_are_rejected_with_what_is_allowed(
    tmp_path: Path, answers: dict[str, object], message: str
) -> None:
    question = list(answers)[-1]
    shown = refusal(tmp_path, answers, message)
    # Copier names the question itself, before the template's message.
    assert shown == f"Validation error for question '{question}': {message}"
    # The prompt shows that text on one line of an 80-column terminal and cuts the rest.
    assert "\n" not in shown
    assert len(shown) <= 80, f"{len(shown)} characters: {shown}"


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"database": "mysql"}, "Invalid choice for 'database'"),
        ({"sqlalchemy_mode": "threads"}, "Invalid choice for 'sqlalchemy_mode'"),
        ({"license": "GPL-3.0"}, "Invalid choice for 'license'"),
        ({"primary_key": "string"}, "'string'"),
        ({"database": "postgresql", "driver": "pg8000"}, "Invalid choice for 'driver'"),
        ({"database": "postgresql", "pool_size": "many"}, "'many'"),
    ],
)
def test_answers_outside_the_type_or_choices_are_rejected_by_copier(
    tmp_path: Path, answers: dict[str, object], message: str
) -> None:
    refusal(tmp_path, answers, message)


def test_every_help_text_states_the_allowed_values_first_and_fits_a_terminal() -> None:
    questions = yaml.safe_load((TEMPLATE / "copier.yml").read_text())
    helps = {
        name: jinja2.Template(question["help"]).render(bounds=BOUNDS)
        for name, question in questions.items()
        if isinstance(question, dict) and "help" in question
    }
    assert helps["pool_size"].startswith("1 to 1000: ")
    assert helps["max_overflow"].startswith("0 to 1000: ")
    assert helps["pool_timeout"].startswith("> 0, at most 3600 seconds: ")
    assert helps["pool_recycle"].startswith("-1 (off) or > 0 seconds: ")
    assert helps["project_slug"].startswith("a-z and 0-9, words joined by single hyphens")
    # Copier's prompt puts a microphone and a space before the help, on one line it cuts at the
    # terminal's width: what passes 80 columns is lost.
    long = {name: len(text) for name, text in helps.items() if len(text) > 76}
    assert not long, long


def test_sqlite_projects_ignore_pool_answers(tmp_path: Path) -> None:
    project = render(tmp_path / "project", database="sqlite", pool_size=0, pool_timeout=-1)
    assert "pool_size" not in recorded_answers(project)


def test_the_settings_accept_exactly_what_the_questions_accept(tmp_path: Path) -> None:
    """Each pool setting's constraints come from the same bounds as its question's validator."""
    project = render(tmp_path / "project", database="postgresql")
    config = (project / "src/my_service/config.py").read_text()
    assert "pool_size: int = Field(15, ge=1, le=1000)" in config
    assert "max_overflow: int = Field(0, ge=0, le=1000)" in config
    assert "pool_timeout: float = Field(10.0, gt=0, le=3600, allow_inf_nan=False)" in config
    assert "pool_recycle: Annotated[int, Field(ge=-1), AfterValidator(_not_zero)] = 1800" in config


def test_edge_answers_are_accepted(tmp_path: Path) -> None:
    project = render(
        tmp_path / "project",
        database="postgresql",
        pool_size=1000,
        max_overflow=0,
        pool_timeout=0.5,
        pool_recycle=-1,
        pool_pre_ping=False,
    )
    config = (project / "src/my_service/config.py").read_text()
    assert "pool_size: int = Field(1000," in config
    assert "max_overflow: int = Field(0," in config
    assert "pool_timeout: float = Field(0.5," in config
    assert "AfterValidator(_not_zero)] = -1" in config
    assert "pool_pre_ping: bool = False" in config


@pytest.mark.parametrize(
    ("project_name", "slug", "package"),
    [
        ("Billing API 2", "billing-api-2", "billing_api_2"),
        ("42 Über Service!", "42-uber-service", "app_42_uber_service"),
        ("Straße & Crème Brûlée", "strasse-creme-brulee", "strasse_creme_brulee"),
    ],
)
def test_names_are_derived_from_the_project_name(
    tmp_path: Path, project_name: str, slug: str, package: str
) -> None:
    project = render(tmp_path / "project", project_name=project_name)
    answers = recorded_answers(project)
    assert (answers["project_slug"], answers["package_name"]) == (slug, package)
    assert f'name = "{slug}"' in (project / "pyproject.toml").read_text()
    assert (project / f"src/{package}/main.py").is_file()


def test_the_name_filters() -> None:
    assert ascii_slug("  --Ærø Œuvre--  ") == "aero-oeuvre"
    assert ascii_slug("Łódź 2") == "lodz-2"
    assert ascii_slug("Сервис") == "", "letters of other scripts are dropped"
    assert package_name("42-uber-service") == "app_42_uber_service"
    assert package_name("my-service") == "my_service"


def test_defaults_need_no_server_and_record_every_answer(tmp_path: Path) -> None:
    project = render(tmp_path / "project")
    answers = recorded_answers(project)
    assert {key: answers[key] for key in ("database", "sqlalchemy_mode", "primary_key")} == {
        "database": "sqlite",
        "sqlalchemy_mode": "async",
        "primary_key": "uuid",
    }
    # Pool questions are asked only where a pool is configured.
    assert not set(POOL_QUESTIONS) & answers.keys()


@pytest.mark.parametrize(
    ("mode", "driver", "requirement"),
    [
        ("async", "asyncpg", '"asyncpg>=0.30"'),
        ("sync", "psycopg2", '"psycopg2-binary>=2.9.10"'),
    ],
)
def test_each_mode_defaults_to_its_cheapest_driver_and_records_it(
    tmp_path: Path, mode: str, driver: str, requirement: str
) -> None:
    """Recorded, the driver outlives any later change of the default (`copier update`)."""
    project = render(tmp_path / "project", database="postgresql", sqlalchemy_mode=mode)
    assert recorded_answers(project)["driver"] == driver
    assert requirement in (project / "pyproject.toml").read_text()


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_psycopg_serves_either_mode(tmp_path: Path, mode: str) -> None:
    project = render(
        tmp_path / "project", database="postgresql", sqlalchemy_mode=mode, driver="psycopg"
    )
    assert recorded_answers(project)["driver"] == "psycopg"
    pyproject = (project / "pyproject.toml").read_text()
    assert '"psycopg[binary]>=3.2"' in pyproject
    assert "asyncpg" not in pyproject
    assert "psycopg2" not in pyproject
    config = (project / "src/my_service/config.py").read_text()
    assert 'DRIVERNAME = "postgresql+psycopg"' in config
    database = (project / "src/my_service/database.py").read_text()
    assert '"prepare_threshold": None' in database


def test_sqlite_projects_ignore_a_driver_answer(tmp_path: Path) -> None:
    project = render(tmp_path / "project", database="sqlite", driver="psycopg2")
    assert "driver" not in recorded_answers(project)
    assert "aiosqlite" in (project / "pyproject.toml").read_text()


def test_postgresql_answers_record_the_pool_settings(tmp_path: Path) -> None:
    project = render(tmp_path / "project", database="postgresql", pool_size=7)
    answers = recorded_answers(project)
    assert set(POOL_QUESTIONS) <= answers.keys()
    assert answers["pool_size"] == 7


def test_the_default_licence_is_mit_with_this_year(tmp_path: Path) -> None:
    project = render(tmp_path / "project")
    year = datetime.date.today().year
    assert (
        (project / "LICENSE")
        .read_text()
        .startswith(
            f"MIT License\n\nCopyright (c) {year} The My Service authors\n\nPermission is hereby"
        )
    )
    assert '\nlicense = "MIT"\n' in (project / "pyproject.toml").read_text()
    assert recorded_answers(project)["copyright"] == f"{year} The My Service authors"


def test_apache_projects_carry_the_licence_text_unchanged(tmp_path: Path) -> None:
    project = render(tmp_path / "project", license="Apache-2.0")
    text = (project / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == APACHE_2_SHA256
    assert '\nlicense = "Apache-2.0"\n' in (project / "pyproject.toml").read_text()
    assert "copyright" not in recorded_answers(project), "the Apache text names no holder"
    assert_clean_text(project)


def test_proprietary_projects_grant_no_licence(tmp_path: Path) -> None:
    project = render(tmp_path / "project", license="Proprietary", copyright="2026 Example Ltd")
    licence = (project / "LICENSE").read_text()
    assert licence.startswith("Copyright (c) 2026 Example Ltd. All rights reserved.\n")
    assert '\nlicense = "LicenseRef-Proprietary"\n' in (project / "pyproject.toml").read_text()
    assert_clean_text(project)


# What a reader of each combination's application code must never see (regular expressions).
FOREIGN_WORDS = {
    "postgresql": (r"sqlite", r"SQLite"),
    "sqlite": (
        r"postgres",
        r"PostgreSQL",
        r"asyncpg",
        r"psycopg",
        r"settings\.pool_size",
        r"settings\.max_overflow",
    ),
    "async": (
        r"Annotated\[Session\b",
        r"\bsessionmaker\(",
        r"\bcontextmanager\(",
        r"psycopg2",
        r"pysqlite",
    ),
    "sync": (
        r"AsyncSession",
        r"AsyncEngine",
        r"async_sessionmaker",
        r"asyncio",
        r"asyncpg",
        r"aiosqlite",
    ),
    "psycopg": (r"asyncpg", r"psycopg2", r"server_settings", r"urlencode"),
    "uuid": (r"Mapped\[int\]", r"Path\(ge="),
    "int": (r"uuid", r"UUID"),
}


def assert_clean_text(project: Path) -> None:
    """No template residue: Jinja tags, runs of blank lines, trailing spaces, broken Python."""
    files = [path for path in project.rglob("*") if path.is_file()]
    assert files
    for path in files:
        text = path.read_text()
        where = path.relative_to(project)
        # GitHub Actions expressions (`${{ github.ref }}`) are meant to be there; Jinja is not.
        jinja = re.sub(r"\$\{\{[^{}]*\}\}", "", text)
        assert not re.search(r"\{\{|\}\}|\{%|%\}|\{#|#\}", jinja), f"Jinja residue in {where}"
        assert "\n\n\n\n" not in text, f"more than two blank lines in a row in {where}"
        assert not re.search(r"[ \t]+$", text, re.MULTILINE), f"trailing whitespace in {where}"
        if text:
            assert text.endswith("\n"), f"{where} must end in a newline"
            assert not text.endswith("\n\n"), f"{where} ends in blank lines"
        if path.suffix == ".py":
            compile(text, str(where), "exec")


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_every_combination_renders_clean_text(tmp_path: Path, answers: dict[str, str]) -> None:
    project = render(tmp_path / "project", **answers)
    assert_clean_text(project)

    # server.py drives uvicorn's event loop, which every project has, sync or async.
    application = "\n".join(
        path.read_text()
        for path in [*(project / "src").rglob("*.py"), project / "migrations/env.py"]
        if path.name != "server.py"
    )
    for answer in answers.values():
        for word in FOREIGN_WORDS.get(answer, ()):
            assert not re.search(word, application), f"{word!r} in the code of a {answer} project"


def test_projects_with_the_same_answers_get_migration_histories_of_their_own(
    tmp_path: Path,
) -> None:
    """Pointed at one database by mistake, the second project's `alembic upgrade head` fails and
    its readiness probe answers 503 (`test_first_day.py`), instead of serving on tables it did not
    make."""
    revisions = set()
    for name in ("one", "two"):
        project = render(tmp_path / name, database="postgresql")
        first = (project / "migrations/versions/0001_create_users_and_posts.py").read_text()
        (revision,) = re.findall(r'^revision: str = "([0-9a-f]{12})"$', first, re.MULTILINE)
        assert f"Revision ID: {revision}\n" in first
        revisions.add(revision)
    assert len(revisions) == 2


def test_metrics_are_on_by_default_and_none_leaves_no_trace(tmp_path: Path) -> None:
    default = render(tmp_path / "default", database="postgresql")
    assert recorded_answers(default)["metrics"] == "prometheus"
    assert "prometheus-client" in (default / "pyproject.toml").read_text()
    assert (default / "src/my_service/metrics.py").is_file()
    assert (default / "tests/test_metrics.py").is_file()

    for database in ("postgresql", "sqlite"):
        project = render(tmp_path / database, database=database, metrics="none")
        assert_clean_text(project)
        for path in project.rglob("*"):
            if path.is_file() and path.name != ".copier-answers.yml":
                text = path.read_text()
                where = path.relative_to(project)
                assert not re.search(r"(?i)prometheus|metrics|pool_name", text), where


def test_tracing_is_off_by_default_and_none_leaves_no_trace(tmp_path: Path) -> None:
    traced = render(tmp_path / "traced", tracing="opentelemetry")
    assert "opentelemetry-sdk" in (traced / "pyproject.toml").read_text()
    assert (traced / "src/my_service/tracing.py").is_file()
    assert (traced / "tests/test_tracing.py").is_file()

    for database in ("postgresql", "sqlite"):
        project = render(tmp_path / database, database=database)
        assert recorded_answers(project)["tracing"] == "none"
        for path in project.rglob("*"):
            if path.is_file() and path.name != ".copier-answers.yml":
                text = path.read_text()
                where = path.relative_to(project)
                assert not re.search(r"(?i)opentelemetry|otel|tracing|trace_id", text), where
