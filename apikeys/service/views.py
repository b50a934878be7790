"""Service API views: parse the request, call the core, render the answer."""

import logging

from django.db.models import Count, Q
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from .. import lifecycle
from ..audit import Actor
from ..jsonapi.exceptions import Conflict
from ..jsonapi.schema import ErrorResponseSerializer, HTTPValidationErrorSerializer
from ..jsonapi.views import JSONAPIView
from ..lifecycle import Code
from ..models import ApiKey, User
from .authentication import ServiceTokenAuthentication
from .permissions import ServiceClientAllowed
from .serializers import (
    EraseUserRequestSerializer,
    ErasureSerializer,
    RevokedUserKeysSerializer,
    RevokeUserKeysRequestSerializer,
    ServiceApiKeySerializer,
    UserKeysSerializer,
    VerifyKeyRequestSerializer,
    VerifyKeyResponseSerializer,
)

logger = logging.getLogger(__name__)

TAGS = ["Service API"]
ERRORS = {
    401: OpenApiResponse(ErrorResponseSerializer, description="No service token, or not a valid one (named)."),
    403: OpenApiResponse(ErrorResponseSerializer, description="The service client is not allowed this action."),
    422: OpenApiResponse(HTTPValidationErrorSerializer, description="Validation Error"),
    429: OpenApiResponse(
        ErrorResponseSerializer, description="Too many failed service tokens from this address; see Retry-After."
    ),
    503: OpenApiResponse(ErrorResponseSerializer, description="The database is unavailable; retry after Retry-After."),
}
UNKNOWN_UID = "omikeys knows no user with this uid."
NOT_FOUND = OpenApiResponse(ErrorResponseSerializer, description=UNKNOWN_UID)
# The endpoints that take a body: one over DATA_UPLOAD_MAX_MEMORY_SIZE bytes is refused before it is read.
TOO_LARGE = {413: OpenApiResponse(ErrorResponseSerializer, description="The request body is too large.")}
# Firebase uids are 1 to 128 characters, as User.firebase_uid holds them.
MAX_UID_LENGTH = User._meta.get_field("firebase_uid").max_length

# What each verdict says, fit for the service to pass on to its client. A key that matched but does not work
# (REVOKED, EXPIRED, OWNER_INACTIVE, DISABLED) and one that matched nothing are told what GET /v1/dev/key tells them:
# the verification's rejection ("Invalid API Key", or that it expired), never whether the key exists, was
# revoked or belongs to a deactivated account; the code says that to the service alone.
DETAILS = {
    Code.VALID: "The key is valid.",
    Code.MALFORMED: (
        "Invalid API Key: not an Omi Developer API key (omi_dev_ followed by 36 letters and digits ending in "
        "a valid checksum, or by 32 hex characters)."
    ),
    Code.INSUFFICIENT_SCOPE: "Insufficient permissions.",
    Code.RATE_LIMITED: "Too many failed API key attempts from this address.",
}

VERIFY_DESCRIPTION = """The verdict on a key an end client presented to the calling service: the same
verification as `GET /v1/dev/key` (one code path), answered with **200 whenever a verdict was
reached**, so the service decides what to tell its client.

`code`: `VALID` (the only one with `valid: true`), `MALFORMED` (not shaped like a key: another
credential, a typo, empty), `NOT_FOUND`, `REVOKED`, `EXPIRED` (the key expired, or the presented
secret was replaced by a rotation whose grace period is over), `OWNER_INACTIVE` (the owner was
deactivated: by staff, `syncfirebaseusers`, or an erasure), `DISABLED` (the key is paused by its
owner or staff and may be enabled again; an expired key is `EXPIRED` even if disabled),
`INSUFFICIENT_SCOPE` (the key is valid but lacks one of `required_scopes`: listed in
`missing_scopes`), `RATE_LIMITED` (this `client_ip` has too many failed attempts; `retry_after` seconds).

`key_id`, `uid`, `scopes`, `expires_at`, `secret` and `secret_expires_at` are set whenever the
secret matched a key (VALID, INSUFFICIENT_SCOPE, REVOKED, EXPIRED, OWNER_INACTIVE, DISABLED), else null.
`secret` is `previous` for the secret a rotation replaced (accepted until `secret_expires_at`).

Failed attempts (every code but VALID and INSUFFICIENT_SCOPE) count against `client_ip`, the end
client's address, at the rate of failed keys on `GET /v1/dev/key`; the calling service's own
address is never throttled for them. A valid key stamps `last_used_at` as `GET /v1/dev/key` does;
every verdict on a key that matched counts in that key's usage, with `client_ip` and `user_agent`
(`GET /v1/dev/keys/{key_id}/usage`).
Needs the `verify_keys` permission."""


