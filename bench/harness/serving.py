"""Generates and installs the projects, makes each app's database (PostgreSQL or MariaDB), and
serves an app under uvicorn or Granian."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .apps import GRANIAN_VENV, USER_KEYS, App, Project, project_dir
from .common import COPIER, REPO, WORK, free_port, http, log, mariadb, psql, run

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
GRANIAN = "granian[uvloop]==2.8.9"
"""The Granian of the apps served by it: the latest 2.x on PyPI when it joined the benchmark."""


def copier_copy(dest: Path, vcs_ref: str, answers: dict[str, str]) -> None:
    cmd = [str(COPIER), "copy", "--trust", "--defaults", "--quiet", "--vcs-ref", vcs_ref]
    for key, value in answers.items():
        cmd += ["-d", f"{key}={value}"]
    run([*cmd, str(REPO), str(dest)], timeout=300)


def generate(
    mode: str, pk: str, vcs_ref: str, driver: str = "", database: str = "postgresql"
) -> Path:
    """Generate the project of this database, mode, key type and driver (by default the mode's
    default), and install it with uv."""
    dest = project_dir(mode, pk, driver, database)
    log(f"generating and installing {dest.name}")
    shutil.rmtree(dest, ignore_errors=True)
    answers = {"database": database, "sqlalchemy_mode": mode, "primary_key": pk}
    copier_copy(dest, vcs_ref, answers | ({"driver": driver} if driver else {}))
    install(dest)
    return dest


def generate_project(project: Project, vcs_ref: str) -> None:
    """Generate one of the benchmark's projects from `vcs_ref`, and install it."""
    log(f"generating and installing {project.path.name} (--vcs-ref {vcs_ref})")
    shutil.rmtree(project.path, ignore_errors=True)
    copier_copy(project.path, vcs_ref, project.answers)
    install(project.path)


