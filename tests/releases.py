"""Throw-away copies of this template as a git repository with release tags, for update tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tasks.tag_releases import RecordedRelease, recorded_releases, tag_recorded_releases
from tests.rendering import TEMPLATE

__all__ = ["RecordedRelease", "recorded_releases", "tag_recorded_releases"]

CHANGELOG = TEMPLATE / "CHANGELOG.md"


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@localhost",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@localhost",
}


def git(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=os.environ | GIT_IDENTITY,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def clone_template(destination: Path) -> Path:
    """Copy the template's working tree (committed or not) into a new repository."""
    listed = git("ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=TEMPLATE)
    for name in filter(None, listed.split("\0")):
        source = TEMPLATE / name
        if source.is_file() and not name.startswith("bench/"):
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git("init", "-q", "-b", "main", cwd=destination)
    return destination


def release(repository: Path, version: str) -> None:
    """Commit everything and tag it with a PEP 440 version."""
    git("add", "-A", cwd=repository)
    git("commit", "-q", "--allow-empty", "-m", f"Release {version}", cwd=repository)
    git("tag", version, cwd=repository)


def commit_all(project: Path, message: str) -> None:
    git("add", "-A", cwd=project)
    git("commit", "-q", "-m", message, cwd=project)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def clone_with_history(destination: Path, tags: bool = True) -> Path:
    """Clone this repository, and commit any uncommitted work on top as HEAD.

    With `tags`, the clone gets this repository's tags and the releases CHANGELOG.md records;
    without, it has none, as a clone of a host that was never given them.
    """
    git("clone", "-q", "--no-tags", str(TEMPLATE), str(destination), cwd=destination.parent)
    if tags:
        git("fetch", "-q", "--tags", str(TEMPLATE), cwd=destination)
        tag_recorded_releases(destination)
    working_tree = clone_template(destination.parent / "working-tree")
    for source in working_tree.rglob("*"):
        if source.is_file() and ".git" not in source.relative_to(working_tree).parts:
            target = destination / source.relative_to(working_tree)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git("add", "-A", cwd=destination)
    if git("status", "--porcelain", cwd=destination):
        git("commit", "-q", "-m", "Work in progress", cwd=destination)
    return destination


def latest_release(repository: Path) -> str | None:
    tags = git("tag", "--list", "--sort=-version:refname", cwd=repository).split()
    return tags[0] if tags else None
