"""The generated Dockerfile and compose.yaml, built and run with podman (see tests/containers.py).

Every combination's Dockerfile passes hadolint and its compose file wires the services in order.
Combinations of each database are built into images and run twice: as the README's deploy section
says (a one-off migration container, then the server), and as compose runs its services, with the
host's PostgreSQL or MariaDB server standing in for compose's `db` service (see `SERVERS`).
"""

from __future__ import annotations

import graphlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from tests import mariadb, postgres
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

# Every database, both SQLAlchemy modes and both key types, in four images.
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
    # asyncmy is the one compiled driver wheel of MariaDB's; the key type does not matter here.
    {"database": "mariadb", "sqlalchemy_mode": "async", "primary_key": "int"},
]

MIGRATE = ("alembic", "upgrade", "head")
READY = "/health/ready"
LIVE = "/health/live"
SQLITE_DATA = "/app/data"
"""Where the SQLite image keeps its database file (its DATABASE_URL points there)."""


@contextmanager
def mariadb_database() -> Iterator[str]:
    """An empty database and an account that may use it alone, as the README has them created."""
    with mariadb.throwaway_database() as url, mariadb.throwaway_account(url) as account:
        yield account


@dataclass(frozen=True)
class Server:
    """A database server: how compose's `db` service runs it, and the host's that stands in."""

    image: str
    """compose's `db` image, before its tag..."""
    port: int
    """...and the port it listens on."""
    healthcheck: str
    """The program in the `db` service's healthcheck."""
    user: str
    """The `db` service's variable that names the account the app connects as..."""
    default_user: str | None
    """...and that account without it: none for MariaDB's image, so never root."""
    password: str
    database: str
    """The variables of the account's password and of the database the image creates."""
    require: Callable[[], None]
    """Skips the test without the host's server (fails in CI)."""
    throwaway: Callable[[], AbstractContextManager[str]]
    """An empty database on the host's server, and the URL of an account the app may use it by."""


SERVERS = {
    "postgresql": Server(
        image="postgres",
        port=5432,
        healthcheck="pg_isready",
        user="POSTGRES_USER",
        default_user="postgres",
        password="POSTGRES_PASSWORD",
        database="POSTGRES_DB",
        require=postgres.require_server,
        throwaway=postgres.throwaway_database,
    ),
    "mariadb": Server(
        image="mariadb",
        port=3306,
        healthcheck="healthcheck.sh",
        user="MARIADB_USER",
        default_user=None,
        password="MARIADB_PASSWORD",
        database="MARIADB_DATABASE",
        require=mariadb.require_server,
        throwaway=mariadb_database,
    ),
}
"""The databases with a server; an SQLite project has none (no `db` service)."""


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
    server = SERVERS.get(answers["database"])
    if server is not None:
        conditions["db"] = "service_healthy"
        db = services["db"]
        assert db["image"].startswith(server.image + ":")
        assert server.healthcheck in db["healthcheck"]["test"]
        assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
        names_db(services["app"]["environment"]["DATABASE_URL"], db, server)
        # The project's CI starts the same image, with the same health check (its job runs in
        # tests/test_project_ci.py): over TCP, so not while the image's set-up server runs.
        workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
        (service,) = workflow["jobs"]["test"]["services"].values()
        assert service["image"] == db["image"]
        check = " ".join(db["healthcheck"]["test"][1:])
        assert f'--health-cmd "{check}"' in service["options"]
    else:
        assert set(services) == {"migrate", "app"}
        for name in ("migrate", "app"):
            assert f"data:{SQLITE_DATA}" in services[name]["volumes"]
    assert services["app"]["depends_on"] == {
        name: {"condition": condition} for name, condition in conditions.items()
    }


