"""apikeys.bulk: rows inserted in bulk are the rows ``save()`` would write, column for column."""

import datetime
import uuid

import pytest
from django.db import connection

from apikeys import bulk
from apikeys.models import ApiKey, KeyEvent, User

MOMENT = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=5)))


def raw_rows(model, pks) -> list[tuple]:
    """The stored values of ``model``'s rows, as the database holds them, without their ids."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    pk_column = connection.ops.quote_name(model._meta.pk.column)
    with connection.cursor() as cursor:
        rows = []
        for pk in pks:
            cursor.execute(
                f"SELECT {columns} FROM {connection.ops.quote_name(model._meta.db_table)} WHERE {pk_column} = %s",
                [model._meta.pk.get_db_prep_value(pk, connection)],
            )
            rows.append(cursor.fetchone())
        return rows


def key(owner, **fields) -> ApiKey:
    return ApiKey(owner=owner, name="n", key_prefix="omi_dev_abcd...wxyz", key_hash=uuid.uuid4().hex * 2, **fields)


@pytest.mark.parametrize("last_used_at", [None, MOMENT, MOMENT.astimezone(datetime.UTC)])
def test_bulk_rows_equal_saved_rows(db, last_used_at):
    owner = User.objects.create(username="firebase:b", firebase_uid="b")
    saved = key(owner, created_at=MOMENT, last_used_at=last_used_at, omi_document_id="doc-1")
    saved.save()
    inserted = key(owner, id=uuid.uuid4(), created_at=MOMENT, last_used_at=last_used_at, omi_document_id="doc-2")
    bulk.insert(ApiKey, [inserted])
    (saved_row,), (inserted_row,) = raw_rows(ApiKey, [saved.pk]), raw_rows(ApiKey, [inserted.pk])
    differing = {
        f.name
        for f, a, b in zip(
            [f for f in ApiKey._meta.concrete_fields if not f.primary_key], saved_row, inserted_row, strict=True
        )
        if a != b
    }
    assert differing == {"key_hash", "omi_document_id"}
    stored = ApiKey.objects.get(pk=inserted.pk)
    assert stored.created_at == MOMENT and stored.last_used_at == last_used_at


def test_bulk_events_equal_saved_events(db):
    owner = User.objects.create(username="firebase:e", firebase_uid="e")
    api_key = key(owner)
    api_key.save()

    def event():
        return KeyEvent(
            api_key=api_key, action="created", at=MOMENT, actor_kind="user", actor=owner, via="api",
            ip_address="2001:db8::1", details={"scopes": ["a"], "n": 1},
        )  # fmt: skip

    saved = event()
    saved.save()
    bulk.insert(KeyEvent, [event()])
    inserted_pk = KeyEvent.objects.exclude(pk=saved.pk).get().pk
    assert raw_rows(KeyEvent, [saved.pk]) == raw_rows(KeyEvent, [inserted_pk])


def test_naive_datetimes_take_django_s_own_path(db, settings):
    owner = User.objects.create(username="firebase:n", firebase_uid="n")
    naive = MOMENT.replace(tzinfo=None)
    saved, inserted = key(owner, created_at=naive), key(owner, id=uuid.uuid4(), created_at=naive)
    with pytest.warns(RuntimeWarning):
        saved.save()
    with pytest.warns(RuntimeWarning):
        bulk.insert(ApiKey, [inserted])
    assert ApiKey.objects.get(pk=saved.pk).created_at == ApiKey.objects.get(pk=inserted.pk).created_at
