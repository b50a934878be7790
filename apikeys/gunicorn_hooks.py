"""gunicorn server hooks for prometheus-client's multiprocess mode: a clean directory at start, dead workers forgotten.

In ``gunicorn.conf.py``::

    from apikeys.gunicorn_hooks import child_exit, on_starting  # noqa: F401

or, with no configuration file of its own, ``gunicorn -c python:apikeys.gunicorn_hooks ...``.
Both hooks do nothing when ``PROMETHEUS_MULTIPROC_DIR`` is unset. They run in gunicorn's
master process, which does not load Django, so they read prometheus-client's own
variable directly, as that library does.
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
