"""Copier task, run in a newly generated project: lock its dependencies, then make its first commit.

`copier.yml` runs it on `copier copy` only, with the Python that runs Copier (standard library
only). It must never fail: Copier deletes a new project when a task fails. Whatever step cannot
run (no uv, no network, no git, no git identity) prints a one-line hint and is left to the user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

COMMIT_MESSAGE = "Generate the project from its Copier template"
LOCK_TIMEOUT = 300
"""Seconds `uv lock` may take: a first resolution downloads the index pages of every dependency."""
GIT_TIMEOUT = 60


def hint(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def run(command: list[str], project: Path, timeout: float) -> str | None:
    """Run `command` in `project`; return None on success, else the first line of its complaint."""
    # An activated virtual environment belongs to another project: uv would warn about it.
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    try:
        result = subprocess.run(
            command,
            cwd=project,
            env=env,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout:.0f} s"
    except OSError as error:
        return str(error)
    if result.returncode == 0:
        return None
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[0][:120] if lines else f"exit status {result.returncode}"


def lock(project: Path) -> None:
    """Write `uv.lock`, so installs (`uv sync --frozen` in a container build) are reproducible."""
    uv = shutil.which("uv")
    if uv is None:
        hint("uv not found, so no uv.lock yet: run `uv lock` in the project once uv is installed")
        return
    if failure := run([uv, "lock", "--quiet"], project, LOCK_TIMEOUT):
        hint(f"`uv lock` failed ({failure}): run it in the project later")


def first_commit(project: Path) -> None:
    """Put the project under git with one commit, which `copier update` needs."""
    git = shutil.which("git")
    if git is None:
        hint("git not found: put the project under git before you run `copier update`")
        return
    inside = run([git, "rev-parse", "--is-inside-work-tree"], project, GIT_TIMEOUT) is None
    # A work tree that ignores the project (the template's own clone ignores /my-service/) could
    # never hold its commits: the project gets a repository of its own, as outside any.
    ignored = inside and run([git, "check-ignore", "--quiet", "."], project, GIT_TIMEOUT) is None
    if inside and not ignored:
        hint("inside a git work tree already: commit the project there before `copier update`")
        return
    # The first branch is `main`, which the generated CI workflow runs on, whatever git's own
    # default (`master` before git 3.0, or init.defaultBranch); `symbolic-ref` works on any git.
    first_branch = ["symbolic-ref", "HEAD", "refs/heads/main"]
    for step in (["init", "--quiet"], first_branch, ["add", "--all"]):
        if failure := run([git, *step], project, GIT_TIMEOUT):
            hint(f"`git {step[0]}` failed ({failure}): put the project under git yourself")
            return
    if failure := run([git, "commit", "--quiet", "-m", COMMIT_MESSAGE], project, GIT_TIMEOUT):
        hint(
            f"git made no commit ({failure}); set user.name and user.email, "
            f'then: git commit -m "{COMMIT_MESSAGE}"'
        )


def main() -> None:
    project = Path.cwd()
    lock(project)  # first, so the first commit holds uv.lock
    first_commit(project)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:
        # Whatever went wrong, exiting non-zero would make Copier delete the generated project.
        hint(f"the set-up task stopped ({error!r}): run `uv lock` and commit the project yourself")
