"""Clients that meet a server the way real ones do: over keep-alive connections, slowly, hugely."""

from __future__ import annotations

import http.client
import json
import select
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.serving import HOST


@dataclass(frozen=True)
class Reply:
    """An answer read whole by http.client."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request on `connection`; a body that is not bytes is sent as JSON."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    connection.request(
        method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    response = connection.getresponse()
    return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())


@dataclass(frozen=True)
class Pushed:
    """What `push` sent and what came back."""

    sent: int
    """Bytes of the request sent after its head, when the server answered or closed."""
    answer: bytes
    """Everything the server sent before it closed the connection (b"" if it closed at once)."""

    @property
    def status(self) -> int | None:
        return int(self.answer.split(b" ", 2)[1]) if self.answer else None

    @property
    def headers(self) -> dict[str, str]:
        head = self.answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
        return {name.lower(): value.strip() for name, value in (h.split(":", 1) for h in head)}

    @property
    def body(self) -> bytes:
        return self.answer.split(b"\r\n\r\n", 1)[1]


def push(port: int, head: bytes, rest: Iterable[bytes], stuck_after: float = 10) -> Pushed:
    """Send `head`, then the pieces of `rest` for as long as the server neither answers nor closes.

    Tells how much of `rest` went out before the server stopped it, and what it answered: a
    server that refuses a request without reading it answers long before `rest` is all sent.
    Fails if the server neither reads nor answers for `stuck_after` seconds.
    """
    with socket.create_connection((HOST, port), timeout=stuck_after) as connection:
        connection.sendall(head)
        connection.setblocking(False)
        sent, pending, pieces = 0, b"", iter(rest)
        while True:
            readable, writable, _ = select.select([connection], [connection], [], stuck_after)
            if readable:
                break
            if not writable:
                raise AssertionError(f"the server neither read nor answered for {stuck_after} s")
            if not pending:
                pending = next(pieces, b"")
                if not pending:
                    break
            try:
                written = connection.send(pending[:262_144])
            except (BrokenPipeError, ConnectionResetError):
                break  # Closed by the server: what it answered is still in our buffer.
            sent, pending = sent + written, pending[written:]
        connection.settimeout(stuck_after)
        answer = b""
        try:
            while piece := connection.recv(65_536):
                answer += piece
        except ConnectionResetError:
            pass  # Closed with our unread bytes in its buffer: a reset, after its answer.
        except TimeoutError:
            pass  # It answered but kept the connection open: the caller judges the answer.
        return Pushed(sent, answer)


def trickle_headers(port: int, clients: int, give_up_after: float) -> list[float]:
    """Open `clients` connections that each send a request's head one byte per second.

    Returns how long the server kept each one open (`give_up_after` for those it never closed).
    """
    head = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 100 + b"\r\n\r\n"
    return [lifetime for lifetime, _ in trickle(port, clients, b"", head, give_up_after)]


def trickle_bodies(port: int, clients: int, give_up_after: float) -> list[tuple[float, bytes]]:
    """Open `clients` connections that each send a `POST /users` head whole, then its 1,000-byte
    body one byte per second.

    Returns how long the server kept each one open, and what it answered (see `trickle`).
    """
    body = b'{"email": "slow@example.com", "name": "' + b"s" * 957 + b'"}'
    head = b"POST /users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: %d\r\n\r\n" % len(body)
    return trickle(port, clients, head, body, give_up_after)


def trickle(
    port: int, clients: int, at_once: bytes, slowly: bytes, give_up_after: float
) -> list[tuple[float, bytes]]:
    """Open `clients` connections that each send `at_once`, then `slowly` one byte per second.

    Returns, for each, how long the server kept it open (`give_up_after` for those it never
    closed) and what it answered before closing it.
    """
    started = time.monotonic()
    sent = {socket.create_connection((HOST, port), timeout=10): 0 for _ in range(clients)}
    answers = {connection: b"" for connection in sent}
    for connection in sent:
        connection.sendall(at_once)
    ended: list[tuple[float, bytes]] = []

    def closed(connection: socket.socket) -> None:
        ended.append((time.monotonic() - started, answers.pop(connection)))
        del sent[connection]
        connection.close()

    next_byte = started
    try:
        while sent and time.monotonic() - started < give_up_after:
            if time.monotonic() >= next_byte:
                for connection, count in list(sent.items()):
                    try:
                        connection.send(slowly[count : count + 1])
                        sent[connection] = count + 1
                    except OSError:
                        closed(connection)
                next_byte += 1
            wait = max(0.0, next_byte - time.monotonic())
            readable, _, _ = select.select(list(sent), [], [], wait) if sent else ([], [], [])
            for connection in readable:
                try:
                    piece = connection.recv(4096)
                except OSError:
                    piece = b""
                if piece:
                    answers[connection] += piece
                else:  # The end, after an answer or without one.
                    closed(connection)
    finally:
        for connection in sent:
            connection.close()
    return ended + [(give_up_after, answers[connection]) for connection in sent]
