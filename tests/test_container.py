"""The generated Dockerfile and compose.yaml, built and run with podman (see tests/containers.py).

Every combination's Dockerfile passes hadolint and its compose file wires the services in order.
One PostgreSQL and one SQLite combination are built into images and run twice: as the README's
deploy section says (a one-off migration container, then the server), and as compose runs its
services, with the local PostgreSQL server standing in for compose's `db` service.
"""

from __future__ import annotations

import graphlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from tests import postgres
from tests.containers import (
    Podman,
    base_image,
    hadolint,
    private_podman,
    require_tools,
    run_to_completion,
    running,
    wait_until_ready,
)
from tests.rendering import COMBINATIONS, combination_id, render
from tests.serving import request

pytestmark = pytest.mark.matrix

# Both databases, both SQLAlchemy modes and both key types, in two images.
IMAGE_COMBINATIONS = [
    {"database": "postgresql", "sqlalchemy_mode": "async", "primary_key": "uuid"},
    {"database": "sqlite", "sqlalchemy_mode": "sync", "primary_key": "int"},
    # psycopg 3's wheel brings its own libpq: the slim image needs no system package for it.
    {
        "database": "postgresql",
        "sqlalchemy_mode": "sync",
        "driver": "psycopg",
        "primary_key": "int",
    },
]

MIGRATE = ("alembic", "upgrade", "head")
READY = "/health/ready"
LIVE = "/health/live"
SQLITE_DATA = "/app/data"
"""Where the SQLite image keeps its database file (its DATABASE_URL points there)."""


@pytest.mark.parametrize("answers", COMBINATIONS, ids=combination_id)
def test_container_files_pass_hadolint_and_order_the_services(
    tmp_path: Path, answers: dict[str, str]
) -> None:
    project = render(tmp_path / "my-service", tasks=False, **answers)

    hadolint(project / "Dockerfile")
    dockerfile = (project / "Dockerfile").read_text()
    first_from = dockerfile.index("\nFROM ")
    assert "\nARG BASE_IMAGE=python:3.12-slim\n" in dockerfile[:first_from]
    assert "# syntax=" not in dockerfile  # it would need a registry to fetch the frontend

    services = load_compose(project / "compose.yaml")["services"]
    assert services["migrate"]["command"] == list(MIGRATE)
    conditions = {"migrate": "service_completed_successfully"}
    if answers["database"] == "postgresql":
        conditions["db"] = "service_healthy"
        assert services["db"]["image"].startswith("postgres:")
        assert "pg_isready" in services["db"]["healthcheck"]["test"]
        assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    elif answers["database"] == "mariadb":
        conditions["db"] = "service_healthy"
        assert services["db"]["image"].startswith("mariadb:")
        assert "healthcheck.sh" in services["db"]["healthcheck"]["test"]
        assert services["db"]["environment"]["MARIADB_USER"] == "my_service"
        assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    else:
        assert set(services) == {"migrate", "app"}
        for name in ("migrate", "app"):
            assert f"data:{SQLITE_DATA}" in services[name]["volumes"]
    assert services["app"]["depends_on"] == {
        name: {"condition": condition} for name, condition in conditions.items()
    }


@dataclass(frozen=True)
class Built:
    """A generated project and the image built from it."""

    answers: dict[str, str]
    project: Path
    image: str


@pytest.fixture(scope="session")
def podman() -> Podman:
    require_tools()
    return private_podman()


@pytest.fixture(scope="session")
def python_base(podman: Podman) -> str:
    return base_image(podman)


@pytest.fixture(scope="module", params=IMAGE_COMBINATIONS, ids=combination_id)
def built(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    podman: Podman,
    python_base: str,
) -> Iterator[Built]:
    answers: dict[str, str] = request.param
    if answers["database"] == "postgresql":
        postgres.require_server()
    folder = tmp_path_factory.mktemp(combination_id(answers))
    project = render(folder / "my-service", **answers)
    # The build installs exactly what is locked (`uv sync --frozen`).
    assert (project / "uv.lock").is_file(), "copying the template writes uv.lock (its task)"
    # A developer's local settings: the build context must leave them out.
    (project / ".env").write_text("DATABASE_URL=sqlite:///./from-the-build-context.db\n")
    image = f"localhost/template-test-{combination_id(answers)}:{uuid.uuid4().hex[:12]}"
    podman.build(project, image, python_base)
    yield Built(answers, project, image)
    podman("rmi", "--force", image)


@contextmanager
def database_for(built: Built, podman: Podman) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """Yield the environment and volumes that give a container a fresh, empty database."""
    if built.answers["database"] == "postgresql":
        with postgres.throwaway_database() as url:
            yield {"DATABASE_URL": url}, {}
    else:
        volume = f"template-test-{uuid.uuid4().hex[:12]}"
        podman("volume", "create", volume)
        try:
            yield {}, {volume: SQLITE_DATA}
        finally:
            podman("volume", "rm", "--force", volume)


