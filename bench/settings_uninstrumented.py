"""The bench settings without the observability code: the reference bench/observability measures against.

The request id middleware is left out and the metrics recorders of
``apikeys.metrics`` are replaced by functions that do nothing, so GET /v1/dev/key
runs exactly as before metrics and request logging existed.
"""

import apikeys.metrics as _metrics
from bench.settings import *  # noqa: F403

MIDDLEWARE = [name for name in MIDDLEWARE if name != "apikeys.request_logging.RequestLogMiddleware"]  # noqa: F405


def _nothing(*args, **kwargs) -> None:
    return None


for _name in (
    "record_verification",
    "record_scope_refusal",
    "record_key_events",
    "record_throttle_refusal",
    "record_dependency_error",
    "set_breaker_state",
):
    if not hasattr(_metrics, _name):  # a recorder renamed in apikeys.metrics must be renamed here too
        raise ImportError(f"apikeys.metrics has no {_name}: the reference would keep recording")
    setattr(_metrics, _name, _nothing)
