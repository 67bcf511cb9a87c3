"""A new user's first day, as the READMEs tell it: the commands as written, on real projects.

Clone the template (no tags come with it), tag its releases, generate, check for and take
updates, either as a user on releases or as one following `main`; answers at the edges of their
ranges; two projects pointed at one database by mistake.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import postgres
from tests.releases import clone_with_history, commit_all, edit, git
from tests.rendering import TEMPLATE, install_runtime, render, run, uv
from tests.serving import request, serving

COPIER = ("uvx", "--with", "copier-template-extensions", "copier")
"""Copier as the README runs it."""


def copier(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COPIER, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def recorded_commit(project: Path) -> str:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return str(answers["_commit"])


def readme_commands(readme: str) -> list[str]:
    """The `copier` commands of the README's shell blocks, as written."""
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.DOTALL)
    return [
        line.split("#")[0].strip()
        for block in blocks
        for line in block.splitlines()
        if "copier " in line
    ]


def test_the_readme_gives_the_commands_this_file_runs() -> None:
    commands = readme_commands((TEMPLATE / "README.md").read_text())
    assert "python3 tasks/tag_releases.py" in (TEMPLATE / "README.md").read_text()
    for command in (
        'copy --trust --defaults "$PWD" ../my-service',
        "check-update --quiet; echo $?",
        "update --trust --defaults",
        "update --trust --defaults --vcs-ref=HEAD",
    ):
        assert f"{' '.join(COPIER)} {command}" in commands, command


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The template as `git clone` gives it from a host without its tags, current work on top."""
    return clone_with_history(tmp_path / "template", tags=False)


def test_a_user_on_releases_tags_them_generates_from_the_latest_and_takes_the_next(
    tmp_path: Path, clone: Path
) -> None:
    assert git("tag", "--list", cwd=clone) == "", "the clone starts without tags"
    tagged = run(sys.executable, "tasks/tag_releases.py", cwd=clone).stdout
    tags = git("tag", "--list", "--sort=-version:refname", cwd=clone).split()
    assert {"0.1.0", "0.2.0"} <= set(tags), tagged
    latest = tags[0]

    generated = copier("copy", "--trust", "--defaults", str(clone), "../my-service", cwd=clone)
    project = tmp_path / "my-service"
    assert generated.returncode == 0, generated.stderr
    assert recorded_commit(project) == latest, "generated from the latest release"
    if not (project / ".git").is_dir():  # Releases up to 0.2.0 left `git init` to the user.
        git("init", "-q", "-b", "main", cwd=project)
        commit_all(project, "Generate")
    checked = copier("check-update", "--quiet", cwd=project)
    assert checked.returncode == 0, "up to date: " + checked.stderr

    # The maintainers release again; the user's clone gets the tag (`git pull --tags`).
    edit(clone / "template/README.md.jinja", "# {{ project_name }}", "# {{ project_name }} (new)")
    commit_all(clone, "A fix")
    git("tag", "99.0.0", cwd=clone)

    assert copier("check-update", "--quiet", cwd=project).returncode == 2, "a newer release"
    updated = copier("update", "--trust", "--defaults", cwd=project)
    assert updated.returncode == 0, updated.stderr
    assert recorded_commit(project) == "99.0.0"
    assert (project / "README.md").read_text().startswith("# My Service (new)\n")


def test_a_user_following_main_generates_from_head_and_updates_to_head(
    tmp_path: Path, clone: Path
) -> None:
    run(sys.executable, "tasks/tag_releases.py", cwd=clone)
    generated = copier(
        "copy", "--trust", "--defaults", "--vcs-ref=HEAD", str(clone), "../my-service", cwd=clone
    )
    project = tmp_path / "my-service"
    assert generated.returncode == 0, generated.stderr
    first = recorded_commit(project)
    head = git("rev-parse", "--short", "HEAD", cwd=clone).strip()
    assert head in first, f"generated from HEAD ({head}), recorded as {first}"

    edit(clone / "template/README.md.jinja", "# {{ project_name }}", "# {{ project_name }} (new)")
    commit_all(clone, "A fix on main")

    updated = copier("update", "--trust", "--defaults", "--vcs-ref=HEAD", cwd=project)
    assert updated.returncode == 0, updated.stderr
    assert recorded_commit(project) != first
    assert (project / "README.md").read_text().startswith("# My Service (new)\n")


EDGES = {
    "smallest": {"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.001, "pool_recycle": 1},
    "largest": {"pool_size": 1000, "max_overflow": 1000, "pool_timeout": 3600, "pool_recycle": -1},
}


@pytest.mark.parametrize("edge", EDGES)
def test_answers_at_the_edges_of_their_ranges_make_a_project_that_starts(
    tmp_path: Path, edge: str
) -> None:
    postgres.require_server()
    project = install_runtime(
        render(tmp_path / "my-service", tasks=False, database="postgresql", **EDGES[edge])
    )
    with (
        postgres.throwaway_database() as url,
        serving(project, {"DATABASE_URL": url}, ready="/health/live") as base,
    ):
        assert request("GET", base + "/health/live") == (200, {"status": "ok"})


def test_two_projects_pointed_at_one_database_do_not_share_its_schema(tmp_path: Path) -> None:
    """Same answers, same database: the second's migrations refuse a history not theirs, and its
    readiness probe keeps traffic away."""
    postgres.require_server()
    first, second = (
        install_runtime(render(tmp_path / name / "my-service", tasks=False, database="postgresql"))
        for name in ("first", "second")
    )
    with postgres.throwaway_database() as url:
        env = {"DATABASE_URL": url}
        run(uv(), "run", "--no-sync", "alembic", "upgrade", "head", cwd=first, env=env)
        refused = subprocess.run(
            [uv(), "run", "--no-sync", "alembic", "upgrade", "head"],
            cwd=second,
            env=os.environ | env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode != 0
        assert "Can't locate revision" in refused.stderr, refused.stderr
        with serving(second, env, ready="/health/live") as base:
            status, body = request("GET", base + "/health/ready")
            assert status == 503, body
