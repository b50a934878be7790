"""The key lookup on the verification path: one SQL statement, built once per connection.

Every request with an API key runs this, so it avoids the ORM's per-query work
(building and compiling a queryset costs about ten times the indexed read itself)
while keeping the ORM's results: the statement is written from the models' metadata,
Django's own converters turn the row into values, and ``Model.from_db`` builds the
instances. A model change needs no change here.
"""

import weakref
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.models.expressions import Col

from .models import ApiKey, Scope, User


@dataclass(frozen=True)
class _Statement:
    sql: str
    compiler: object
    converters: dict
    key_fields: list[str]
    owner_fields: list[str]


AGGREGATES = {"postgresql": "STRING_AGG({}, ',')", "sqlite": "GROUP_CONCAT({}, ',')"}
# On PostgreSQL the statement is prepared once per database session: planning its join
# and subquery cost as much again as running it.
# The name changes with the statement's columns: a pooled session that prepared an older version's
# statement must not answer this version with the old columns.
PREPARED_NAME = "omikeys_key_lookup_v3"
_prepared_sessions: "weakref.WeakSet[object]" = weakref.WeakSet()


def _statement(alias: str) -> _Statement:
    # Kept on the connection object itself (one per thread): its converters belong to that
    # connection, and the statement goes when the connection does.
    connection = connections[alias]
    statement = getattr(connection, "_omikeys_key_lookup", None)
    if statement is None:
        statement = connection._omikeys_key_lookup = _build(connection, alias)
    return statement


def _build(connection, alias: str) -> _Statement:
    if connection.vendor not in AGGREGATES:
        raise ImproperlyConfigured(f"omikeys runs on PostgreSQL or SQLite, not {connection.vendor}.")
    q = connection.ops.quote_name
    key_meta, owner_meta, scope_meta = ApiKey._meta, User._meta, Scope._meta
    through = ApiKey.scopes.through._meta
    key_columns = [f"k.{q(f.column)}" for f in key_meta.concrete_fields]
    owner_columns = [f"u.{q(f.column)}" for f in owner_meta.concrete_fields]
    code = f"s.{q(scope_meta.get_field('code').column)}"
    aggregate = AGGREGATES[connection.vendor].format(code)
    through_key = q(through.get_field("apikey").column)
    through_scope = q(through.get_field("scope").column)
    sql = (
        f"SELECT {', '.join(key_columns)}, {', '.join(owner_columns)}, "
        f"(SELECT {aggregate} FROM {q(through.db_table)} t "
        f"INNER JOIN {q(scope_meta.db_table)} s ON s.{q(scope_meta.pk.column)} = t.{through_scope} "
        f"WHERE t.{through_key} = k.{q(key_meta.pk.column)}) "
        f"FROM {q(key_meta.db_table)} k "
        f"INNER JOIN {q(owner_meta.db_table)} u "
        f"ON u.{q(owner_meta.pk.column)} = k.{q(key_meta.get_field('owner').column)} "
        f"WHERE k.{q(key_meta.get_field('key_hash').column)} IN (%s, %s) "
        f"OR k.{q(key_meta.get_field('previous_key_hash').column)} IN (%s, %s)"
    )
    compiler = ApiKey.objects.none().query.get_compiler(alias)
    columns = [Col(key_meta.db_table, f) for f in key_meta.concrete_fields]
    columns += [Col(owner_meta.db_table, f) for f in owner_meta.concrete_fields]
    return _Statement(
        sql=sql,
        compiler=compiler,
        converters=compiler.get_converters(columns),
        key_fields=[f.attname for f in key_meta.concrete_fields],
        owner_fields=[f.attname for f in owner_meta.concrete_fields],
    )


def _numbered(sql: str) -> str:
    """The statement with its placeholders as PostgreSQL's $1 and $2, in the order (hashed, legacy_hashed) twice."""
    parts = sql.split("%s")
    numbers = ["$1", "$2", "$1", "$2"]
    return "".join(part + (numbers[i] if i < len(numbers) else "") for i, part in enumerate(parts))


def find_by_hash(hashed: str, legacy_hashed: str, alias: str = "default") -> ApiKey | None:
    """The key whose current or replaced secret has one of these stored hashes, with its owner and scopes.

    ``hashed`` and ``legacy_hashed`` are the two forms a presented key may be stored
    under (``crypto.candidate_hashes``); a 128-bit secret makes it impossible for them
    to name two different keys. Both hash columns are unique indexes, each searched for
    both values in the one statement. The key's scope codes are in ``scope_codes``, a
    frozenset. Nothing is decided here about validity.
    """
    statement = _statement(alias)
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and settings.OMIKEYS_PREPARE_KEY_LOOKUP:
            if connection.connection not in _prepared_sessions:
                # Once per connection: prepare, unless this session already has it.
                cursor.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", [PREPARED_NAME])
                if cursor.fetchone() is None:
                    cursor.execute(f"PREPARE {PREPARED_NAME}(varchar, varchar) AS {_numbered(statement.sql)}")
                _prepared_sessions.add(connection.connection)
            cursor.execute(f"EXECUTE {PREPARED_NAME}(%s, %s)", [hashed, legacy_hashed])
        else:
            cursor.execute(statement.sql, [hashed, legacy_hashed, hashed, legacy_hashed])
        row = cursor.fetchone()
    if row is None:
        return None
    if statement.converters:
        row = next(iter(statement.compiler.apply_converters([row], statement.converters)))
    split = len(statement.key_fields)
    end = split + len(statement.owner_fields)
    api_key = ApiKey.from_db(alias, statement.key_fields, row[:split])
    api_key.owner = User.from_db(alias, statement.owner_fields, row[split:end])
    api_key.scope_codes = frozenset(row[end].split(",")) if row[end] else frozenset()
    return api_key
