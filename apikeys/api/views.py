"""Key API views: parse the request, call the lifecycle, render the contract's shapes."""

import re
import uuid

from django.utils.http import http_date
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed, NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from .. import lifecycle, limits
from ..audit import Actor
from ..jsonapi.exceptions import Conflict, PreconditionFailed, RequestValidationError, TooManyRequests
from ..jsonapi.schema import ErrorResponseSerializer, HTTPValidationErrorSerializer
from ..jsonapi.views import JSONAPIView
from ..models import ApiKey, KeyEvent
from .authentication import ApiKeyAuthentication
from .serializers import (
    CallingApiKeySerializer,
    DevApiKeyChangeSerializer,
    DevApiKeyCreatedSerializer,
    DevApiKeyCreateSerializer,
    DevApiKeyPauseSerializer,
    DevApiKeyRevokeSerializer,
    DevApiKeyRotatedSerializer,
    DevApiKeyRotateSerializer,
    DevApiKeySerializer,
    KeyUsageSerializer,
    calling_key_body,
    key_usage_body,
    presented_secret_expires_at,
)

TAGS = ["API Keys"]
ERROR_401 = OpenApiResponse(ErrorResponseSerializer, description="Missing or invalid authentication credentials.")
ERROR_409 = OpenApiResponse(
    ErrorResponseSerializer,
    description="The active-key limit is reached, or the key has expired and cannot be rotated.",
)
ERROR_404 = OpenApiResponse(ErrorResponseSerializer, description="No such key for this user.")
ERROR_413 = OpenApiResponse(ErrorResponseSerializer, description="The request body is too large.")
ERROR_422 = OpenApiResponse(HTTPValidationErrorSerializer, description="Validation Error")
ERROR_429 = OpenApiResponse(ErrorResponseSerializer, description="Too many requests; retry after Retry-After seconds.")
ERROR_503 = OpenApiResponse(
    ErrorResponseSerializer, description="Firebase could not be reached to check the token; retry after Retry-After."
)
CREATE_DESCRIPTION = """Create a new Developer API key with optional scopes.

- **name**: Descriptive name for the key (1 to 100 characters after trimming surrounding
  whitespace; must not contain an API key)
- **scopes**: Optional list of scopes. If not provided, defaults to read-only access
  (`conversations:read`, `memories:read`, `action_items:read`, `goals:read`).
  Available scopes: `conversations:read`, `conversations:write`, `memories:read`,
  `memories:write`, `action_items:read`, `action_items:write`, `goals:read`, `goals:write`.
- **expires_at**: Optional moment the key stops working, at most a year ahead. Default: never.

The response's `key` is the only time the secret is shown: store it now.
A user can hold a limited number of active keys (409 beyond it), and creations are
throttled per user (429 with `Retry-After`).
"""
CHANGE_DESCRIPTION = """Change one of the caller's keys in place: its secret stays, so nothing needs redeploying.

Send any of `name`, `scopes` (replacing the key's scopes; at least one) and `expires_at`
(`null`: never expires), under the create request's rules and with its 422 shapes: every
field's problems are reported together, and nothing changes unless every field is valid.
A field left out stays as it is; a body with none of the three is 422, as is an unknown field.

An expired key given a later expiry works again, so it needs room under the active-key
limit (409 otherwise). A revoked key cannot change (409); unknown ids and other users' keys
are 404. A scope change applies to the key's next request. Each change is audited and
reported to webhooks as `key.updated`. The response is the key as the list shows it.
"""


def throttle_issuing(user) -> None:
    """Count one key issued by ``user``; over the rate, 429 with ``Retry-After``."""
    refusal = limits.count_key_issued(user)
    if refusal:
        raise TooManyRequests(refusal.wait, refusal.message)


