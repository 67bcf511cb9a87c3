"""`copier update` brings template fixes into a project that its users have changed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import copier
import pytest
import yaml
from copier.errors import UserMessageError

from tests import postgres
from tests.releases import (
    clone_template,
    clone_with_history,
    commit_all,
    edit,
    git,
    latest_release,
    release,
)
from tests.rendering import check_project, render, run, uv

PACKAGE = "src/my_service"


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """A copy of this template released as 0.1.0."""
    repository = clone_template(tmp_path / "template")
    release(repository, "0.1.0")
    return repository


def generate(template: Path, destination: Path, version: str = "0.1.0", **answers: str) -> Path:
    """Generate a project from a release, as a user would, and see that it is committed.

    The template's task makes the first commit; releases before it had none, and a machine without
    a git identity gets none: then the test commits as the user would have.
    """
    render(destination, vcs_ref=version, template=template, **answers)
    if not (destination / ".git").is_dir():
        git("init", "-q", "-b", "main", cwd=destination)
    if git("status", "--porcelain", cwd=destination):
        commit_all(destination, f"Generate from the template's {version}")
    return destination


def update(project: Path, vcs_ref: str, **answers: str) -> None:
    copier.run_update(
        project,
        data=answers,
        defaults=True,
        overwrite=True,
        unsafe=True,
        vcs_ref=vcs_ref,
        quiet=True,
    )


def answers_of(project: Path) -> dict[str, object]:
    recorded: dict[str, object] = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return recorded


def conflict_markers(project: Path) -> list[str]:
    return [
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file()
        and ".git" not in path.parts
        and ".venv" not in path.parts
        and "<<<<<<<" in path.read_text(errors="replace")
    ]


def first_revision(project: Path) -> str:
    """The id of the first revision the project was generated with (random since 0.3.0)."""
    text = (project / "migrations/versions/0001_create_users_and_posts.py").read_text()
    found = re.search(r'^revision: str = "(\w+)"$', text, re.MULTILINE)
    assert found, text
    return found[1]


USER_REVISION = '''"""Index users by name.

Revision ID: 0002
Revises: {first}
Create Date: 2026-11-22 12:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "{first}"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_users_name"), "users", ["name"])


def downgrade() -> None:
    op.drop_index(op.f("ix_users_name"), table_name="users")
