"""The PostgreSQL topologies of tests/pgcluster.py do what they claim, proven with psql alone."""

from __future__ import annotations

import socket
import struct
import subprocess
import time

import pytest

from tests import postgres
from tests.pgcluster import (
    HOST,
    PgBouncer,
    PsqlError,
    pgbouncer,
    private_server,
    psql,
    streaming_pair,
)

pytestmark = pytest.mark.matrix

USES_SSL = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def test_a_server_that_requires_ssl_serves_verified_ssl_connections_only() -> None:
    with private_server(ssl="required") as server:
        root_cert = str(server.root_cert)
        assert psql(server.url_with(sslmode="require"), USES_SSL) == "t"
        for host in ("127.0.0.1", "localhost"):  # The certificate names both.
            url = server.url_with(host=host, sslmode="verify-full", sslrootcert=root_cert)
            assert psql(url, USES_SSL) == "t"
        with pytest.raises(PsqlError, match="no encryption"):
            psql(server.url_with(sslmode="disable"), "SELECT 1")


def test_a_replica_replays_the_primarys_writes_and_refuses_its_own() -> None:
    with streaming_pair() as pair:
        assert pair.replica.query("SELECT pg_is_in_recovery()") == "t"
        pair.primary.query("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        pair.wait_for_replay()
        assert pair.replica.query("SELECT x FROM t") == "1"
        with pytest.raises(PsqlError) as refused:
            pair.replica.query("INSERT INTO t VALUES (2)")
        assert refused.value.sqlstate == "25006"  # read_only_sql_transaction


def test_pgbouncer_holds_the_server_to_its_pool_however_many_clients_wait() -> None:
    postgres.require_server()
    with postgres.throwaway_database() as url, pgbouncer(url, pool_size=2) as bouncer:
        database = url.rsplit("/", 1)[1]
        clients = [
            subprocess.Popen(["psql", bouncer.url, "-Atc", "SELECT pg_sleep(1)"]) for _ in range(5)
        ]
        try:
            deadline = time.monotonic() + 20
            while not any(int(pool["cl_waiting"]) for pool in _pools(bouncer, database)):
                assert time.monotonic() < deadline, "no client ever waited for a server connection"
                time.sleep(0.05)
            held = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'"
            assert int(psql(postgres.SERVER_URL, held)) <= bouncer.pool_size
            assert len(bouncer.show("SERVERS")) <= bouncer.pool_size
        finally:
            assert [client.wait(timeout=30) for client in clients] == [0] * 5
        assert [pool["pool_mode"] for pool in _pools(bouncer, database)] == ["transaction"]


def test_pgbouncer_ignores_extra_float_digits_and_refuses_options() -> None:
    postgres.require_server()
    with pgbouncer(postgres.SERVER_URL, pool_size=1) as bouncer:
        # "R": authentication request (here: OK); a refusal would be "E".
        assert _first_reply(bouncer.port, user="postgres", extra_float_digits="3") == b"R"
        with pytest.raises(PsqlError, match="unsupported startup parameter: options"):
            psql(bouncer.url + "?options=-c%20statement_timeout%3D5s", "SELECT 1")


def test_pgbouncer_speaks_ssl_to_a_server_that_offers_it() -> None:
    with private_server(ssl="on") as server, pgbouncer(server.url, pool_size=1) as bouncer:
        assert psql(bouncer.url, USES_SSL) == "t"
        assert psql(server.url_with(sslmode="disable"), USES_SSL) == "f"


def _pools(bouncer: PgBouncer, database: str) -> list[dict[str, str]]:
    return [pool for pool in bouncer.show("POOLS") if pool["database"] == database]


def _first_reply(port: int, **parameters: str) -> bytes:
    """Send a protocol 3.0 startup packet; return the type of the first message back."""
    body = struct.pack("!i", 3 << 16)
    body += b"".join(f"{name}\0{value}\0".encode() for name, value in parameters.items()) + b"\0"
    with socket.create_connection((HOST, port), timeout=10) as connection:
        connection.sendall(struct.pack("!i", len(body) + 4) + body)
        return connection.recv(1)