def install(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    run(["uv", "sync", "--quiet"], cwd=project, env=env, timeout=600)


def install_granian(project: Path) -> None:
    """A virtualenv of Granian's own: the project's locked dependencies, the project, and Granian,
    which the project's lock does not have."""
    log(f"installing {GRANIAN} with {project.name}'s locked dependencies into {GRANIAN_VENV}")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    python = str(project / ".venv" / "bin" / "python")
    requirements = GRANIAN_VENV / "requirements.txt"
    run(
        ["uv", "venv", "--quiet", "--clear", "--python", python, str(GRANIAN_VENV)],
        env=env,
        timeout=120,
    )
    run(
        [
            "uv",
            "export",
            "--quiet",
            "--frozen",
            "--no-dev",
            "--no-hashes",
            "--no-emit-project",
            "--output-file",
            str(requirements),
        ],
        cwd=project,
        env=env,
        timeout=120,
    )
    venv_python = ["--python", str(GRANIAN_VENV / "bin" / "python")]
    run(
        ["uv", "pip", "install", "--quiet", *venv_python, "-r", str(requirements), GRANIAN],
        env=env,
        timeout=600,
    )
    run(
        ["uv", "pip", "install", "--quiet", *venv_python, "--no-deps", "--editable", str(project)],
        env=env,
        timeout=120,
    )


def create_database(app: App, seed_users: int) -> None:
    """A fresh database for the app, migrated by its project's Alembic and seeded with users."""
    drop_database(app)
    if app.backend == "mariadb":
        mariadb(f"CREATE DATABASE `{app.database}`")
    else:
        psql(f'CREATE DATABASE "{app.database}"')
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["DATABASE_URL"] = app.url
    run(
        [str(app.project / ".venv" / "bin" / "alembic"), "upgrade", "head"],
        cwd=app.project,
        env=env,
        timeout=120,
    )
    # The same users in every database: seed-1 .. seed-N, one second apart.
    if app.backend == "mariadb":
        seed_mariadb(app, seed_users)
    else:
        seed_postgresql(app, seed_users)
    ids = query(app, "SELECT id FROM users ORDER BY created_at, id").splitlines()
    app.ids_file.parent.mkdir(parents=True, exist_ok=True)
    app.ids_file.write_text("\n".join(ids) + "\n")


def seed_postgresql(app: App, seed_users: int) -> None:
    id_column = "id, " if app.pk == "uuid" else ""
    id_value = "gen_random_uuid(), " if app.pk == "uuid" else ""
    psql(
        f"INSERT INTO users ({id_column}email, name, created_at, updated_at) "
        f"SELECT {id_value}format('seed-%s@example.org', g), format('Seed User %s', g), "
        f"timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second', "
        f"timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second' "
        f"FROM generate_series(1, {seed_users}) AS g",
        app.database,
    )
    psql("VACUUM ANALYZE users", app.database)


def seed_mariadb(app: App, seed_users: int) -> None:
    # seq_1_to_N: MariaDB's Sequence engine; the DATETIME columns hold naive UTC.
    mariadb(
        "INSERT INTO users (email, name, created_at, updated_at) "
        "SELECT CONCAT('seed-', seq, '@example.org'), CONCAT('Seed User ', seq), "
        "TIMESTAMP '2025-01-01 00:00:00' + INTERVAL seq SECOND, "
        "TIMESTAMP '2025-01-01 00:00:00' + INTERVAL seq SECOND "
        f"FROM seq_1_to_{seed_users}",
        app.database,
    )
    mariadb("ANALYZE TABLE users", app.database)


def query(app: App, sql: str) -> str:
    """Run SQL in the app's database, on its server."""
    return mariadb(sql, app.database) if app.backend == "mariadb" else psql(sql, app.database)


def reset_table(app: App) -> None:
    """Remove the users POST created, so every run reads the same table."""
    query(app, "DELETE FROM users WHERE email NOT LIKE 'seed-%'")
    query(app, "ANALYZE TABLE users" if app.backend == "mariadb" else "VACUUM ANALYZE users")


def drop_database(app: App) -> None:
    if app.backend == "mariadb":
        mariadb(f"DROP DATABASE IF EXISTS `{app.database}`")
    else:
        psql(f'DROP DATABASE IF EXISTS "{app.database}" WITH (FORCE)')


class Server:
    """One server (uvicorn, or Granian with its main and one worker process; one worker, no access
    log) on a free loopback port. `pid` is the process that runs the app, the one measured: uvicorn's
    own, or Granian's worker once the server is ready."""

    def __init__(self, app: App, label: str) -> None:
        self.app = app
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        log_path = WORK / "logs" / f"{app.name}-{label}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        cmd = self.granian_command() if app.server == "granian" else self.uvicorn_command()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
        env.update(app.env, DATABASE_URL=app.url)
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            cmd, cwd=app.app_dir or app.project, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.pid = self.proc.pid

    def uvicorn_command(self) -> list[str]:
        cmd = [
            str(self.app.python),
            "-m",
            "uvicorn",
            self.app.target,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        return cmd + (["--app-dir", str(self.app.app_dir)] if self.app.app_dir else [])

    def granian_command(self) -> list[str]:
        cmd = [
            str(GRANIAN_VENV / "bin" / "granian"),
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        if self.app.app_dir:
            cmd += ["--working-dir", str(self.app.app_dir)]
        return [*cmd, self.app.target]

    def worker_pid(self) -> int:
        """The process that runs the app: Granian's main process only starts and watches its
        worker (one, here); uvicorn with one worker runs the app itself."""
        if self.app.server != "granian":
            return self.proc.pid
        children = [
            int(pid)
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir()
            for pid in (task / "children").read_text().split()
        ]
        if len(children) != 1:
            self.stop()
            raise SystemExit(f"{self.app.name}: expected one Granian worker, found {children}")
        return children[0]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if http("GET", self.base + "/users?limit=1")[0] == 200:
                    self.pid = self.worker_pid()
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(
            f"{self.app.name} did not start; log:\n{self.log_path.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def check_app(server: Server) -> None:
    """The app answers the three routes with the generated app's JSON shape and the seeded data."""
    app = server.app
    first_id = app.ids_file.read_text().split()[0]
    status, body = http("GET", f"{server.base}/users/{first_id}")
    assert status == 200 and isinstance(body, dict) and set(body) == USER_KEYS, (
        app.name,
        status,
        body,
    )
    assert body["email"] == "seed-1@example.org", (app.name, body)
    status, body = http("GET", f"{server.base}/users?limit=50")
    assert status == 200 and isinstance(body, list) and len(body) == 50, (app.name, status, body)
    assert all(set(item) == USER_KEYS for item in body), (app.name, body[0])
    emails = [item["email"] for item in body]
    assert emails == [f"seed-{i}@example.org" for i in range(1, 51)], (app.name, emails[:5])
    status, body = http(
        "POST", f"{server.base}/users", {"email": f"check-{app.name}@example.org", "name": "Check"}
    )
    assert status == 201 and isinstance(body, dict) and set(body) == USER_KEYS, (
        app.name,
        status,
        body,
    )
    if app.answers_conflict:
        status, _ = http(
            "POST",
            f"{server.base}/users",
            {"email": f"check-{app.name}@example.org", "name": "Check"},
        )
        assert status == 409, (app.name, "a duplicate email must answer 409", status)
    app.checked = True
