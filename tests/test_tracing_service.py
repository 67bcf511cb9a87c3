"""A traced service under its production server, with several workers, and an OTLP collector.

The generated suite checks the spans in process (an in-memory exporter); this checks what only the
real server shows: each worker process sets up its own exporter, and sends what it still holds
when it stops.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.clients import call
from tests.rendering import install_runtime, render, run
from tests.serving import HOST, production_server, venv_program

pytestmark = pytest.mark.matrix


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP receiver keeping the bodies posted to /v1/traces, undecoded (protobuf)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        super().__init__((HOST, 0), CollectorHandler)


class CollectorHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            self.server.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextmanager
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_every_worker_sends_the_trace_of_each_request_it_served(tmp_path: Path) -> None:
    answers = {"sqlalchemy_mode": "sync", "primary_key": "int", "tracing": "opentelemetry"}
    project = install_runtime(render(tmp_path / "my-service", tasks=False, **answers))
    with collector() as otlp:
        env = {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'traced.db'}",
            "WEB_CONCURRENCY": "2",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{HOST}:{otlp.server_port}",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
        }
        run(venv_program(project, "alembic"), "upgrade", "head", cwd=project, env=env)
        request_ids = []
        with production_server(project, env) as server:
            for number in range(20):
                with server.connect() as connection:  # A new connection: either worker may take it.
                    user = {"email": f"user{number}@example.com", "name": "Traced"}
                    reply = call(connection, "POST", "/users", user)
                assert reply.status == 201, reply
                request_ids.append(reply.headers["x-request-id"])
            # Leaving the block stops the server (SIGTERM): each worker sends what it holds.
        received = b"".join(otlp.bodies)

    # Each span carries its trace id as 16 raw bytes: every request's, whichever worker served it.
    unsent = [each for each in request_ids if bytes.fromhex(each) not in received]
    assert not unsent, f"{len(unsent)} of {len(request_ids)} traces never arrived"