def moment(value) -> str | None:
    """A datetime as the API writes it (ISO 8601, UTC ``Z``), or None."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def verdict_body(verdict: lifecycle.KeyVerdict) -> dict:
    """The verify answer for a :class:`lifecycle.KeyVerdict`; key facts only when the secret matched a key."""
    verification = verdict.verification
    matched = verification.matched if verification is not None and verdict.code != Code.RATE_LIMITED else None
    body = {
        "valid": verdict.code == Code.VALID,
        "code": verdict.code,
        "detail": DETAILS.get(verdict.code) or verification.rejection,
        "key_id": None,
        "uid": None,
        "scopes": None,
        "expires_at": None,
        "secret": None,
        "secret_expires_at": None,
        "missing_scopes": list(verdict.missing_scopes),
        "retry_after": verdict.retry_after,
    }
    if verdict.code == Code.INSUFFICIENT_SCOPE:
        body["detail"] = f"Insufficient permissions. Required scope: {verdict.missing_scopes[0]}"
    if matched is not None:
        previous = verification.secret == "replaced"
        if previous:
            stops = matched.previous_key_expires_at
            if matched.expires_at is not None and (stops is None or matched.expires_at < stops):
                stops = matched.expires_at
        else:
            stops = matched.expires_at
        body.update(
            key_id=str(matched.pk),
            uid=matched.owner.firebase_uid,
            scopes=sorted(matched.scope_codes),
            expires_at=moment(matched.expires_at),
            secret="previous" if previous else "current",
            secret_expires_at=moment(stops),
        )
    return body


class ServiceAPIView(JSONAPIView):
    """The service endpoints' base: service tokens only, and one permission per view (``required_permission``)."""

    authentication_classes = [ServiceTokenAuthentication]
    permission_classes = [ServiceClientAllowed]
    required_permission: str = ""

    @staticmethod
    def local_user(uid: str) -> User:
        """The user with this Firebase uid, or 404.

        A uid no user can have (empty, longer than ``User.firebase_uid`` holds, or with a NUL
        character, which PostgreSQL cannot even compare) is 404 without a query.
        """
        if not 0 < len(uid) <= MAX_UID_LENGTH or "\x00" in uid:
            raise NotFound(UNKNOWN_UID)
        try:
            return User.objects.get(firebase_uid=uid)
        except User.DoesNotExist:
            raise NotFound(UNKNOWN_UID) from None


