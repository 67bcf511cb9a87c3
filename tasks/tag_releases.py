"""Tag the template's releases in a clone that has no tags: `python3 tasks/tag_releases.py`.

Copier finds releases by their git tags, but a clone often has none: a fork, a mirror, a shallow or
single-branch clone, or a host the tags were never pushed to. Each release's section in
CHANGELOG.md records the commit it was cut from (``Commit: `<40-hex hash>` ``); this tags each
recorded commit that the clone has with the release's version, and leaves existing tags alone.
Then `copier copy` generates from the latest release, and `copier update` and
`copier check-update` in a generated project find the releases after the one it came from.
Standard library only: it runs with any Python 3.11 or newer, before anything is installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
SECTION = re.compile(r"^## (?P<heading>.*)\n(?P<body>(?:(?!## ).*\n?)*)", re.MULTILINE)
COMMIT_LINE = re.compile(r"\A\s*Commit: `(?P<commit>[0-9a-f]{40})`\n")


@dataclass(frozen=True)
class RecordedRelease:
    """A `## <version>` section of CHANGELOG.md and the tagged commit it records, if any yet."""

    version: str
    commit: str | None


def recorded_releases(changelog: str) -> list[RecordedRelease]:
    """Every section of `changelog` but `## Unreleased`, in the file's order (newest first).

    A release records its tagged commit as the first line of its section:
    ``Commit: `<40-hex hash>` ``.
    """
    releases = []
    for section in SECTION.finditer(changelog):
        if section["heading"].strip() == "Unreleased":
            continue
        recorded = COMMIT_LINE.match(section["body"])
        releases.append(
            RecordedRelease(section["heading"].strip(), recorded["commit"] if recorded else None)
        )
    return releases


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def tag_recorded_releases(repository: Path) -> list[str]:
    """Tag the releases CHANGELOG.md records where `repository` lacks their tags; return them."""
    tags = set(git("tag", "--list", cwd=repository).stdout.split())
    tagged = []
    for release in recorded_releases((repository / "CHANGELOG.md").read_text()):
        if release.commit is None or release.version in tags:
            continue
        if git("cat-file", "-e", f"{release.commit}^{{commit}}", cwd=repository).returncode:
            # A shallow clone lacks the commit: `git fetch --unshallow` brings it.
            missing = f"{release.version}: commit {release.commit} is not in this clone"
            print(missing, file=sys.stderr)
            continue
        done = git("tag", release.version, release.commit, cwd=repository)
        if done.returncode:
            raise SystemExit(f"git tag {release.version} failed: {done.stderr.strip()}")
        tagged.append(release.version)
    return tagged


def main() -> None:
    tagged = tag_recorded_releases(REPOSITORY)
    print(f"tagged {', '.join(tagged)}" if tagged else "every recorded release is tagged already")


if __name__ == "__main__":
    main()
