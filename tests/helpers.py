"""Helpers shared across the tests: key owners, issued keys and the clients sending them, moments, ports, URLs."""

import datetime
import socket
from urllib.parse import quote

from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from apikeys import lifecycle
from apikeys.models import ApiKey, Scope, User

# The moment the ``clock`` fixture (conftest.py) stops time at.
NOW = datetime.datetime(2027, 6, 1, 12, 0, tzinfo=datetime.UTC)


def make_owner(uid: str = "key-owner", email: str | None = None) -> User:
    return User.objects.for_firebase(uid, email or f"{uid}@example.com")


def scopes(*codes: str) -> list[Scope]:
    """The Scope rows for these codes; a code that does not exist fails the test (Scope.objects.resolve)."""
    return Scope.objects.resolve(codes)


def issue(owner: User, name: str = "test key", scopes: list[str] | None = None, **kwargs) -> lifecycle.IssuedKey:
    chosen = None if scopes is None else Scope.objects.resolve(scopes)
    return lifecycle.issue_key(owner=owner, name=name, scopes=chosen, **kwargs)


def key_client(plaintext: str, **extra) -> APIClient:
    client = APIClient(**extra)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def expire(api_key: ApiKey) -> None:
    """Make a key's expiry pass, as time would."""
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - datetime.timedelta(minutes=1))


def in_days(days: int) -> datetime.datetime:
    """The moment ``days`` from now, to the whole second, as the admin's date and time fields send it back."""
    return (timezone.now() + datetime.timedelta(days=days)).replace(microsecond=0)


def free_port() -> int:
    """A local TCP port nothing listens on, so connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of the test database this process uses, for another process to share."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def service(*permissions: str, name: str | None = None, **extra) -> APIClient:
    """An API client sending a new service client's token; ``permissions`` without "can_" ("verify_keys", ...).

    The ServiceClient is ``client.service_client``, its token ``client.token``.
    """
    import uuid

    issued = lifecycle.issue_service_client(
        name or f"service-{uuid.uuid4().hex[:8]}", permissions=[f"can_{permission}" for permission in permissions]
    )
    client = APIClient(**extra)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    client.service_client, client.token = issued.client, issued.plaintext
    return client