class VerifyKeyView(ServiceAPIView):
    """``POST /v1/service/keys/verify``: the verdict on a key a service's client presented."""

    required_permission = "can_verify_keys"

    @extend_schema(
        operation_id="serviceVerifyKey",
        summary="Verify a Key",
        description=VERIFY_DESCRIPTION,
        tags=TAGS,
        request=VerifyKeyRequestSerializer,
        responses={200: VerifyKeyResponseSerializer, **TOO_LARGE, **ERRORS},
    )
    def post(self, request):
        serializer = VerifyKeyRequestSerializer(data=self.json_object(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        verdict = lifecycle.judge_key(
            data["key"],
            client_address=data["client_ip"],
            required_scopes=data["required_scopes"],
            user_agent=data["user_agent"],
        )
        if verdict.code == Code.RATE_LIMITED:
            logger.info(
                "end client throttled by key verification: client_ip=%s user_agent=%r service=%s retry_after=%ss",
                data["client_ip"],
                data["user_agent"][:200],
                request.auth.name,
                verdict.retry_after,
            )
        return Response(verdict_body(verdict))


class UserKeysView(ServiceAPIView):
    """``GET /v1/service/users/{uid}/keys``: a user's keys, with their status."""

    required_permission = "can_read_user_keys"

    @extend_schema(
        operation_id="serviceListUserKeys",
        summary="List a User's Keys",
        description=(
            "Every key of the user with this Firebase uid, newest first, revoked ones included, each with its "
            "`status` (active, disabled, expired, revoked) and `disabled_at`; `active_key_count` (disabled keys "
            "included: they count toward the limit), `disabled_key_count` and `is_active` give a developer status at a "
            "glance. The secret is never included. 404 for a uid omikeys does not know (a user appears when they "
            "first sign in or get a key). Needs the `read_user_keys` permission."
        ),
        tags=TAGS,
        responses={200: UserKeysSerializer, 404: NOT_FOUND, **ERRORS},
    )
    def get(self, request, uid: str):
        user = self.local_user(uid)
        keys = ApiKey.objects.for_owner(user).with_scopes()
        now = timezone.now()
        live = Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        counts = keys.aggregate(
            active=Count("pk", filter=live), disabled=Count("pk", filter=live & Q(disabled_at__isnull=False))
        )
        return Response(
            {
                "uid": user.firebase_uid,
                "is_active": user.is_active,
                "active_key_count": counts["active"],
                "disabled_key_count": counts["disabled"],
                "keys": ServiceApiKeySerializer(keys, many=True).data,
            }
        )


class RevokeUserKeysView(ServiceAPIView):
    """``POST /v1/service/users/{uid}/keys/revoke``: revoke every key of a user."""

    required_permission = "can_act_on_users"

    @extend_schema(
        operation_id="serviceRevokeUserKeys",
        summary="Revoke All of a User's Keys",
        description=(
            "Revoke every key of the user at once (account deleted, banned): they stop working immediately. "
            "Each key gets its own audit event, with this service client as the actor and `reason` in its "
            "details; the reason is also shown to the key's owner in the email notice, so one that looks like it "
            "holds an API key or token is refused (422). Idempotent: keys already revoked are left as they are, "
            "and a repeat answers "
            "`revoked_count: 0`. The user stays active (new keys may be issued); to stop the user too, erase "
            "them. Needs the `act_on_users` permission."
        ),
        tags=TAGS,
        request=RevokeUserKeysRequestSerializer,
        responses={200: RevokedUserKeysSerializer, 404: NOT_FOUND, **TOO_LARGE, **ERRORS},
    )
    def post(self, request, uid: str):
        serializer = RevokeUserKeysRequestSerializer(data=self.json_object(request))
        serializer.is_valid(raise_exception=True)
        user = self.local_user(uid)
        revoked = lifecycle.revoke_user_keys(
            user, reason=serializer.validated_data["reason"], actor=Actor.service(request.auth, request)
        )
        ids = [str(api_key.pk) for api_key in revoked]
        return Response({"uid": user.firebase_uid, "revoked_count": len(ids), "revoked_key_ids": ids})


class EraseUserView(ServiceAPIView):
    """``POST /v1/service/users/{uid}/erase``: revoke a user's keys, deactivate them, erase their personal data."""

    required_permission = "can_act_on_users"

    @extend_schema(
        operation_id="serviceEraseUser",
        summary="Erase a User",
        description=(
            "Revoke all of the user's keys (audited, reason `user erased`), deactivate the user for good "
            "(`syncfirebaseusers` never reactivates an erased user, and signing in again stores no email), and "
            "erase the personal data omikeys keeps about them: the email address and names, and the IP addresses "
            "and user agents in every audit event of their keys and every event they made. The anonymous skeleton "
            "stays: the uid, the keys (prefix, name, dates, scopes) and the events (what, when, through which "
            "door). The answer says what was erased; erasing again is harmless and erases nothing more. The "
            "request takes no body (or `{}`). A staff account is refused with 409 and left as it is (staff "
            "deactivate staff in the admin; its keys can still be revoked). Needs the `act_on_users` permission."
        ),
        tags=TAGS,
        request=EraseUserRequestSerializer,
        responses={
            200: ErasureSerializer,
            404: NOT_FOUND,
            409: OpenApiResponse(ErrorResponseSerializer, description="The user is a staff account: not erased."),
            **TOO_LARGE,
            **ERRORS,
        },
    )
    def post(self, request, uid: str):
        EraseUserRequestSerializer(data=self.json_object(request)).is_valid(raise_exception=True)
        user = self.local_user(uid)
        try:
            report = lifecycle.erase_user(user, actor=Actor.service(request.auth, request))
        except lifecycle.StaffNotErasable as refused:
            raise Conflict(str(refused)) from None
        return Response(
            {
                "uid": report.uid,
                "revoked_key_ids": report.revoked_key_ids,
                "deactivated": report.deactivated,
                "email_erased": report.email_erased,
                "names_erased": report.names_erased,
                "events_scrubbed": report.events_scrubbed,
                "ip_addresses_erased": report.ip_addresses_erased,
                "user_agents_erased": report.user_agents_erased,
                "key_names_scrubbed": report.key_names_scrubbed,
                "admin_records_scrubbed": report.admin_records_scrubbed,
                "usage_records_erased": report.usage_records_erased,
            }
        )