'''


def test_update_brings_the_fix_and_keeps_every_user_edit(tmp_path: Path, template: Path) -> None:
    project = generate(template, tmp_path / "my-service")

    # The user's work: a module of their own, a changed line in a generated file, a README
    # section, and a migration of their own that matches the changed model.
    (project / PACKAGE / "reports.py").write_text('"""Reports of our own."""\n\nTITLE = "Weekly"\n')
    edit(
        project / PACKAGE / "models/user.py",
        "name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH))",
        "name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), index=True)",
    )
    with (project / "README.md").open("a") as readme:
        readme.write("\n## Our team's notes\n\nDeploy on Tuesdays.\n")
    user_revision = USER_REVISION.format(first=first_revision(project))
    (project / "migrations/versions/0002_index_user_name.py").write_text(user_revision)
    commit_all(project, "Our own changes")

    # The template's fix, released as 0.2.0, touches the same files elsewhere; it also edits its
    # first revision, which must never reach an existing project.
    template_package = template / "template/src/{{ package_name }}"
    edit(
        template_package / "errors.py.jinja",
        '"The database is unavailable; try again shortly"',
        '"The database is unavailable; retry after the Retry-After delay"',
    )
    edit(
        template_package / "models/user.py.jinja",
        '"""Users: the people who write posts."""',
        '"""Users: the people who write posts, identified by their email."""',
    )
    edit(
        template / "template/migrations/versions/0001_create_users_and_posts.py.jinja",
        '"""Create users and posts.',
        '"""Create the users and posts tables.',
    )
    release(template, "0.2.0")

    update(project, "0.2.0")

    errors = (project / PACKAGE / "errors.py").read_text()
    assert "retry after the Retry-After delay" in errors, "the fix arrived"
    user_model = (project / PACKAGE / "models/user.py").read_text()
    assert "identified by their email" in user_model, "the fix arrived beside the user's edit"
    assert "mapped_column(String(NAME_MAX_LENGTH), index=True)" in user_model
    assert (project / PACKAGE / "reports.py").read_text().endswith('TITLE = "Weekly"\n')
    assert "Deploy on Tuesdays." in (project / "README.md").read_text()
    assert (project / "migrations/versions/0002_index_user_name.py").read_text() == user_revision
    first = (project / "migrations/versions/0001_create_users_and_posts.py").read_text()
    assert first.startswith('"""Create users and posts.'), "applied revisions are never rewritten"
    assert conflict_markers(project) == []
    assert answers_of(project)["_commit"] == "0.2.0"

    # The updated project still works: one Alembic head, its own suite, and no drift.
    check_project(project)
    tool = uv()
    heads = run(tool, "run", "--no-sync", "alembic", "heads", cwd=project).stdout.split()
    assert heads == ["0002", "(head)"]
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'updated.db'}"}
    run(tool, "run", "--no-sync", "alembic", "upgrade", "head", cwd=project, env=env)
    run(tool, "run", "--no-sync", "alembic", "check", cwd=project, env=env)


def test_a_conflicting_edit_keeps_both_sides_inline(tmp_path: Path, template: Path) -> None:
    project = generate(template, tmp_path / "my-service")
    edit(project / PACKAGE / "errors.py", "RETRY_AFTER_SECONDS = 5", "RETRY_AFTER_SECONDS = 30")
    commit_all(project, "Clients of ours back off longer")
    edit(
        template / "template/src/{{ package_name }}/errors.py.jinja",
        "RETRY_AFTER_SECONDS = 5",
        "RETRY_AFTER_SECONDS = 2",
    )
    release(template, "0.2.0")

    # Through the command line, as users run it: Copier reports the conflict and exits 0.
    result = subprocess.run(
        [sys.executable, "-m", "copier", "update", "--trust", "--defaults", "--vcs-ref", "0.2.0"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    errors = (project / PACKAGE / "errors.py").read_text()
    assert "<<<<<<< before updating\nRETRY_AFTER_SECONDS = 30\n=======\n" in errors
    assert "=======\nRETRY_AFTER_SECONDS = 2\n>>>>>>> after updating\n" in errors
    assert conflict_markers(project) == [f"{PACKAGE}/errors.py"]
    assert f"UU {PACKAGE}/errors.py" in git("status", "--porcelain", cwd=project)
    # How the READMEs tell a user to find them:
    assert git("diff", "--name-only", "--diff-filter=U", cwd=project) == f"{PACKAGE}/errors.py\n"
    assert answers_of(project)["_commit"] == "0.2.0"


def test_changing_the_mode_on_update_re_renders_consistently(
    tmp_path: Path, template: Path
) -> None:
    project = generate(template, tmp_path / "my-service")

    update(project, "0.1.0", sqlalchemy_mode="sync")

    assert answers_of(project)["sqlalchemy_mode"] == "sync"
    database = (project / PACKAGE / "database.py").read_text()
    assert "SessionLocal = sessionmaker(engine" in database
    assert "Async" not in database
    assert "aiosqlite" not in (project / "pyproject.toml").read_text()
    assert conflict_markers(project) == []
    # The dependencies changed: `uv sync` locks them afresh, as the README tells the user.
    check_project(project, locked=False)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"primary_key": "int"}, "primary_key cannot change on update (it is uuid, not int)"),
        (
            {"database": "postgresql"},
            "database cannot change on update (it is sqlite, not postgresql)",
        ),
        ({"database": "mariadb"}, "database cannot change on update (it is sqlite, not mariadb)"),
        (
            {"package_name": "billing"},
            "package_name cannot change on update (it is my_service, not billing)",
        ),
    ],
)
def test_answers_an_update_cannot_carry_out_are_refused(
    tmp_path: Path, template: Path, answer: dict[str, str], message: str
) -> None:
    project = generate(template, tmp_path / "my-service")

    with pytest.raises(UserMessageError, match=re.escape(message)):
        update(project, "0.1.0", **answer)

    assert git("status", "--porcelain", cwd=project) == "", "a refused update changes nothing"
    assert answers_of(project)["primary_key"] == "uuid"


def unreleased_revisions(changelog: str) -> list[str]:
    """The Alembic revisions the "Unreleased" entry of CHANGELOG.md asks of updating projects."""
    unreleased = changelog.split("## Unreleased", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", unreleased, re.DOTALL)


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_a_project_from_the_latest_release_updates_to_head(tmp_path: Path, database: str) -> None:
    """What the next release will ask of every existing project: update from the last tag, add
    the revisions CHANGELOG.md gives, and pass its own suite (integer keys: the harder case)."""
    repository = clone_with_history(tmp_path / "template")
    previous = latest_release(repository)
    if previous is None:
        pytest.skip("no release: neither a tag nor a commit recorded in CHANGELOG.md")
    if database == "postgresql":
        postgres.require_server()
    project = generate(
        repository, tmp_path / "my-service", previous, database=database, primary_key="int"
    )

    update(project, "HEAD")
    assert answers_of(project)["tracing"] == "none", "a project from before the question"
    for number, revision in enumerate(
        unreleased_revisions((repository / "CHANGELOG.md").read_text())
    ):
        (project / f"migrations/versions/from_changelog_{number}.py").write_text(revision)

    assert conflict_markers(project) == []
    # The update may change the dependencies: `uv sync` locks them afresh, as a user's would.
    check_project(project, locked=False)


def locked_packages(project: Path) -> set[str]:
    return set(re.findall(r'^name = "([^"]+)"$', (project / "uv.lock").read_text(), re.MULTILINE))


@pytest.mark.parametrize(
    ("mode", "driver", "package"),
    [("async", "asyncpg", "asyncpg"), ("sync", "psycopg2", "psycopg2-binary")],
)
def test_an_update_never_changes_the_driver_of_a_project_from_before_the_question(
    tmp_path: Path, mode: str, driver: str, package: str
) -> None:
    """A PostgreSQL project of 0.2.0 recorded no driver; whatever the default has become since, the
    update keeps its driver, its dependency and its lock file's driver, and its suite passes."""
    postgres.require_server()
    repository = clone_with_history(tmp_path / "template")
    # A later release might make psycopg 3 the default: the project must not follow it.
    edit(
        repository / "extensions/context.py",
        'default_drivers={"async": "asyncpg", "sync": "psycopg2"}',
        'default_drivers={"async": "psycopg", "sync": "psycopg"}',
    )
    commit_all(repository, "psycopg 3 by default")
    project = generate(
        repository, tmp_path / "my-service", "0.2.0", database="postgresql", sqlalchemy_mode=mode
    )
    assert "driver" not in answers_of(project)
    if not (project / "uv.lock").exists():  # 0.2.0 wrote none: its README has the user lock.
        run(uv(), "lock", cwd=project)
        commit_all(project, "Lock the dependencies")
    assert package in locked_packages(project)

    update(project, "HEAD")

    assert answers_of(project)["driver"] == driver
    assert conflict_markers(project) == []
    pyproject = (project / "pyproject.toml").read_text()
    assert f'"{package}>=' in pyproject
    assert "psycopg[binary]" not in pyproject
    assert f'DRIVERNAME = "postgresql+{driver}"' in (project / PACKAGE / "config.py").read_text()
    check_project(project, locked=False)
    locked = locked_packages(project)
    assert package in locked
    assert "psycopg" not in locked


def test_an_update_may_change_the_driver_when_asked(tmp_path: Path) -> None:
    """`--data driver=psycopg` switches a project of 0.2.0 on purpose."""
    repository = clone_with_history(tmp_path / "template")
    project = generate(repository, tmp_path / "my-service", "0.2.0", database="postgresql")

    update(project, "HEAD", driver="psycopg")

    assert answers_of(project)["driver"] == "psycopg"
    pyproject = (project / "pyproject.toml").read_text()
    assert '"psycopg[binary]>=3.2"' in pyproject
    assert "asyncpg" not in pyproject


def test_an_update_that_brings_the_migration_lint_leaves_earlier_revisions_unlinted(
    tmp_path: Path,
) -> None:
    """0.2.0 had no migration lint: its projects' revisions were written without the rules. The
    update lists them in migrations/lint-baseline.txt; the lint passes them, and refuses the next
    unsafe revision all the same."""
    repository = clone_with_history(tmp_path / "template")
    project = generate(repository, tmp_path / "my-service", "0.2.0", database="postgresql")
    assert not (project / "migrations/lint.py").exists()
    first = first_revision(project)
    # A plain CREATE INDEX, which the lint refuses: written, and shipped, before the lint.
    versions = project / "migrations/versions"
    (versions / "0002_index_users_by_name.py").write_text(USER_REVISION.format(first=first))
    commit_all(project, "Index users by name")

    update(project, "HEAD")

    baseline = (project / "migrations/lint-baseline.txt").read_text()
    assert baseline.startswith("# "), "the file says what it is"
    listed = [line for line in baseline.splitlines() if not line.startswith("#")]
    assert sorted(listed) == sorted([first, "0002"])
    run(uv(), "sync", cwd=project)  # The lint's Squawk is a new dev dependency.
    lint = (uv(), "run", "--no-sync", "python", "migrations/lint.py")
    run(*lint, cwd=project)
    later = USER_REVISION.format(first="0002").replace(
        'revision: str = "0002"', 'revision: str = "0003"'
    )
    (versions / "0003_index_users_by_name_again.py").write_text(
        later.replace("ix_users_name", "ix_users_name_again")
    )
    with pytest.raises(AssertionError, match=r"0003_index_users_by_name_again\.py"):
        run(*lint, cwd=project)
