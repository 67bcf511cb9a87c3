"""Settings for the whole run of the template's tests."""

from __future__ import annotations

import os

# The tests start Python thousands of times in the environments of the projects they generate:
# pytest, alembic, uvicorn, lint.py, each importing SQLAlchemy, FastAPI and Pydantic. Where the
# machine sets PYTHONDONTWRITEBYTECODE (some CI images do), each of those processes compiled every
# module it imported afresh: about half of a generated suite's CPU time. Each generated project's
# environment is its own and thrown away with it, so let its processes keep what they compile.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
