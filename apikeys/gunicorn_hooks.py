"""gunicorn server hooks: prometheus-client's multiprocess mode (a clean directory at start, dead workers
forgotten), and key usage still held by a worker written when it exits.

In ``gunicorn.conf.py``::

    from apikeys.gunicorn_hooks import child_exit, on_starting, post_worker_init, worker_exit  # noqa: F401

or, with no configuration file of its own, ``gunicorn -c python:apikeys.gunicorn_hooks ...``.
The metrics hooks do nothing when ``PROMETHEUS_MULTIPROC_DIR`` is unset. They run in gunicorn's
master process, which does not load Django, so they read prometheus-client's own
variable directly, as that library does. ``post_worker_init`` and ``worker_exit`` run in the worker,
which has loaded Django.
"""

import os
from pathlib import Path


def on_starting(server) -> None:
    """Create the metrics directory and delete the files an earlier run left in it.

    Left-over files would add a previous server's counts to this one's. Without the
    variable and with more than one worker, logs that ``/metrics`` will show one
    worker's values at a time.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if not directory:
        if server.cfg.workers > 1:
            server.log.warning(
                "PROMETHEUS_MULTIPROC_DIR is not set: with %d workers, /metrics shows one worker's values at a time",
                server.cfg.workers,
            )
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def child_exit(server, worker) -> None:
    """Forget the gauges of a worker that exited (its counters stay: they still count)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker) -> None:
    """Start the worker's key usage background writer (``lifecycle.usage.start_flusher``), once the application is
    loaded: requests only count in memory, this thread writes."""
    from django.apps import apps

    if apps.ready:
        from apikeys.lifecycle import usage

        usage.start_flusher()


def worker_exit(server, worker) -> None:
    """Write the key usage counts the exiting worker still holds (``lifecycle.flush_usage``).

    Runs in the worker after its last request (a graceful stop: SIGTERM, SIGHUP, max_requests), bounded to
    finish before gunicorn's ``graceful_timeout`` (``lifecycle.usage_exit_deadline``) kills the worker. Does nothing if
    the worker never loaded Django; a write that fails is logged, and those counts are lost.
    """
    from django.apps import apps

    if not apps.ready:
        return
    from django.db import connections

    from apikeys import lifecycle

    try:
        failed = lifecycle.flush_usage(deadline=lifecycle.usage_exit_deadline(server.cfg.graceful_timeout))
    except Exception:  # the worker is exiting: log, never raise into gunicorn
        server.log.exception("key usage not written at worker exit")
        return
    finally:
        connections.close_all()
    if failed:
        server.log.warning("key usage of %d keys could not be written at worker exit", failed)
