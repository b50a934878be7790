"""Real servers for the fault tests and the fault benchmark, each on free loopback ports of its own.

redis-server (Debian), a Firebase Auth Emulator, a PostgreSQL cluster, gunicorn with
the repository's ``gunicorn.conf.py``, and nginx with ``deploy/nginx/omikeys-proxy.conf``.
Each ``start_*`` returns a :class:`Server` that can be paused (SIGSTOP), resumed
(SIGCONT) and stopped. None of them touches the shared emulator on 9099.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "demo-omikeys"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, what: str, timeout: float = 60, server: "Server | None" = None) -> None:
    """Poll ``check()`` until it is true; fail with the server's log if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, requests.RequestException):
            pass
        if server is not None and server.process is not None and server.process.poll() is not None:
            raise AssertionError(f"{what} exited:\n{server.log_text()[-4000:]}")
        time.sleep(0.1)
    log = server.log_text()[-4000:] if server else ""
    raise AssertionError(f"{what} did not come up within {timeout} s\n{log}")


@dataclass
class Server:
    """A started server: its process (or a pid), its address, its log file."""

    name: str
    process: subprocess.Popen | None
    log_path: Path
    address: str = ""
    url: str = ""
    stop_command: list[str] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets open and answers nothing."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.stop_command:
            subprocess.run(self.stop_command, capture_output=True, timeout=60)
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.kill(self.pid, signal.SIGCONT)
            self.process.send_signal(sig)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass


def _popen(command: list[str], log_path: Path, **kwargs) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)