def own_key(request, key_id: str, *, revoked_too: bool = False) -> ApiKey:
    """One of the caller's keys (not revoked, unless ``revoked_too``), or 404."""
    keys = ApiKey.objects.for_owner(request.user)
    try:
        return (keys if revoked_too else keys.unrevoked()).get(pk=uuid.UUID(key_id))
    except (ValueError, ApiKey.DoesNotExist):
        raise NotFound("No API key with this id.") from None


def if_match_tags(request) -> list[str] | None:
    """The entity tags of the request's ``If-Match`` header (RFC 9110, section 13.1.1), or None without one.

    A key's entity tag is its display prefix: ``If-Match: "omi_dev_abcd...wxyz"`` (the quotes
    may be left out). ``*`` matches any secret. Weak tags (``W/"..."``) never match, as
    If-Match compares strongly; they are dropped.
    """
    header = request.headers.get("If-Match")
    if header is None:
        return None
    tags = []
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            continue
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if tag:
            tags.append(tag)
    return tags


def secret_changed(api_key: ApiKey, why: str) -> str:
    """The 409/412 message of a rotation refused because the key's secret is no longer the one expected."""
    return (
        f"Not rotated: {why}. The key's secret is now {api_key.key_prefix}; nothing was changed. "
        f'To replace that secret, rotate again with If-Match: "{api_key.key_prefix}".'
    )


IF_MATCH = OpenApiParameter(
    "If-Match",
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Rotate only if the key's secret is still this one: its display prefix (`key_prefix`, as the list "
        'and the create and rotate responses give it), quoted as an entity tag (`"omi_dev_abcd...wxyz"`) '
        "or not; `*` for any. If the secret has changed, 412 and nothing changes: a retry of a rotation "
        "that already happened cannot replace the secret it returned."
    ),
)


def changeable_key(request, key_id: str) -> ApiKey:
    """One of the caller's keys that may still change: 404 for an unknown id or another user's key (as
    DELETE answers), 409 for a revoked one (revocation is final)."""
    api_key = own_key(request, key_id, revoked_too=True)
    if api_key.is_revoked:
        raise Conflict(REVOKED_CANNOT_CHANGE)
    return api_key


REVOKED_CANNOT_CHANGE = "This key has been revoked; it cannot change. Create a new key instead."


def shown_key(api_key: ApiKey) -> Response:
    """200 with ``api_key`` as the list shows it (never a secret), read again with its scopes."""
    return Response(DevApiKeySerializer(ApiKey.objects.with_scopes().get(pk=api_key.pk)).data)


def api_actor(request) -> Actor:
    """The caller as the audit records them: the key's owner, through the JSON API."""
    return Actor.from_request(request, via=KeyEvent.Via.API)


class KeyAPIView(JSONAPIView):
    """The key endpoints' base: Firebase authentication (the default), and ``JSONAPIView``'s answers
    (no OPTIONS, 405 before credentials, ``Cache-Control: no-store``, one JSON-object check)."""


