"""A real HTTP server standing in for GitHub's secret-scanning key list, and the signer of test alerts.

It serves ``{"public_keys": [{"key_identifier", "key", "is_current"}]}`` at ``/meta/public_keys/secret_scanning``
for ECDSA P-256 keys the tests generate (:class:`GitHubSigner`) with an ETag (and 304 to ``If-None-Match``),
counts the fetches and keeps their headers, and can be stopped to play an outage, told to fail (500), to hold
its answers to play a slow one, or to trickle its answer a byte at a time.
"""

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


class GitHubSigner:
    """An ECDSA P-256 key pair signing alerts as GitHub does: base64 of the DER signature, SHA-256, raw body."""

    def __init__(self):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.pem = (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        self.identifier = hashlib.sha256(self.pem.encode()).hexdigest()

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self.private_key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()

    def headers(self, body: bytes) -> dict:
        """The headers of a signed alert, as Django's test client takes them."""
        return {
            "HTTP_GITHUB_PUBLIC_KEY_IDENTIFIER": self.identifier,
            "HTTP_GITHUB_PUBLIC_KEY_SIGNATURE": self.sign(body),
        }


class GitHubKeysServer:
    """A ThreadingHTTPServer on 127.0.0.1 publishing the public keys of ``signers``."""

    PATH = "/meta/public_keys/secret_scanning"

    def __init__(self, *signers: GitHubSigner):
        self.signers = list(signers)
        self.fetches = 0
        self.requests: list[dict] = []  # the headers of each fetch
        self.hold = threading.Event()  # set: answers wait until released (a slow GitHub)
        self.released = threading.Event()
        self.failing = False  # True: answer 500 (GitHub in trouble)
        self.trickle_seconds = 0.0  # > 0: send the body one byte at a time, this long apart
        self.keys_override: list[dict] | None = None  # published instead of the signers' keys
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                server.fetches += 1
                server.requests.append(dict(self.headers.items()))
                if server.hold.is_set():
                    server.released.wait(30)
                keys = server.keys_override
                if keys is None:
                    keys = [{"key_identifier": s.identifier, "key": s.pem, "is_current": True} for s in server.signers]
                body = json.dumps({"public_keys": keys}).encode()
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                try:
                    if server.failing:
                        self.send_response(500)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    if self.path == server.PATH and self.headers.get("If-None-Match") == etag:
                        self.send_response(304)
                        self.send_header("ETag", etag)
                        self.end_headers()
                        return
                    self.send_response(200 if self.path == server.PATH else 404)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("ETag", etag)
                    self.end_headers()
                    if server.trickle_seconds:
                        for byte in body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            if server.released.wait(server.trickle_seconds):
                                return
                    else:
                        self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{self.PATH}"

    def stop(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
