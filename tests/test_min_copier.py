"""The lowest Copier `copier.yml` admits (`_min_copier_version`) generates and updates a project.

That Copier runs in an environment of its own (`uv tool run --from copier==X`), so the newer Copier
of the test environment cannot mask what it lacks. 9.5 and older, for instance, have no
`_copier_operation`: an update there rewrites the project's Alembic revisions and a copy runs no
task.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.releases import GIT_IDENTITY, clone_template, edit, git, release
from tests.rendering import TEMPLATE, uv

pytestmark = pytest.mark.matrix

MIN_COPIER: str = yaml.safe_load((TEMPLATE / "copier.yml").read_text())["_min_copier_version"]
FIRST_REVISION = "migrations/versions/0001_create_users_and_posts.py"
ANSWERS: dict[str, object] = {
    "project_name": "42 Über Service!",
    "license": "Proprietary",
    "copyright": "2026 Example Ltd",
    "database": "postgresql",
    "sqlalchemy_mode": "sync",
    "primary_key": "int",
    "pool_size": 3,
    "pool_timeout": 2.5,
    "pool_recycle": -1,
    "pool_pre_ping": False,
}


def min_copier(*arguments: str, cwd: Path) -> str:
    """Run the lowest admitted Copier, with the extension loader users install beside it."""
    command = [uv(), "tool", "run", "--from", f"copier=={MIN_COPIER}"]
    command += ["--with", "copier-template-extensions", "copier", *arguments]
    environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    result = subprocess.run(
        command,
        cwd=cwd,
        env=environment | GIT_IDENTITY,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout + result.stderr


def as_data(value: object) -> str:
    """An answer as `--data` takes it (`false`, not Python's `False`)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def recorded(project: Path) -> dict[str, object]:
    answers: dict[str, object] = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return answers


def test_the_lowest_admitted_copier_generates_and_updates_a_project(tmp_path: Path) -> None:
    assert f"copier {MIN_COPIER}\n" in min_copier("--version", cwd=tmp_path)
    template = clone_template(tmp_path / "template")
    release(template, "0.1.0")
    project = tmp_path / "service"
    data = [f"--data={key}={as_data(value)}" for key, value in ANSWERS.items()]

    min_copier("copy", "--trust", "--defaults", *data, str(template), str(project), cwd=tmp_path)

    generated = recorded(project)
    assert generated["_commit"] == "0.1.0"
    assert {key: generated[key] for key in ANSWERS} == ANSWERS
    assert (generated["project_slug"], generated["package_name"]) == (
        "42-uber-service",
        "app_42_uber_service",
    )
    # The copy tasks ran: a lock file and a first commit holding everything.
    assert (project / "uv.lock").is_file()
    assert git("status", "--porcelain", cwd=project) == ""
    first_revision = (project / FIRST_REVISION).read_bytes()

    # A release that fixes a module and edits the template's first revision.
    edit(
        template / "template/src/{{ package_name }}/errors.py.jinja",
        "RETRY_AFTER_SECONDS = 5",
        "RETRY_AFTER_SECONDS = 2",
    )
    edit(
        template / f"template/{FIRST_REVISION}.jinja",
        '"""Create users and posts.',
        '"""Create the users and posts tables.',
    )
    release(template, "0.2.0")

    min_copier("update", "--trust", "--defaults", cwd=project)

    # Every answer came back from the answers file; only the release moved.
    assert recorded(project) == generated | {"_commit": "0.2.0"}
    assert "RETRY_AFTER_SECONDS = 2" in (project / "src/app_42_uber_service/errors.py").read_text()
    assert (project / FIRST_REVISION).read_bytes() == first_revision, "revisions are the project's"
    changed = git("status", "--porcelain", cwd=project).splitlines()
    assert sorted(changed) == [" M .copier-answers.yml", " M src/app_42_uber_service/errors.py"]