class KeyListCreateView(KeyAPIView):
    """``/v1/dev/keys``: list the caller's keys (GET), create one (POST)."""

    @extend_schema(
        operation_id="listApiKeys",
        summary="List Keys",
        description=(
            "The caller's keys that are not revoked, newest first: active ones, disabled ones "
            "(`status: disabled`, with `disabled_at`), and expired ones (`status: expired`) until they are "
            "revoked. The secret is never included."
        ),
        tags=TAGS,
        responses={200: DevApiKeySerializer(many=True), 401: ERROR_401, 503: ERROR_503},
    )
    def get(self, request):
        keys = ApiKey.objects.unrevoked().for_owner(request.user).with_scopes()
        return Response(DevApiKeySerializer(keys, many=True).data)

    @extend_schema(
        operation_id="createApiKey",
        summary="Create Key",
        description=CREATE_DESCRIPTION,
        tags=TAGS,
        request=DevApiKeyCreateSerializer,
        responses={
            200: OpenApiResponse(DevApiKeyCreatedSerializer, description="Successful Response"),
            401: ERROR_401,
            409: ERROR_409,
            413: OpenApiResponse(ErrorResponseSerializer, description="The request body is too large."),
            422: OpenApiResponse(HTTPValidationErrorSerializer, description="Validation Error"),
            429: ERROR_429,
            503: ERROR_503,
        },
    )
    def post(self, request):
        serializer = DevApiKeyCreateSerializer(data=self.json_object(request))
        serializer.is_valid(raise_exception=True)
        throttle_issuing(request.user)
        # The verified ID token already established that the Firebase account is not disabled.
        # A ValidationError (an expiry that has passed since it was checked) becomes a 422 in errors.
        try:
            issued = lifecycle.issue_key(owner=request.user, actor=api_actor(request), **serializer.validated_data)
        except lifecycle.TooManyKeys as exc:
            raise Conflict(str(exc)) from None
        except lifecycle.OwnerNotEligible as exc:  # deactivated while this request ran
            raise AuthenticationFailed(str(exc)) from None
        body = DevApiKeyCreatedSerializer(issued.api_key, context={"plaintext": issued.plaintext}).data
        return Response(body, status=status.HTTP_200_OK)


