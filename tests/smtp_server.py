"""Real mail servers for the notice tests: aiosmtpd's SMTP server on a loopback port, and a listener that never answers.

aiosmtpd (PyPI) is a complete SMTP server in asyncio, run in a thread of its own by its
``Controller``; Django's SMTP backend talks to it over a real socket, as to any mail server.
"""

import email
import email.policy
import socket
import threading
import time
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


@dataclass
class Mail:
    """One message the server took: the envelope, and the parsed message with its text and HTML parts."""

    mail_from: str
    rcpt_tos: list
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        # Django folds a non-ASCII subject onto a line of its own: unfolded, it starts with a space.
        return str(self.message["Subject"]).strip()

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    @property
    def html(self) -> str:
        return self.message.get_body(("html",)).get_content()


class _Handler:
    def __init__(self, server: "SmtpServer"):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.server.refuse.get(address)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.server.lock:
            self.server.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 (a free port, or ``port``); ``refuse`` maps a recipient to the answer it gets
    (such as "550 5.1.1 No such user"). Stop it and start it again on the same port to model an outage."""

    def __init__(self, port: int | None = None, credentials: tuple[str, str] | None = None):
        self.port = port or _free_port()
        self.credentials = credentials  # (user, password): AUTH required, as a relay asks
        self.logins: list[str] = []
        self.mails: list[Mail] = []
        self.refuse: dict[str, str] = {}
        self.lock = threading.Lock()
        self.controller = None

    def start(self) -> "SmtpServer":
        auth = {}
        if self.credentials:
            auth = {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": False}
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, ready_timeout=10, **auth)
        self.controller.start()
        return self

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        login = _text(auth_data.login), _text(auth_data.password)
        if login == self.credentials:
            self.logins.append(login[0])
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def wait_for(self, count: int, timeout: float = 60) -> list[Mail]:
        """The mails once there are ``count`` of them; fails after ``timeout`` seconds (a hang, not a timing)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.mails) >= count:
                    return list(self.mails)
            time.sleep(0.1)
        raise AssertionError(f"{count} mail(s) expected within {timeout} s, got {len(self.mails)}")


class SilentServer:
    """A TCP listener that accepts connections and never sends a byte: a mail server that hangs
    (no greeting), as one whose process is stopped with SIGSTOP looks from outside."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(connection)  # held open, never answered

    def stop(self) -> None:
        self.sock.close()
        for connection in self.accepted:
            connection.close()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlowServer:
    """A mail server that answers every step of the conversation, each a little under ``delay`` seconds late:
    no single wait reaches a per-step timeout, and the whole mail still takes many times it."""

    def __init__(self, delay: float, *, quit_delay: float | None = None, greeting_drip: float | None = None):
        self.delay = delay
        self.quit_delay = delay if quit_delay is None else quit_delay  # the wait before "221 bye"
        # When set: a greeting that never ends, one "220-" line every greeting_drip seconds.
        self.greeting_drip = greeting_drip
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.completed = 0  # messages it answered "250" to after their data
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _say(self, connection, line: str, delay: float | None = None) -> None:
        time.sleep(self.delay if delay is None else delay)
        connection.sendall(line.encode() + b"\r\n")

    def _talk(self, connection):
        reader = connection.makefile("rb")
        try:
            while self.greeting_drip is not None and not self.stopped:
                self._say(connection, "220-still greeting", self.greeting_drip)
            self._say(connection, "220 slow.example ESMTP")
            in_data = False
            for raw in reader:
                line = raw.decode("ascii", "replace").rstrip("\r\n")
                if in_data:
                    if line == ".":
                        in_data = False
                        self._say(connection, "250 queued")
                        self.completed += 1
                    continue
                verb = line.split(" ", 1)[0].upper()
                if verb == "DATA":
                    in_data = True
                    self._say(connection, "354 go ahead")
                elif verb == "QUIT":
                    self._say(connection, "221 bye", self.quit_delay)
                    return
                else:
                    self._say(connection, "250 ok")
        except OSError:
            return
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()
