"""Settings for the whole run of the template's tests."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

# The tests start Python thousands of times in the environments of the projects they generate:
# pytest, alembic, uvicorn, lint.py, each importing SQLAlchemy, FastAPI and Pydantic. Where the
# machine sets PYTHONDONTWRITEBYTECODE (some CI images do), each of those processes compiled every
# module it imported afresh: about half of a generated suite's CPU time. Each generated project's
# environment is its own and thrown away with it, so let its processes keep what they compile.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# mypy --strict checks every generated project, each in an environment of its own: from a cold
# cache, about 20 s of CPU each, nearly all of it re-reading the same SQLAlchemy, FastAPI and
# Pydantic. The first project to finish publishes its cache here and later ones start from a copy:
# mypy still checks each module whose source differs (by hash), so a copy changes no verdict.
# Set here, in the process that starts pytest-xdist's workers, so that they all share one folder.
MYPY_SEED_VARIABLE = "TEMPLATE_TESTS_MYPY_SEED"
_own_seed = MYPY_SEED_VARIABLE not in os.environ
os.environ.setdefault(
    MYPY_SEED_VARIABLE,
    os.path.join(tempfile.gettempdir(), f"template-tests-mypy-seed-{os.getpid()}"),
)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _own_seed and not hasattr(config, "workerinput"):  # The run's own process, not a worker.
        shutil.rmtree(os.environ[MYPY_SEED_VARIABLE], ignore_errors=True)
