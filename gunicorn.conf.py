"""gunicorn settings for production: gthread workers behind nginx (deploy/nginx/), chosen by measurement.

    gunicorn -c gunicorn.conf.py omikeys_project.wsgi

Command-line flags override any value here (``--bind``, ``--workers``...), as does
``GUNICORN_CMD_ARGS``. docs/deployment.md explains each choice and how to size
workers; docs/performance.md has the measurements behind them.

* nginx in front reads each request whole (headers and body) before passing it on,
  so slow or idle clients hold an nginx connection, never a gunicorn thread; gunicorn
  listens on loopback only and trusts nginx's ``X-Forwarded-*`` headers.
* Every dependency call is bounded (``OMIKEYS_*_TIMEOUT``) and behind a circuit
  breaker, so a request does not wait long on a hung dependency. Measured with
  ``bench/faults.py`` (docs/performance.md), sync and gthread workers both keep key
  verification within 20% of its healthy rate while Redis or Firebase hangs; gthread
  is kept because a request waiting on a dependency then holds one thread rather than
  a whole process, and its workers keep nginx's upstream connections alive.
"""

import multiprocessing

# Prometheus metrics from every worker (PROMETHEUS_MULTIPROC_DIR, see docs/operations.md):
# a clean directory when the server starts, a dead worker's gauges dropped; and the key usage
# counts a worker holds written in the background and when it exits (docs/usage.md).
from apikeys.gunicorn_hooks import child_exit, on_starting, post_worker_init, worker_exit  # noqa: F401

# nginx on the same host forwards here (deploy/nginx/omikeys.conf's upstream).
bind = "127.0.0.1:8000"

# Processes use the cores; threads cover waits on the database, Redis and Firebase.
# Two processes per core plus one, four threads each: see docs/deployment.md, "Sizing".
worker_class = "gthread"
workers = multiprocessing.cpu_count() * 2 + 1
threads = 4

# A worker whose main loop is silent this long (the process is stuck, not one slow
# request) is killed and replaced; nginx answers its requests with 502 (JSON on /v1/).
timeout = 30
graceful_timeout = 30
# nginx keeps connections to gunicorn open (upstream keepalive); gunicorn must keep
# them longer than nginx reuses them, or nginx may send on a connection being closed.
keepalive = 75

# Only nginx on this host may tell gunicorn the client's scheme and address.
forwarded_allow_ips = "127.0.0.1,::1"

# nginx enforces the request size limits and answers in the API's shape (431 JSON on
# /v1/); gunicorn's own limits are raised so that its HTML errors never answer first.
# 0 means "unlimited" for the request line, but for a header field gunicorn reads 0 as
# its 8190-byte default, so the field limit is an explicit 64 KiB: more than nginx
# passes over HTTP/1.1 (8 KB lines) or HTTP/2.
limit_request_line = 0
limit_request_fields = 32768
limit_request_field_size = 65536

# One access line per request on stdout (the journal under systemd): client address as
# nginx saw it, method, path without the query string, protocol, status, bytes,
# duration in microseconds, and the request id (the X-Request-ID the response carries).
# Never the query string (%(r)s, %(q)s) or a request header such as the User-Agent
# (%(a)s): a client may put an API key there, and these lines bypass the application's
# redacting log formatters.
accesslog = "-"
access_log_format = '%({x-forwarded-for}i)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(D)sus %({x-request-id}o)s'
errorlog = "-"

# gunicorn's control socket (a Unix socket under the user's home) is not used; without it,
# several gunicorn servers under one user do not compete for the same socket path.
control_socket_disable = True