class KeyDetailView(KeyAPIView):
    """``/v1/dev/keys/<id>``: change one of the caller's keys in place (PATCH), revoke it (DELETE)."""

    @extend_schema(
        operation_id="updateApiKey",
        summary="Update Key",
        description=CHANGE_DESCRIPTION,
        tags=TAGS,
        request=DevApiKeyChangeSerializer,
        responses={
            200: OpenApiResponse(DevApiKeySerializer, description="The key as changed (no secret)."),
            401: ERROR_401,
            404: ERROR_404,
            409: OpenApiResponse(
                ErrorResponseSerializer,
                description=(
                    "The key is revoked, or it has expired and a later expiry would exceed the active-key limit; "
                    "nothing was changed."
                ),
            ),
            413: ERROR_413,
            422: ERROR_422,
            503: ERROR_503,
        },
    )
    def patch(self, request, key_id: str):
        data = self.json_object(request)
        api_key = changeable_key(request, key_id)
        serializer = DevApiKeyChangeSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        # Everything is checked before anything is written, and written in one transaction: all or nothing.
        # A ValidationError (an expiry that has passed since it was checked) becomes a 422 in errors.
        try:
            lifecycle.change_key(api_key, actor=api_actor(request), **serializer.validated_data)
        except lifecycle.KeyRevoked:  # revoked while this request ran
            raise Conflict(REVOKED_CANNOT_CHANGE) from None
        except lifecycle.TooManyKeys as exc:
            raise Conflict(no_room_to_extend(exc.limit)) from None
        return shown_key(api_key)

    @extend_schema(
        operation_id="revokeApiKey",
        summary="Revoke Key",
        description=(
            "Revoke one of the caller's keys; it stops working at once. Revoking an already "
            "revoked key succeeds again. Unknown ids and other users' keys are 404. "
            "The request takes no body; a body that is not empty or `{}` is 422 "
            "(`extra_forbidden` for each field, `model_attributes_type` for a non-object)."
        ),
        tags=TAGS,
        responses={
            204: OpenApiResponse(description="Revoked."),
            401: ERROR_401,
            404: OpenApiResponse(ErrorResponseSerializer, description="No such key for this user."),
            503: ERROR_503,
        },
    )
    def delete(self, request, key_id: str):
        # A field sent here would be ignored, and a client might think it did something.
        DevApiKeyRevokeSerializer(data=self.json_object(request)).is_valid(raise_exception=True)
        lifecycle.revoke_key(own_key(request, key_id, revoked_too=True), actor=api_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


USAGE_DESCRIPTION = """How one of the caller's keys has been used: requests per day (or hour, with
`granularity=hour`) over the last `days` days (1 to 90, default 30; UTC days, the current one last), split
by outcome (`accepted`; `insufficient_scope`; refused because `expired`, `disabled`, `revoked` or
`owner_inactive`), their totals, the most recent request (`last_use`: when, its outcome, the client's
address and User-Agent) and the addresses the key was used from in the last 30 days (the address
retention window), with first and last seen and their number of requests.

Counts are written by each server process's background writer at most once per stamping interval per key
(`OMIKEYS_LAST_USED_INTERVAL`, a minute by default), so requests of about the last interval plus the writer's
period (70 seconds by default) may be missing, longer while the database cannot be written. Revoked keys
have their usage too. Unknown ids and other users' keys are 404; `days` or `granularity` out of range is 422
(`loc` `["query", "days"]`)."""


def _days_parameter(value: str | None) -> int:
    if value is None:
        return 30
    text = value.strip()
    # Only ASCII digits (and a sign): int() would also take "1_0" and other scripts' digits.
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise RequestValidationError.single(
            ["query", "days"], "Input should be a valid integer, unable to parse string as an integer", "int_parsing"
        )
    days = int(text) if len(text) <= 12 else (-1 if text.startswith("-") else lifecycle.usage.MAX_DAYS + 1)
    if days < 1:
        raise RequestValidationError.single(
            ["query", "days"], "Input should be greater than or equal to 1", "greater_than_equal"
        )
    if days > lifecycle.usage.MAX_DAYS:
        raise RequestValidationError.single(
            ["query", "days"], f"Input should be less than or equal to {lifecycle.usage.MAX_DAYS}", "less_than_equal"
        )
    return days


class KeyUsageView(KeyAPIView):
    """``GET /v1/dev/keys/<id>/usage``: how one of the caller's keys has been used."""

    @extend_schema(
        operation_id="getApiKeyUsage",
        summary="Get Key Usage",
        description=USAGE_DESCRIPTION,
        tags=TAGS,
        parameters=[
            OpenApiParameter("days", int, OpenApiParameter.QUERY, description="1 to 90; default 30."),
            OpenApiParameter(
                "granularity", str, OpenApiParameter.QUERY, enum=["day", "hour"], description="Default day."
            ),
        ],
        responses={200: KeyUsageSerializer, 401: ERROR_401, 404: ERROR_404, 422: ERROR_422, 503: ERROR_503},
    )
    def get(self, request, key_id: str):
        days = _days_parameter(request.query_params.get("days"))
        granularity = request.query_params.get("granularity", "day")
        if granularity not in lifecycle.usage.GRANULARITIES:
            raise RequestValidationError.single(["query", "granularity"], "Input should be 'day' or 'hour'", "enum")
        api_key = own_key(request, key_id, revoked_too=True)
        usage = lifecycle.key_usage(api_key, days=days, granularity=granularity)
        return Response(key_usage_body(api_key, usage))


def no_room_to_extend(limit: int) -> str:
    """The 409 message of an expired key given a later expiry while the owner is at the active-key limit."""
    keys = "key" if limit == 1 else "keys"
    return (
        f"Not changed: this key has expired, and a later expiry would make it active again, but you already "
        f"have {limit} active API {keys}, the most allowed. Revoke a key you no longer use first."
    )


class KeyPauseView(KeyAPIView):
    """``/v1/dev/keys/<id>/disable`` and ``/enable``: pause one of the caller's keys, or resume it (POST).

    ``pause`` is :func:`lifecycle.disable_key` or :func:`lifecycle.enable_key`; both are idempotent.
    """

    pause = None  # staticmethod(lifecycle.disable_key or enable_key)

    def post(self, request, key_id: str):
        DevApiKeyPauseSerializer(data=self.json_object(request)).is_valid(raise_exception=True)
        api_key = changeable_key(request, key_id)
        try:
            self.pause(api_key, actor=api_actor(request))
        except lifecycle.KeyRevoked:  # revoked while this request ran
            raise Conflict(REVOKED_CANNOT_CHANGE) from None
        except lifecycle.DisabledByStaff as held:  # a staff hold: only staff, commands and services enable it
            raise Conflict(str(held)) from None
        return shown_key(api_key)


PAUSE_RESPONSES = {
    200: OpenApiResponse(DevApiKeySerializer, description="The key (no secret), with its status and disabled_at."),
    401: ERROR_401,
    404: ERROR_404,
    409: OpenApiResponse(
        ErrorResponseSerializer,
        description="The key is revoked, or (enable) it was disabled by Omi staff and only they can enable it; "
        "nothing was changed.",
    ),
    413: ERROR_413,
    422: OpenApiResponse(
        HTTPValidationErrorSerializer, description="A body other than none or `{}` (the request takes no fields)."
    ),
    503: ERROR_503,
}


class KeyDisableView(KeyPauseView):
    """``POST /v1/dev/keys/<id>/disable``: pause one of the caller's keys."""

    pause = staticmethod(lifecycle.disable_key)

    @extend_schema(
        operation_id="disableApiKey",
        summary="Disable Key",
        description=(
            "Pause one of the caller's keys without losing its secret: it stops working at once (401 "
            '`{"detail": "Invalid API Key: this key is disabled."}`) until enabled again, and keeps its name, '
            "scopes, expiry and its place under the active-key limit. The safe first move while checking "
            "whether a key leaked. Disabling a disabled key changes nothing and answers 200 again. A revoked "
            "key is 409; unknown ids and other users' keys are 404. The request takes no body."
        ),
        tags=TAGS,
        request=None,
        responses=PAUSE_RESPONSES,
    )
    def post(self, request, key_id: str):
        return super().post(request, key_id)


class KeyEnableView(KeyPauseView):
    """``POST /v1/dev/keys/<id>/enable``: resume one of the caller's paused keys."""

    pause = staticmethod(lifecycle.enable_key)

    @extend_schema(
        operation_id="enableApiKey",
        summary="Enable Key",
        description=(
            "Resume a disabled key: its secret works again at once (unless the key has expired meanwhile). "
            "Enabling a key that is not disabled changes nothing and answers 200 again. A revoked key is 409; "
            "so is a key disabled by Omi staff (in the admin, by a command or a service) rather than by its "
            'owner: `{"detail": "This key was disabled by Omi staff; only they can enable it. Contact support."}` '
            "(its owner may still rotate, edit or revoke it). "
            "Unknown ids and other users' keys are 404. The request takes no body."
        ),
        tags=TAGS,
        request=None,
        responses=PAUSE_RESPONSES,
    )
    def post(self, request, key_id: str):
        return super().post(request, key_id)


class KeyRotateView(KeyAPIView):
    """``/v1/dev/keys/<id>/rotate``: give one of the caller's keys a new secret (POST)."""

    def initial(self, request, *args, **kwargs):
        # The secret the key had when this request arrived, read from the database before the
        # credentials are checked (which may take a while): the secret this request replaces.
        # A rotation that another request commits meanwhile changes it, and this one then
        # refuses rather than kill the secret the other handed out. Database state, not clocks:
        # a rotated_at in the future (imported data, another host's clock) changes nothing.
        # Nothing read here is shown to anyone before the caller is known to own the key.
        self.prefix_on_arrival = None
        try:
            key_id = uuid.UUID(str(kwargs.get("key_id")))
        except ValueError:
            pass
        else:
            self.prefix_on_arrival = ApiKey.objects.filter(pk=key_id).values_list("key_prefix", flat=True).first()
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="rotateApiKey",
        summary="Rotate Key",
        description=(
            "Give one of the caller's keys a new secret, returned in the create response's shape: "
            "same id, name, scopes and expiry. The old secret stops at once, or keeps working for "
            "`grace_seconds` (at most 7 days) while clients move to the new one. Rotating again "
            "during a grace period stops the older secret at once. The body may be omitted.\n\n"
            "Two rotations of one key at the same moment never both succeed: a rotation does not replace "
            "a secret another rotation handed out after it arrived, so the later one answers 409 and "
            "changes nothing, and every 200 hands out a secret that works, with the grace it asked for. "
            "With `If-Match` naming the secret to replace, a rotation (or its retry) whose secret has "
            "changed since answers 412."
        ),
        tags=TAGS,
        parameters=[IF_MATCH],
        request=DevApiKeyRotateSerializer,
        responses={
            200: OpenApiResponse(DevApiKeyRotatedSerializer, description="The new secret, shown this once."),
            401: ERROR_401,
            404: OpenApiResponse(ErrorResponseSerializer, description="No such key for this user, or revoked."),
            409: OpenApiResponse(
                ErrorResponseSerializer,
                description=(
                    "The key has expired, or another rotation of it happened while this one ran (nothing was changed)."
                ),
            ),
            412: OpenApiResponse(
                ErrorResponseSerializer,
                description="If-Match does not name the key's current secret; nothing was changed.",
            ),
            422: OpenApiResponse(HTTPValidationErrorSerializer, description="Validation Error"),
            429: ERROR_429,
            503: ERROR_503,
        },
    )
    def post(self, request, key_id: str):
        data = self.json_object(request)
        api_key = own_key(request, key_id)
        serializer = DevApiKeyRotateSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        tags = if_match_tags(request)
        conditional = tags is not None and "*" not in tags
        if conditional and api_key.key_prefix not in tags:
            raise PreconditionFailed(secret_changed(api_key, "If-Match names another secret"))
        throttle_issuing(request.user)
        if conditional:
            # The client named the secret it replaces, and it is the current one: that is what is replaced.
            expected = api_key.key_prefix
        else:
            # The secret the key had when this request arrived (or, if it could not be read then,
            # when the caller's key was read): a rotation another request made since is not undone.
            expected = self.prefix_on_arrival or api_key.key_prefix
        try:
            # The core compares ``expected`` with the row it has locked.
            issued = lifecycle.rotate_key(
                api_key,
                grace_seconds=serializer.validated_data["grace_seconds"],
                expected_prefix=expected,
                actor=api_actor(request),
            )
        except lifecycle.AlreadyRotated as already:
            if conditional and already.api_key.key_prefix not in tags:
                raise PreconditionFailed(secret_changed(already.api_key, "If-Match names another secret")) from None
            raise Conflict(secret_changed(already.api_key, "another rotation happened while this one ran")) from None
        except lifecycle.KeyRevoked:
            raise NotFound("No API key with this id.") from None  # revoked while this request ran
        except lifecycle.NotRotatable as exc:
            raise Conflict(str(exc)) from None
        api_key = ApiKey.objects.with_scopes().get(pk=api_key.pk)
        # What the replaced secret really gets: None if it stopped, never past the key's expiry.
        api_key.previous_key_expires_at = issued.api_key.replaced_secret_works_until()
        body = DevApiKeyRotatedSerializer(api_key, context={"plaintext": issued.plaintext}).data
        return Response(body, status=status.HTTP_200_OK)


class CallingKeyView(KeyAPIView):
    """How a service outside Django checks a key: 200 with its scopes, or 401."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="getCallingApiKey",
        summary="Get Calling Key",
        description=(
            "The API key that authenticates this request: its metadata, owner uid and effective "
            "scopes. Needs no scope, so any service can check a key and read what it may do. "
            "A revoked, expired or unknown key is 401; too many failed keys from one address, 429."
        ),
        tags=TAGS,
        responses={200: CallingApiKeySerializer, 401: ERROR_401, 429: ERROR_429},
    )
    def get(self, request):
        response = Response(calling_key_body(request.auth))
        stops = presented_secret_expires_at(request.auth)
        if stops is not None:
            # RFC 8594: when the credential this request used stops working (HTTP-date, whole seconds).
            response["Sunset"] = http_date(stops.timestamp())
        return response
