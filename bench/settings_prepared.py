"""bench.settings with PostgreSQL prepared statements: an experiment, not the benchmark's default.

    bench/run --databases postgres --settings bench.settings_prepared

Django's psycopg 3 backend binds parameters on the client and never prepares by
default, so PostgreSQL parses and plans every statement again. With server-side
binding and psycopg's ``prepare_threshold``, a statement run a few times on a
connection is prepared and its plan reused. This helps every endpoint that queries
(omikeys already prepares its key lookup itself, so mostly (c)); it changes nothing on
SQLite, whose driver already keeps a cache of prepared statements per connection.
"""

from bench.settings import *  # noqa: F403

if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    DATABASES["default"].setdefault("OPTIONS", {}).update(  # noqa: F405
        {"server_side_binding": True, "prepare_threshold": 5}
    )