def test_the_readmes_mariadb_accounts_reach_their_database_alone(tmp_path: Path) -> None:
    """The README's blocks that create the database and its account, run as written on the host's
    server: the example's server and admin replaced by it and the tests' account, the names by the
    test's own. In a grant's database name `_` matches any character unless escaped."""
    mariadb.require_server()
    project = render(
        tmp_path / "my-service",
        tasks=False,
        database="mariadb",
        sqlalchemy_mode="async",
        primary_key="int",
    )
    blocks = re.findall(r"```sh\n(.*?)```", (project / "README.md").read_text(), re.DOTALL)
    setups = [block for block in blocks if "CREATE USER" in block]
    assert len(setups) == 2, setups  # a local server's, and the deploy section's

    server = urlsplit(mariadb.SERVER_URL)
    client = shutil.which("mariadb")
    assert client is not None
    wrapper = tmp_path / "bin" / "mariadb"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f"#!/bin/sh\nexec {client} --host={server.hostname} --port={server.port or 3306}"
        f' --user={server.username} "$@"\n'
    )
    wrapper.chmod(0o755)
    env = os.environ | {"PATH": f"{wrapper.parent}:{os.environ['PATH']}"}
    env["MYSQL_PWD"] = server.password or ""

    for setup in setups:
        # `my_service` names the database (and the local account); `user` the deploy account.
        name = f"template_test_{uuid.uuid4().hex[:8]}"
        script = setup.replace("sudo mariadb", "mariadb")
        script = script.replace("-h db.example.com -u admin -p", "")
        script = script.replace("my\\_service", name.replace("_", "\\_"))
        script = script.replace("my_service", name).replace("'user'@", f"'{name}_user'@")
        assert re.findall(r"^mariadb\b", script, re.MULTILINE) == ["mariadb"], script
        account = re.search(r"CREATE USER '(\w+)'@'%' IDENTIFIED BY '(\w+)'", script)
        assert account is not None, script
        user, password = account.groups()
        # A database whose name matches `name` if its `_` were a wildcard.
        neighbour = name.replace("_", "x", 1)
        mariadb.query(mariadb.SERVER_URL, f"CREATE DATABASE `{neighbour}`")
        try:
            result = subprocess.run(
                ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 0, result.stdout + result.stderr
            own = f"mariadb://{user}:{password}@{server.hostname}:{server.port or 3306}/{name}"
            mariadb.query(own, "CREATE TABLE t (i INT)")
            with pytest.raises(AssertionError, match="denied"):
                mariadb.query(own.rsplit("/", 1)[0] + f"/{neighbour}", "CREATE TABLE t (i INT)")
        finally:
            mariadb.query(
                mariadb.SERVER_URL,
                f"DROP DATABASE IF EXISTS `{neighbour}`; DROP DATABASE IF EXISTS `{name}`;"
                f" DROP USER IF EXISTS '{user}'@'%'",
            )


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
    if server := SERVERS.get(answers["database"]):
        server.require()
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
    """Yield the environment and volumes that give a container a fresh, empty database: the
    README's DATABASE_URL, pointed at the host's server, or a volume for SQLite's file."""
    if server := SERVERS.get(built.answers["database"]):
        readme_url = deploy_database_url(built.project, server)
        with server.throwaway() as url:
            yield {"DATABASE_URL": point_at(readme_url, url)}, {}
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
    server = SERVERS.get(built.answers["database"])
    assert ("db" in services) == (server is not None), set(services)
    with ExitStack() as stack:
        database_url = None
        if server is not None:
            database_url = stack.enter_context(server.throwaway())
        volumes: dict[str, str] = {}  # compose's volume name: podman's

        started = {}
        for name in graphlib.TopologicalSorter(dependencies).static_order():
            if name == "db":
                continue  # the host's server, with a database (and account) of its own, stands in
            service = services[name]
            assert service["image"] == services["app"]["image"]  # one image, built once
            env = dict(service.get("environment", {}))
            if server is not None and database_url is not None:
                names_db(env["DATABASE_URL"], services["db"], server)
                env["DATABASE_URL"] = point_at(env["DATABASE_URL"], database_url)
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


def names_db(compose_url: str, db: Mapping[str, Any], server: Server) -> None:
    """Check that compose's DATABASE_URL names its `db` service, on the port its image listens on,
    with the account and the database the image creates from the service's environment."""
    url, settings = urlsplit(compose_url), db["environment"]
    assert url.hostname == "db", compose_url
    assert url.port == server.port, compose_url
    assert url.username == settings.get(server.user, server.default_user), compose_url
    assert url.password == settings[server.password], compose_url
    assert url.path == "/" + settings[server.database], compose_url


def deploy_database_url(project: Path, server: Server) -> str:
    """The DATABASE_URL of the README's `docker run` commands (the migration's and the server's),
    checked to name the example's server on the port its kind listens on."""
    readme = (project / "README.md").read_text()
    urls = set(re.findall(r"^docker run .*-e DATABASE_URL=(\S+) ", readme, re.MULTILINE))
    assert len(urls) == 1, urls
    (url,) = urls
    assert urlsplit(url).hostname == "db.example.com", url
    assert urlsplit(url).port == server.port, url
    return url


def point_at(example_url: str, database_url: str) -> str:
    """compose's or the README's DATABASE_URL, with its scheme, pointed at `database_url`."""
    local = urlsplit(database_url)
    return urlunsplit((urlsplit(example_url).scheme, local.netloc, local.path, "", ""))


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
