"""Helpers for driving the end-user pages through Django's test client: signing in, sending the forms, reading pages."""

import re
import uuid

from django.test import Client
from django.urls import reverse

from apikeys.models import User
from apikeys.web import accounts

from .. import firebase_emulator
from ..helpers import make_owner

KEY_RE = re.compile(r"omi_dev_(?:[0-9A-Za-z]{36}|[0-9a-f]{32})")


def firebase_user(uid=None, email=None) -> User:
    """The local user of a Firebase account: a made-up one unless ``uid`` is given."""
    return make_owner(uid or f"uid-{uuid.uuid4().hex[:10]}", email)


def sign_in(client, account=None) -> Client:
    """``client`` with a session for a real emulator account, as the sign-in page opens it."""
    account = account or firebase_emulator.sign_up()
    client.user = firebase_user(account.uid, account.email)
    client.account = account
    client.force_login(client.user)
    session = client.session
    session[accounts.TOKEN_ISSUED_AT_KEY] = firebase_emulator.decode_claims(account.id_token)["iat"]
    session.save()
    return client


def create_form_token(client) -> str:
    page = client.get(reverse("web:key-create"))
    return re.search(r'name="form_token" value="([^"]+)"', page.content.decode()).group(1)


def post_new_key(client, name="Zapier sync", scopes=("memories:read",), token=None, **extra):
    token = token or create_form_token(client)
    data = {"name": name, "scopes": list(scopes), "form_token": token}
    if "expires_in" in extra:
        data["expires_in"] = extra.pop("expires_in")
    return client.post(reverse("web:key-create"), data, **extra)


def rotate_form_prefix(client, key_id) -> str:
    """The display prefix the rotate page puts in its hidden field."""
    page = client.get(reverse("web:key-rotate", args=[key_id])).content.decode()
    return re.search(r'name="expected_prefix" value="([^"]+)"', page).group(1)


def post_rotate(client, key_id, grace_seconds=0, prefix=None, **extra):
    prefix = prefix or rotate_form_prefix(client, key_id)
    data = {"grace_seconds": grace_seconds, "expected_prefix": prefix}
    return client.post(reverse("web:key-rotate", args=[key_id]), data, **extra)


def text(response) -> str:
    """A page's visible words, without tags, spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())).replace(" ,", ",")


def radios(page: str, name: str) -> dict[str, bool]:
    """The radio buttons called ``name`` on a page: value -> checked."""
    found = re.findall(rf'<input type="radio" name="{name}" value="([^"]+)"[^>]*>', page)
    tags = re.findall(rf'<input type="radio" name="{name}" value="[^"]+"[^>]*>', page)
    return {value: " checked" in tag for value, tag in zip(found, tags, strict=True)}


def controls(page: str, name: str) -> list[str]:
    """The ``<input>`` tags of a page whose ``name`` attribute is ``name``."""
    return re.findall(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', page)


def described_by(tag: str) -> list[str]:
    """The ids an input tag's ``aria-describedby`` names (none when it has no such attribute)."""
    found = re.search(r'aria-describedby="([^"]*)"', tag)
    return found.group(1).split() if found else []