def start_redis(workdir: Path, port: int | None = None) -> Server:
    """Debian's redis-server on ``port`` (default: a free one), without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise AssertionError("redis-server is not installed: apt-get install redis-server (scripts/test does this).")
    port = port or free_port()
    log = workdir / f"redis-{port}.log"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = Server("redis", _popen([*command, "--dir", str(workdir)], log), log, url=f"redis://127.0.0.1:{port}/0")

    def ping() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    wait_for(ping, "redis-server", server=server)
    return server


def start_auth_emulator(workdir: Path, project: str = PROJECT) -> Server:
    """A Firebase Auth Emulator of its own (``project``, default demo-omikeys), on free ports.

    firebase.json fixes the ports, so a generated copy with free ones is used. The
    process started is the firebase CLI's ``node`` process, which runs the emulator:
    pausing it hangs the emulator. Its project is ``extra["project"]``. A start costs
    about 10 s of CPU (the emulator compiles its API's schemas).
    """
    auth, hub, logging_port = free_port(), free_port(), free_port()
    project_dir = workdir / f"emulator-{auth}"
    project_dir.mkdir()
    config = {
        "emulators": {
            "auth": {"host": "127.0.0.1", "port": auth},
            "hub": {"host": "127.0.0.1", "port": hub},
            "logging": {"host": "127.0.0.1", "port": logging_port},
            "ui": {"enabled": False},
            "singleProjectMode": True,
        }
    }
    (project_dir / "firebase.json").write_text(json.dumps(config))
    firebase_cli = ROOT / "node_modules" / ".bin" / "firebase"
    node = shutil.which("node")
    # Larger semi-spaces: about a fifth less CPU to start (as scripts/lib.sh's start_auth_emulator).
    command = [node, "--max-semi-space-size=64", str(firebase_cli.resolve()), "emulators:start", "--only", "auth"]
    command += ["--project", project]
    log = workdir / f"auth-emulator-{auth}.log"
    server = Server("auth emulator", _popen(command, log, cwd=project_dir), log, address=f"127.0.0.1:{auth}")
    server.extra["project"] = project
    server.url = f"http://{server.address}"
    wait_for(lambda: requests.get(f"{server.url}/", timeout=1).ok, "the Auth Emulator", timeout=90, server=server)
    return server


def emulator_token(emulator: Server) -> str:
    """A new user's ID token from ``emulator`` (signUp over its REST API)."""
    response = requests.post(
        f"{emulator.url}/identitytoolkit.googleapis.com/v1/accounts:signUp?key=any",
        json={"email": f"fault-{uuid.uuid4().hex[:12]}@example.com", "password": "pw-1234", "returnSecureToken": True},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["idToken"]


def start_postgres(workdir: Path) -> Server:
    """A throwaway PostgreSQL cluster on a free port (as the postgres user when run as root).

    ``stop_server()``/``start_server()`` in ``extra`` stop and start the same cluster.
    """
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not bins:
        raise AssertionError("PostgreSQL is not installed: apt-get install postgresql (scripts/test does this).")
    pgbin = bins[-1]
    port = free_port()
    # Not under workdir: the postgres user must be able to reach it.
    pgdata = Path(tempfile.mkdtemp(prefix="omikeys-fault-pg-"))
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(pgdata, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_user, pgbin / "initdb", "-D", pgdata, "-U", "postgres", "-A", "trust", "--no-sync"],
        check=True,
        capture_output=True,
    )
    log = pgdata / "server.log"
    options = f"-p {port} -k {pgdata} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"

    def pg_ctl(*args: str) -> None:
        subprocess.run([*as_user, pgbin / "pg_ctl", "-D", pgdata, "-l", log, *args], check=True, capture_output=True)

    pg_ctl("-w", "-o", options, "start")
    server = Server("postgres", None, log, url=f"postgres://postgres@127.0.0.1:{port}/postgres")
    server.extra["stop_server"] = lambda: pg_ctl("-w", "-m", "fast", "stop")
    server.extra["start_server"] = lambda: pg_ctl("-w", "-o", options, "start")
    server.stop_command = [*as_user, str(pgbin / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "stop"]
    server.extra["pgdata"] = pgdata
    return server


def migrate(database_url: str, workdir: Path) -> None:
    """Apply the migrations to a database of the fault tests' own."""
    env = {**server_env(database_url), "DJANGO_LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def server_env(database_url: str, **extra: str) -> dict:
    """The environment of an omikeys server process: production settings on loopback."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "OMIKEYS_", "CACHE_URL", "FIREBASE_"))}
    return {
        **keep,
        "DJANGO_ENV_FILE": "",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "fault-tests-secret-key-Nw5Bx9Qe3Tr7Yu1Io6Pa2Sd8Fg4Hj0Kl",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_LOG_LEVEL": "INFO",
        "FIREBASE_PROJECT_ID": PROJECT,
        "NO_GCE_CHECK": "true",
        "DATABASE_URL": database_url,
        **extra,
    }


def start_gunicorn(workdir: Path, env: dict, *args: str) -> Server:
    """gunicorn with the repository's gunicorn.conf.py on a free port; ``args`` are extra flags."""
    port = free_port()
    log = workdir / f"gunicorn-{port}.log"
    command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}"]
    server = Server("gunicorn", _popen([*command, *args, "omikeys_project.wsgi"], log, cwd=ROOT, env=env), log)
    server.address = f"127.0.0.1:{port}"
    server.url = f"http://{server.address}"
    wait_for(lambda: requests.get(f"{server.url}/healthz", timeout=2).ok, "gunicorn", server=server)
    return server


def worker_pids(gunicorn: Server) -> list[int]:
    """The pids of a gunicorn master's worker processes."""
    children = Path(f"/proc/{gunicorn.pid}/task/{gunicorn.pid}/children").read_text().split()
    return [int(pid) for pid in children]


NGINX_CONF = """\
daemon off;
{user_line}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include {log_conf};
    access_log {prefix}/access.log omikeys;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream omikeys {{
        server {upstream};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        include {proxy_conf};
    }}
}}
"""


def start_nginx(workdir: Path, upstream: str) -> Server:
    """Debian's nginx on a free port with deploy/nginx/omikeys-proxy.conf as it is, in front of ``upstream``."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise AssertionError("nginx is not installed: apt-get install nginx (scripts/test does this).")
    port = free_port()
    prefix = workdir / f"nginx-{port}"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    proxy_conf = ROOT / "deploy" / "nginx" / "omikeys-proxy.conf"
    log_conf = ROOT / "deploy" / "nginx" / "omikeys-log.conf"
    # Started as root, nginx's workers would run as nobody, who cannot write request bodies larger than its
    # memory buffer (GitHub's leak alerts) under this test's private temporary directory.
    user_line = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(
        NGINX_CONF.format(
            prefix=prefix, upstream=upstream, port=port, proxy_conf=proxy_conf, log_conf=log_conf, user_line=user_line
        )
    )
    log = prefix / "error.log"
    server = Server("nginx", _popen([binary, "-c", str(conf), "-p", str(prefix)], prefix / "stdout.log"), log)
    server.address = f"127.0.0.1:{port}"
    server.url = f"http://{server.address}"
    server.extra["access_log"] = prefix / "access.log"
    wait_for(lambda: requests.get(f"{server.url}/healthz", timeout=2).status_code < 500, "nginx", server=server)
    return server