@pytest.mark.xdist_group("containers")
def test_image_turns_ready_once_migrated_and_serves_as_a_non_root_user(
    built: Built, podman: Podman
) -> None:
    listing = podman("run", "--rm", "--network=host", "--pull=never", built.image, "ls", "-A")
    expected = {".venv", "alembic.ini", "migrations", "src"}
    if built.answers["database"] == "sqlite":
        expected.add("data")
    assert set(listing.split()) == expected

    # The server starts before the migration: alive, and healthy to the container engine, but
    # not ready.
    with (
        database_for(built, podman) as (env, volumes),
        running(podman, built.image, env=env, volumes=volumes, probe=LIVE) as app,
    ):
        status, body = request("GET", app.url + READY)
        assert status == 503, body
        podman("healthcheck", "run", app.name)

        output = run_to_completion(podman, built.image, env=env, volumes=volumes, command=MIGRATE)
        # The image's LOG_FORMAT: JSON lines, Alembic's included (podman adds lines of its own).
        records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert any("Running upgrade" in record["message"] for record in records), output

        wait_until_ready(podman, app, READY)
        body = {"email": "a@b.example", "name": "A"}
        status, user = request("POST", app.url + "/users", body)
        assert status == 201, user
        assert isinstance(user, dict)
        assert request("GET", f"{app.url}/users/{user['id']}") == (200, user)

        podman("healthcheck", "run", app.name)
        state = json.loads(podman("inspect", "--format={{json .State}}", app.name))
        assert state["Health"]["Status"] == "healthy", state["Health"]

        assert podman("exec", app.name, "id", "-u").strip() != "0"
        status_file = podman("exec", app.name, "cat", "/proc/1/status")
        uids = re.search(r"^Uid:\s+(.+)$", status_file, re.MULTILINE)
        assert uids is not None, status_file
        assert "0" not in uids.group(1).split(), f"the server runs as root: {uids.group(0)}"

        # The server is PID 1 (exec form) and stops on SIGTERM, before podman would kill it.
        podman("stop", "--time=60", app.name)
        state = json.loads(podman("inspect", "--format={{json .State}}", app.name))
        assert state["ExitCode"] == 0, state

        logs = podman.run("logs", app.name)
        for line in (logs.stdout + logs.stderr).splitlines():
            assert "request_id" in json.loads(line), line


@pytest.mark.xdist_group("containers")
def test_compose_services_run_in_order_in_the_image(built: Built, podman: Podman) -> None:
    compose = load_compose(built.project / "compose.yaml")
    services: dict[str, dict[str, Any]] = compose["services"]
    dependencies = {name: service.get("depends_on", {}) for name, service in services.items()}
    one_off = {
        dependency
        for needs in dependencies.values()
        for dependency, condition in needs.items()
        if condition["condition"] == "service_completed_successfully"
    }
    with ExitStack() as stack:
        database_url = None
        if "db" in services:
            database_url = stack.enter_context(postgres.throwaway_database())
        volumes: dict[str, str] = {}  # compose's volume name: podman's

        started = {}
        for name in graphlib.TopologicalSorter(dependencies).static_order():
            if name == "db":
                continue  # the local PostgreSQL server, with a database of its own, stands in
            service = services[name]
            assert service["image"] == services["app"]["image"]  # one image, built once
            env = dict(service.get("environment", {}))
            if database_url is not None:
                env["DATABASE_URL"] = point_at(env["DATABASE_URL"], services["db"], database_url)
            mounts = {}
            for mount in service.get("volumes", []):
                source, target = mount.split(":")
                if source not in volumes:
                    assert source in compose["volumes"], mount  # a named volume, not a folder
                    volumes[source] = f"template-test-{uuid.uuid4().hex[:12]}"
                    podman("volume", "create", volumes[source])
                    stack.callback(podman, "volume", "rm", "--force", volumes[source])
                mounts[volumes[source]] = target
            command = tuple(service.get("command", ()))
            if name in one_off:
                run_to_completion(podman, built.image, env=env, volumes=mounts, command=command)
                continue
            # Published on the port the image listens on (`running` picks a free one instead).
            container_port = int(service["ports"][0].rsplit(":", 1)[1])
            assert container_port == image_port(podman, built.image)
            started[name] = stack.enter_context(
                running(
                    podman,
                    built.image,
                    env=env,
                    volumes=mounts,
                    command=command,
                    probe=READY,
                )
            )

        app = started["app"]
        wait_until_ready(podman, app, READY)
        status, user = request("POST", app.url + "/users", {"email": "c@d.example", "name": "C"})
        assert status == 201, user


def point_at(compose_url: str, db: Mapping[str, Any], database_url: str) -> str:
    """Check that compose's DATABASE_URL names its `db` service; point it at `database_url`."""
    url, settings = urlsplit(compose_url), db["environment"]
    assert url.hostname == "db", compose_url
    assert url.username == settings.get("POSTGRES_USER", "postgres"), compose_url
    assert url.password == settings["POSTGRES_PASSWORD"], compose_url
    assert url.path == "/" + settings["POSTGRES_DB"], compose_url
    local = urlsplit(database_url)
    return urlunsplit((url.scheme, local.netloc, local.path, "", ""))


def image_port(podman: Podman, image: str) -> int:
    environment = json.loads(podman("image", "inspect", "--format={{json .Config.Env}}", image))
    return int(dict(line.split("=", 1) for line in environment)["PORT"])


def load_compose(path: Path) -> dict[str, Any]:
    """compose.yaml as compose reads it: YAML merge keys resolved, variables filled in.

    Every variable takes its default: what a user gets without setting anything.
    """
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return interpolate(document, {})


# The forms compose.yaml uses: ${NAME}, ${NAME:-default} and $$ for a literal $.
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}|\$\$")


def interpolate(value: Any, environment: Mapping[str, str]) -> Any:
    """`value` with the variables in its strings replaced from `environment`."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            return environment.get(match["name"]) or match["default"] or ""

        return _VARIABLE.sub(replace, value)
    if isinstance(value, dict):
        return {key: interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environment) for item in value]
    return value
