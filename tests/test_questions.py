"""Fast checks of the questions and of what every combination renders (no installs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.rendering import COMBINATIONS, combination_id, render

POOL_QUESTIONS = ("pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping")


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"project_name": "  "}, "project_name must not be empty"),
        ({"project_slug": "My Service"}, "project_slug must start with a lowercase letter"),
        ({"project_slug": "9lives"}, "project_slug must start with a lowercase letter"),
        ({"package_name": "my-service"}, "package_name must be a lowercase Python identifier"),
        ({"package_name": "2fast"}, "package_name must be a lowercase Python identifier"),
        ({"package_name": "class"}, "package_name must not be a Python keyword"),
        ({"package_name": "fastapi"}, "package_name must not shadow a module"),
        ({"package_name": "sqlalchemy"}, "package_name must not shadow a module"),
        ({"package_name": "tests"}, "package_name must not shadow a module"),
        ({"database": "mysql"}, "Invalid choice for 'database'"),
        ({"sqlalchemy_mode": "threads"}, "Invalid choice for 'sqlalchemy_mode'"),
        ({"primary_key": "string"}, "'string'"),
        (
            {"database": "postgresql", "pool_size": 0},
            "pool_size must be a whole number from 1 to 1000",
        ),
        ({"database": "postgresql", "pool_size": 1001}, "pool_size must be a whole number from 1"),
        (
            {"database": "postgresql", "max_overflow": -1},
            "max_overflow must be a whole number from 0",
        ),
        ({"database": "postgresql", "pool_timeout": 0}, "pool_timeout must be a number of seconds"),
        (
            {"database": "postgresql", "pool_timeout": -2.5},
            "pool_timeout must be a number of seconds",
        ),
        ({"database": "postgresql", "pool_recycle": 0}, "pool_recycle must be -1 (off) or"),
        ({"database": "postgresql", "pool_recycle": -5}, "pool_recycle must be -1 (off) or"),
        ({"database": "postgresql", "pool_size": "many"}, "'many'"),
    ],
)
def test_bad_answers_are_rejected_with_what_is_allowed(
    tmp_path: Path, answers: dict[str, object], message: str
) -> None:
    destination = tmp_path / "project"
    with pytest.raises(ValueError, match=re.escape(message)):
        render(destination, **answers)
    assert not destination.exists(), "a rejected answer renders nothing"


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


def test_names_are_derived_from_the_project_name(tmp_path: Path) -> None:
    project = render(tmp_path / "project", project_name="Billing API 2")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["project_slug"] == "billing-api-2"
    assert answers["package_name"] == "billing_api_2"
    assert (project / "src/billing_api_2/main.py").is_file()


def test_defaults_need_no_server_and_record_every_answer(tmp_path: Path) -> None:
    project = render(tmp_path / "project")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert {key: answers[key] for key in ("database", "sqlalchemy_mode", "primary_key")} == {
        "database": "sqlite",
        "sqlalchemy_mode": "async",
        "primary_key": "uuid",
    }
    # Pool questions are asked only where a pool is configured.
    assert not set(POOL_QUESTIONS) & answers.keys()


def test_postgresql_answers_record_the_pool_settings(tmp_path: Path) -> None:
    project = render(tmp_path / "project", database="postgresql", pool_size=7)
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert set(POOL_QUESTIONS) <= answers.keys()
    assert answers["pool_size"] == 7


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
    "uuid": (r"Mapped\[int\]", r"Path\(ge="),
    "int": (r"uuid", r"UUID"),
}


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_every_combination_renders_clean_text(tmp_path: Path, answers: dict[str, str]) -> None:
    project = render(tmp_path / "project", **answers)
    files = [path for path in project.rglob("*") if path.is_file()]
    assert files
    for path in files:
        text = path.read_text()
        where = path.relative_to(project)
        assert not re.search(r"\{\{|\}\}|\{%|%\}|\{#|#\}", text), f"Jinja residue in {where}"
        assert "\n\n\n\n" not in text, f"more than two blank lines in a row in {where}"
        assert not re.search(r"[ \t]+$", text, re.MULTILINE), f"trailing whitespace in {where}"
        if text:
            assert text.endswith("\n"), f"{where} must end in a newline"
            assert not text.endswith("\n\n"), f"{where} ends in blank lines"
        if path.suffix == ".py":
            compile(text, str(where), "exec")

    # server.py drives uvicorn's event loop, which every project has, sync or async.
    application = "\n".join(
        path.read_text()
        for path in [*(project / "src").rglob("*.py"), project / "migrations/env.py"]
        if path.name != "server.py"
    )
    for answer in answers.values():
        for word in FOREIGN_WORDS.get(answer, ()):
            assert not re.search(word, application), f"{word!r} in the code of a {answer} project"
