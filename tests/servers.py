"""What a test does when a database server it needs is not there."""

from __future__ import annotations

import os

import pytest


def skip_unless_ci(name: str, url: str, problem: str) -> None:
    """If `problem` says `name`'s server at `url` cannot be reached, skip the calling test, except
    in CI, where that fails: CI tests every database and never skips one."""
    if problem:
        message = f"no {name} server at {url}: {problem}"
        if os.environ.get("CI"):
            pytest.fail(message + f" (CI must test {name}; it never skips it)")
        pytest.skip(message)
