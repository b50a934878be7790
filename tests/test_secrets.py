"""The plaintext key is returned once and is never stored or logged; keys are unique under load."""

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from apikeys import crypto
from apikeys.models import ApiKey

URL = "/v1/dev/keys"


def every_stored_value():
    """Every value of every row of every table, as text."""
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                yield from (str(value) for value in row)


@pytest.mark.django_db
def test_the_plaintext_key_is_not_stored_anywhere(user_client):
    key = user_client.post(URL, data=json.dumps({"name": "n"}), content_type="application/json").json()["key"]
    secret = key[len(crypto.KEY_PREFIX) :]

    values = list(every_stored_value())

    assert crypto.hash_key(key) in values  # the scan does see the keys table
    assert not [value for value in values if secret in value]


@pytest.mark.django_db
def test_the_plaintext_key_is_not_logged(user_client, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")
    connection.force_debug_cursor = True  # log every SQL statement and its parameters too
    try:
        response = user_client.post(URL, data=json.dumps({"name": "n"}), content_type="application/json")
        user_client.get(URL)
    finally:
        connection.force_debug_cursor = False
    key = response.json()["key"]

    assert "api key issued" in caplog.text  # the log is captured
    assert "INSERT" in caplog.text  # including the SQL
    assert key[len(crypto.KEY_PREFIX) :] not in caplog.text


def test_the_key_is_hidden_from_reprs():
    generated = crypto.generate_key()
    assert generated.plaintext not in repr(generated)


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_creates_give_twenty_distinct_keys(emulator_user):
    def create(index):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {emulator_user.id_token}")
        try:
            response = client.post(URL, data=json.dumps({"name": f"k{index}"}), content_type="application/json")
            return response.status_code, response.json()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(create, range(20)))

    assert [status for status, _ in results] == [200] * 20
    keys = {body["key"] for _, body in results}
    assert len(keys) == 20
    assert len({body["id"] for _, body in results}) == 20
    assert ApiKey.objects.count() == 20
    assert set(ApiKey.objects.values_list("key_hash", flat=True)) == {crypto.hash_key(key) for key in keys}
    assert ApiKey.objects.values("owner").distinct().count() == 1
