"""Every release CHANGELOG.md records is one a user can check out: `copier update --vcs-ref=X.Y.Z`.

Copier finds releases by their git tags, orders them as PEP 440 versions, and records the one a
project came from. A release whose version is not PEP 440, whose recorded commit is not in this
branch's history, or whose tag points elsewhere breaks updates for every project generated from it.
"""

from __future__ import annotations

import subprocess

import pytest
from packaging.version import InvalidVersion, Version

from tests.releases import CHANGELOG, RecordedRelease, git, recorded_releases
from tests.rendering import TEMPLATE

RELEASES = recorded_releases(CHANGELOG.read_text())


def succeeds(*args: str) -> bool:
    return subprocess.run(["git", *args], cwd=TEMPLATE, capture_output=True).returncode == 0


def tags() -> set[str]:
    return set(git("tag", "--list", cwd=TEMPLATE).split())


def test_the_changelog_records_the_releases() -> None:
    assert RELEASES, "no `## X.Y.Z` section in CHANGELOG.md"
    parsed = recorded_releases(
        "# Changelog\n\n## Unreleased\n\n- a\n\n## 1.0.0\n\nCommit: `" + "a" * 40 + "`\n\n"
        "- b\n\n### Notes\n\n## 0.9.0\n\n- c\n"
    )
    assert parsed == [RecordedRelease("1.0.0", "a" * 40), RecordedRelease("0.9.0", None)]


@pytest.mark.parametrize("release", RELEASES, ids=lambda release: release.version)
def test_a_recorded_release_can_be_checked_out(release: RecordedRelease) -> None:
    try:
        version = Version(release.version)
    except InvalidVersion:
        pytest.fail(f"`## {release.version}` is not a PEP 440 version: Copier ignores such tags")
    assert str(version) == release.version, f"write `## {version}`: tags use the normalised form"
    if release.commit is None:
        # Only between tagging a release and recording its commit (README, "Releasing").
        assert release.version in tags(), f"{release.version}: record its tagged commit"
        return
    assert succeeds("cat-file", "-e", f"{release.commit}^{{commit}}"), (
        f"{release.version}: commit {release.commit} is not in this repository"
    )
    assert succeeds("merge-base", "--is-ancestor", release.commit, "HEAD"), (
        f"{release.version}: commit {release.commit} is not in the history of HEAD"
    )
    if release.version in tags():
        tagged = git("rev-parse", f"{release.version}^{{commit}}", cwd=TEMPLATE).strip()
        assert tagged == release.commit, f"tag {release.version} points at {tagged}"


def test_releases_are_listed_newest_first() -> None:
    versions = [Version(release.version) for release in RELEASES]
    assert versions == sorted(set(versions), reverse=True)
