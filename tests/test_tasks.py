"""The template's tasks on `copier copy`: `uv lock` and a first git commit, never a failed copy.

Copier deletes a new project when a task fails, so each case that stops a step (no uv, no network,
no git identity, a surrounding repository) must still leave the whole project and one hint line.
Copier runs here from the command line, as users run it, so its closing message is seen too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.releases import GIT_IDENTITY, clone_template, commit_all, edit, git, release
from tests.rendering import TEMPLATE

COMMIT_MESSAGE = "Generate the project from its Copier template"
SERVE = "uv run alembic upgrade head && uv run uvicorn {package}.main:app"
IDENTITY_VARIABLES = ("GIT_AUTHOR_", "GIT_COMMITTER_", "GIT_CONFIG")


def copier(
    *arguments: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run Copier's command line with `env` (default: a git identity); it must succeed.

    Copier prints its messages on stderr.
    """
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "EMAIL"} and not key.startswith(IDENTITY_VARIABLES)
    }
    environment.update(env if env is not None else GIT_IDENTITY)
    result = subprocess.run(
        [sys.executable, "-m", "copier", *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def copy(destination: Path, *options: str, env: dict[str, str] | None = None) -> str:
    """`copier copy --trust --defaults` of this working tree; returns what Copier printed."""
    arguments = ("copy", "--trust", "--defaults", "--vcs-ref", "HEAD", *options)
    result = copier(*arguments, str(TEMPLATE), str(destination), cwd=destination.parent, env=env)
    assert (destination / "pyproject.toml").is_file(), "the project is kept"
    return result.stderr


def notes(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("note: ")]


def commits(project: Path) -> list[str]:
    return git("log", "--format=%s", cwd=project).splitlines()


def without_git_identity(home: Path) -> dict[str, str]:
    """An environment where git finds no user.name and user.email and may not guess them."""
    home.mkdir()
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "user.useConfigOnly",
        "GIT_CONFIG_VALUE_0": "true",
    }


def test_a_new_project_is_locked_and_committed(tmp_path: Path) -> None:
    project = tmp_path / "service"

    output = copy(project, "--data", "project_name=42 Über Service!")

    # uv accepted the derived distribution name and locked the dependencies.
    assert 'name = "42-uber-service"' in (project / "uv.lock").read_text()
    assert commits(project) == [COMMIT_MESSAGE]
    assert git("status", "--porcelain", cwd=project) == "", "everything is in the first commit"
    # The branch the generated CI workflow runs on, whatever git's default branch is here.
    assert git("branch", "--show-current", cwd=project) == "main\n"
    workflow = (project / ".github/workflows/ci.yml").read_text()
    assert "on:\n  push:\n    branches: [main]" in workflow
    assert "uv.lock" in git("ls-files", cwd=project).split()
    assert notes(output) == []
    assert f"cd {project} && {SERVE.format(package='app_42_uber_service')}" in output


def test_without_uv_or_a_git_identity_the_copy_still_succeeds(tmp_path: Path) -> None:
    # The search path less every folder that holds a uv.
    path = os.pathsep.join(
        folder
        for folder in os.environ["PATH"].split(os.pathsep)
        if not shutil.which("uv", path=folder)
    )
    env = without_git_identity(tmp_path / "home") | {"PATH": path}
    project = tmp_path / "service"

    output = copy(project, env=env)

    assert not (project / "uv.lock").exists()
    assert (project / ".git").is_dir()
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, check=False).returncode
    assert [note.split(":")[1].strip() for note in notes(output)] == [
        "uv not found, so no uv.lock yet",
        "git made no commit (Author identity unknown); set user.name and user.email, then",
    ]


def test_without_the_network_the_lock_is_left_to_the_user(tmp_path: Path) -> None:
    offline = GIT_IDENTITY | {"UV_OFFLINE": "1", "UV_CACHE_DIR": str(tmp_path / "empty-cache")}
    project = tmp_path / "service"

    output = copy(project, env=offline)

    assert not (project / "uv.lock").exists()
    assert commits(project) == [COMMIT_MESSAGE], "the commit is made all the same"
    [note] = notes(output)
    assert note.startswith("note: `uv lock` failed (")
    assert note.endswith("): run it in the project later")


def test_a_project_inside_a_git_work_tree_gets_no_repository_of_its_own(tmp_path: Path) -> None:
    monorepo = tmp_path / "monorepo"
    monorepo.mkdir()
    git("init", "-q", cwd=monorepo)
    project = monorepo / "services" / "billing"
    project.parent.mkdir()

    output = copy(project)

    assert not (project / ".git").exists()
    assert (project / "uv.lock").is_file()
    assert notes(output) == [
        "note: inside a git work tree already: commit the project there before `copier update`"
    ]


def test_a_project_that_its_enclosing_work_tree_ignores_gets_a_repository_of_its_own(
    tmp_path: Path,
) -> None:
    """As in the template's own clone, whose .gitignore lists /my-service/."""
    clone = tmp_path / "clone"
    clone.mkdir()
    git("init", "-q", cwd=clone)
    (clone / ".gitignore").write_text("/my-service/\n")
    project = clone / "my-service"

    output = copy(project)

    assert commits(project) == [COMMIT_MESSAGE]
    assert notes(output) == []


def test_skipped_tasks_leave_lock_and_git_to_the_user(tmp_path: Path) -> None:
    project = tmp_path / "service"

    output = copy(project, "--skip-tasks", "--data", "database=postgresql")

    assert not (project / ".git").exists()
    assert not (project / "uv.lock").exists()
    assert "createdb -h localhost -U postgres my_service" in output
    assert f"cd {project} && {SERVE.format(package='my_service')}" in output
    assert "Tasks skipped: run `uv lock`, and `git init && git add -A && git commit`" in output


def test_an_update_runs_no_task(tmp_path: Path) -> None:
    template = clone_template(tmp_path / "template")
    release(template, "0.1.0")
    project = tmp_path / "service"
    copier("copy", "--trust", "--defaults", str(template), str(project), cwd=tmp_path)
    (project / "uv.lock").unlink()
    commit_all(project, "We do not lock")
    edit(
        template / "template/src/{{ package_name }}/errors.py.jinja",
        "RETRY_AFTER_SECONDS = 5",
        "RETRY_AFTER_SECONDS = 2",
    )
    release(template, "0.2.0")

    result = copier("update", "--trust", "--defaults", cwd=project)

    assert "RETRY_AFTER_SECONDS = 2" in (project / "src/my_service/errors.py").read_text()
    assert not (project / "uv.lock").exists(), "no `uv lock` on update"
    assert commits(project) == ["We do not lock", COMMIT_MESSAGE], "no commit on update"
    assert notes(result.stderr) == []
