"""Helpers for tests that use API keys: owners, issued keys, and clients sending them."""

from rest_framework.test import APIClient

from apikeys import lifecycle
from apikeys.models import Scope, User


def make_owner(uid: str = "key-owner", email: str | None = None) -> User:
    return User.objects.for_firebase(uid, email or f"{uid}@example.com")


def issue(owner: User, name: str = "test key", scopes: list[str] | None = None, **kwargs) -> lifecycle.IssuedKey:
    chosen = None if scopes is None else list(Scope.objects.filter(code__in=scopes))
    return lifecycle.issue_key(owner=owner, name=name, scopes=chosen, **kwargs)


def key_client(plaintext: str, **extra) -> APIClient:
    client = APIClient(**extra)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client
