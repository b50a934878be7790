"""A real HTTP receiver of webhooks for the tests: it records each request and answers as told.

Each answer is taken from ``answers`` in turn (then ``default``): a status code, or
``HOLD`` to keep the request open until :meth:`Receiver.release` (or 30 s). Every recorded
request can be checked with the ``standardwebhooks`` library (:meth:`Receiver.verified`).
"""

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

HOLD = "hold"


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def payload(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port, or ``port``) that records webhook requests."""

    def __init__(self, port: int = 0, answers=(), default: int = 200, tls=None):
        self.received: list[Received] = []
        self.answers = list(answers)
        self.default = default
        self.arrived = threading.Condition()
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with receiver.arrived:
                    answer = receiver.answers.pop(0) if receiver.answers else receiver.default
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.arrived.notify_all()
                if answer == HOLD:
                    receiver.released.wait(30)
                    answer = 200
                try:
                    self.send_response(answer)
                    self.send_header("Content-Type", "text/plain")
                    if 300 <= answer < 400:
                        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    text = b"x" * 5000 if answer >= 500 else b"ok"
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                except OSError:
                    pass  # the sender gave up (a timeout) or died

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:  # an ssl.SSLContext: serve https
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.server.handle_error = lambda request, address: None  # refused handshakes are expected
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/hooks/omikeys"

    def release(self) -> None:
        self.released.set()

    def wait_for(self, count: int, timeout: float = 60) -> list[Received]:
        """The requests once at least ``count`` have arrived; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} of {count} webhook requests arrived in {timeout} s")
                self.arrived.wait(left)
            return list(self.received)

    def verified(self, secret: str) -> list[dict]:
        """Every request's payload, each verified with standardwebhooks (raises if any is not signed by ``secret``)."""
        return [Webhook(secret).verify(r.body, r.headers) for r in self.received]

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
