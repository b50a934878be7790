"""Service clients' tokens: issuing, rotating and revoking them, and finding the client a token belongs to."""

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import crypto
from ..models import ServiceClient, validate_key_name
from .errors import LifecycleError
from .verification import stamp_last_used

logger = logging.getLogger("apikeys.lifecycle")


class ServiceClientRevoked(LifecycleError):
    """A revoked service client cannot change or get a new token."""


@dataclass(frozen=True)
class IssuedServiceClient:
    """A client and its new token: the plaintext exists here once, for the caller to show and forget."""

    client: ServiceClient
    plaintext: str

    def __repr__(self) -> str:  # keep the token out of tracebacks and debug output
        return f"IssuedServiceClient(client={self.client.name!r}, token_prefix={self.client.token_prefix!r})"


def clean_service_name(name: str) -> str:
    """The name stripped, checked by the key-name rules (1 to 100 visible characters, one line, no secret in it);
    ``ValidationError`` keyed "name" otherwise, or when another client has the name."""
    name = (name or "").strip()
    try:
        validate_key_name(name)
    except ValidationError as error:
        raise ValidationError({"name": error}) from None
    if ServiceClient.objects.filter(name=name).exists():
        raise ValidationError({"name": ValidationError("A service client with this name exists.", code="unique")})
    return name


def issue_service_client(name: str, *, permissions: Iterable[str] = ()) -> IssuedServiceClient:
    """Create a service client with a new token (``omi_svc_`` + 32 hex), returned once.

    ``permissions`` are flags of ``ServiceClient.PERMISSIONS`` ("can_verify_keys", ...); an
    unknown one is a ``ValueError`` (a programming error). Bad or taken names raise
    ``ValidationError`` keyed "name". Only the token's SHA-256 is stored.
    """
    permissions = set(permissions)
    if unknown := permissions - set(ServiceClient.PERMISSIONS):
        raise ValueError(f"Unknown service client permissions: {', '.join(sorted(unknown))}")
    name = clean_service_name(name)
    generated = crypto.generate_service_token()
    client = ServiceClient(
        name=name,
        token_prefix=generated.display_prefix,
        token_hash=generated.hashed,
        **{flag: flag in permissions for flag in ServiceClient.PERMISSIONS},
    )
    try:
        with transaction.atomic():
            client.save(force_insert=True)
    except IntegrityError:  # another client took the name meanwhile
        raise ValidationError(
            {"name": ValidationError("A service client with this name exists.", code="unique")}
        ) from None
    logger.info("service client issued id=%s name=%s", client.pk, client.name)
    return IssuedServiceClient(client=client, plaintext=generated.plaintext)


def rotate_service_client(client: ServiceClient) -> IssuedServiceClient:
    """Give ``client`` a new token, returned once; the old one stops at once. Revoked: :class:`ServiceClientRevoked`."""
    generated = crypto.generate_service_token()
    now = timezone.now()
    with transaction.atomic():
        updated = ServiceClient.objects.filter(pk=client.pk, revoked_at__isnull=True).update(
            token_hash=generated.hashed, token_prefix=generated.display_prefix, rotated_at=now
        )
    if not updated:
        raise ServiceClientRevoked(f"The service client {client.name!r} is revoked; its token cannot be rotated.")
    client.token_hash, client.token_prefix, client.rotated_at = generated.hashed, generated.display_prefix, now
    logger.info("service client rotated id=%s name=%s", client.pk, client.name)
    return IssuedServiceClient(client=client, plaintext=generated.plaintext)


def revoke_service_client(client: ServiceClient) -> bool:
    """Revoke ``client``: its token stops at once; the row stays for the audit. False if it already was."""
    now = timezone.now()
    revoked = ServiceClient.objects.filter(pk=client.pk, revoked_at__isnull=True).update(revoked_at=now)
    if revoked:
        client.revoked_at = now
        logger.info("service client revoked id=%s name=%s", client.pk, client.name)
        return True
    client.refresh_from_db(fields=["revoked_at"])
    return False


def find_service_client(token: str) -> ServiceClient | None:
    """The client whose token this is, if it is well formed, known and not revoked; else ``None``.

    One indexed read by the token's SHA-256, so its timing says nothing about the token.
    """
    if not crypto.is_well_formed_service_token(token):
        return None
    return ServiceClient.objects.usable().filter(token_hash=crypto.hash_service_token(token)).first()


def mark_service_client_used(client: ServiceClient) -> bool:
    """Stamp ``last_used_at`` as a key's is stamped (``verification.stamp_last_used``): at most once per
    ``OMIKEYS_LAST_USED_INTERVAL`` seconds, best-effort, never waiting long for SQLite's write lock.
    True when it wrote."""
    return stamp_last_used(client, what="service client")
