"""A TCP proxy in front of a real gateway that misbehaves the way networks do: it drops the
connection after forwarding a request (the answer is lost), or answers 503 itself as a load
balancer would while the gateway is away. It records the head of each request it sees."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress

from .mesh import free_port


def _read_request(conn: socket.socket) -> bytes:
    """One whole HTTP request (head and Content-Length body) from `conn`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while chunk := source.recv(65536):
            target.sendall(chunk)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


class FlakyProxy:
    """Listens on `url`; forwards to 127.0.0.1:`upstream`. The first `drops` connections
    forward their first request and close without passing the answer on; the next `unavailable`
    connections get a 503 without reaching the gateway; later ones are piped through."""

    def __init__(self, upstream: int, *, drops: int = 0, unavailable: int = 0) -> None:
        self.upstream, self.drops, self.unavailable = upstream, drops, unavailable
        self.heads: list[str] = []
        """The head (request line and headers) of the first request on each connection."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                conn, _ = self._server.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            drop, self.drops = self.drops > 0, max(0, self.drops - 1)
            refuse = not drop and self.unavailable > 0
            self.unavailable -= 1 if refuse else 0
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        with conn, upstream:
            request = _read_request(conn)
            with self._lock:
                self.heads.append(request.partition(b"\r\n\r\n")[0].decode(errors="replace"))
            if refuse:
                body = b'{"detail": "the gateway is away", "field": null}'
                conn.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                return
            upstream.sendall(request)
            if drop:
                upstream.recv(1)  # the gateway answered: the job exists; the answer is lost
                conn.shutdown(socket.SHUT_RDWR)
                return
            back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
            back.start()
            _pipe(conn, upstream)
            back.join()
