"""Input and output shapes of the key API, named after the contract's schemas."""

import re

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import crypto, lifecycle
from ..jsonapi.serializers import StrictCharField, StrictSerializer
from ..models import ApiKey, Scope, validate_key_name

MAX_SCOPES_IN_REQUEST = 50
_ECHO_LIMIT = 40  # characters of a rejected value quoted back in a message

STRING_LIST = {"type": "array", "items": {"type": "string"}}


def _quote(value: str) -> str:
    if crypto.contains_raw_key(value):
        return "(a value that looks like an API key)"
    shown = value if len(value) <= _ECHO_LIMIT else value[:_ECHO_LIMIT] + "..."
    return repr(shown)


class StrictDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time string; a time without a zone is taken as UTC."""

    default_error_messages = {
        "datetime_type": "Input should be a date-time string such as 2027-01-31T00:00:00Z.",
        "datetime_parsing": "Input should be a valid date-time such as 2027-01-31T00:00:00Z.",
    }

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("datetime_type")
        try:
            return super().to_internal_value(rfc3339_upper(value))
        except serializers.ValidationError:
            self.fail("datetime_parsing")


# A date, then the date/time separator RFC 3339 allows ("T", "t", or a space), then the rest.
_DATE_AND_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[Tt ](.*))?$", re.DOTALL)


def rfc3339_upper(value: str) -> str:
    """A date-time string with RFC 3339's lowercase ``t`` and ``z`` as the parsers want them: ``T``, ``Z``.

    RFC 3339 section 5.6 lets both letters be lowercase; Python's and Django's parsers
    accept only uppercase. A separator other than ``T``/``t``/space (which Python's
    parser would accept) is left for the parser to refuse: the value comes back unchanged,
    apart from being made invalid.
    """
    match = _DATE_AND_TIME_RE.match(value)
    if match is None:
        return "" if len(value) > 10 else value  # a date alone stays; anything else is refused
    date, time = match.groups()
    return date if time is None else f"{date}T{time.replace('z', 'Z')}"


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: strings, booleans and fractions are refused, not converted."""

    default_error_messages = {
        "int_type": "Input should be a valid integer.",
        "greater_than_equal": "Input should be greater than or equal to {min_value}.",
        "less_than_equal": "Input should be less than or equal to {max_value}.",
    }

    def validate_empty_values(self, data):
        if data is None:  # DRF's own "null" error would be reported as a string error
            self.fail("int_type")
        return super().validate_empty_values(data)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("int_type")
        if self.min_value is not None and data < self.min_value:
            self.fail("greater_than_equal", min_value=self.min_value)
        if self.max_value is not None and data > self.max_value:
            self.fail("less_than_equal", max_value=self.max_value)
        return data


@extend_schema_field(STRING_LIST)
class ScopeListField(serializers.Field):
    """A list of scope codes, resolved by ``Scope.objects.resolve``.

    Returns the distinct ``Scope`` rows in request order; reports every bad
    item at its own index.
    """

    default_error_messages = {
        "list_type": "Input should be a valid list of scope strings.",
        "too_short": "List should have at least 1 item. Omit scopes (or send null) for the read-only default.",
        # Where null is refused (a change replaces the scopes: there is no default to fall back on).
        "too_short_replacing": "List should have at least 1 item: a key needs at least one scope.",
        "null_replacing": "Input should be a valid list of scope strings; null is not accepted here: "
        "leave scopes out to keep them.",
        "too_long": "List should have at most {max} items.",
    }

    def validate_empty_values(self, data):
        if data is None and not self.allow_null:  # DRF's own "null" error would be reported as a string error
            # Where null is refused (a change): say why, and what to send instead. Typed as any non-list.
            raise serializers.ValidationError(self.error_messages["null_replacing"], code="list_type")
        return super().validate_empty_values(data)

    def to_internal_value(self, data):
        if not isinstance(data, list):
            self.fail("list_type")
        if not data:
            if not self.allow_null:
                raise serializers.ValidationError(self.error_messages["too_short_replacing"], code="too_short")
            self.fail("too_short")
        if len(data) > MAX_SCOPES_IN_REQUEST:
            self.fail("too_long", max=MAX_SCOPES_IN_REQUEST)
        unknown, valid = (), ""
        try:
            scopes = Scope.objects.resolve(item for item in data if isinstance(item, str))
        except DjangoValidationError as error:
            refusal = error.error_dict["scopes"][0]
            unknown, valid = set(refusal.params["unknown"]), refusal.params["valid"]
        errors = {}
        for index, item in enumerate(data):
            if not isinstance(item, str):
                errors[index] = [serializers.ErrorDetail("Input should be a valid string.", code="string_type")]
            elif item in unknown:
                errors[index] = [
                    serializers.ErrorDetail(f"Unknown scope {_quote(item)}. Valid scopes: {valid}.", code="enum")
                ]
        if errors:
            raise serializers.ValidationError(errors)
        return scopes

    def to_representation(self, value):
        return [scope.code for scope in value.all()]


def name_field(*, changing: bool = False, **kwargs) -> StrictCharField:
    """The ``name`` of a create or change request (``changing``: a PATCH, where null says to leave the field
    out to keep the name): the key's name rules (``validate_key_name``)."""
    messages = {"required": "Field required.", "blank": "The name must not be empty."}
    if changing:
        messages["null"] = "Input should be a valid string; null is not accepted here: leave name out to keep it."
    return StrictCharField(
        help_text="Descriptive name for the key: 1 to 100 characters after trimming; must not contain a key.",
        validators=[validate_key_name],
        error_messages=messages,
        **kwargs,
    )


def expires_at_field(help_text: str) -> "StrictDateTimeField":
    """The ``expires_at`` of a create or change request: optional, null for never, under ``validate_expiry``."""
    return StrictDateTimeField(
        required=False, allow_null=True, validators=[lifecycle.validate_expiry], help_text=help_text
    )


class DevApiKeyCreateSerializer(StrictSerializer):
    """The create request: a name and, optionally, scopes."""

    name = name_field()
    scopes = ScopeListField(
        required=False,
        allow_null=True,
        help_text="Optional list of scopes. Omitted or null: the read-only default. Duplicates are collapsed.",
    )
    expires_at = expires_at_field(
        "Optional moment the key stops working (ISO 8601; UTC if no zone is given). In the future and "
        "at most a year ahead. Omitted or null: never expires."
    )


class DevApiKeyChangeSerializer(StrictSerializer):
    """The change (PATCH) request: any of name, scopes and expiry, under the create request's rules.

    A field left out stays as it is; ``expires_at: null`` means never. A body with none of
    the three is refused (422 at ``["body"]``, naming them), as are unknown fields.
    """

    CHANGEABLE = ("name", "scopes", "expires_at")

    name = name_field(changing=True, required=False)
    scopes = ScopeListField(
        required=False,
        help_text="The key's new scopes, replacing its current ones: at least one. Duplicates are collapsed.",
    )
    expires_at = expires_at_field(
        "The new moment the key stops working (ISO 8601; UTC if no zone is given), in the future and at most a "
        "year ahead; null: never expires. An expired key given a later expiry works again, so it needs room "
        "under the active-key limit."
    )

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError(
                f"Nothing to change: send at least one of {', '.join(self.CHANGEABLE)}.", code="missing"
            )
        return attrs


class DevApiKeyRevokeSerializer(StrictSerializer):
    """The revoke request: no fields. A body may be omitted or ``{}``; any field in it is refused."""


class DevApiKeyPauseSerializer(StrictSerializer):
    """The disable and enable requests: no fields. A body may be omitted or ``{}``; any field in it is refused."""


class DevApiKeyRotateSerializer(StrictSerializer):
    """The rotate request: how long the old secret keeps working."""

    grace_seconds = StrictIntegerField(
        required=False,
        default=0,
        min_value=0,
        max_value=lifecycle.MAX_GRACE_SECONDS,
        help_text="Seconds the old secret keeps working (0 to 604800, 7 days). Default 0: it stops at once.",
    )


# The statuses of a key the key API shows (never revoked: a revoked key is not listed).
LISTED_STATUSES = [ApiKey.Status.ACTIVE.value, ApiKey.Status.DISABLED.value, ApiKey.Status.EXPIRED.value]


@extend_schema_field({"type": "string", "enum": LISTED_STATUSES}, component_name="ListedKeyStatusEnum")
class ListedStatusField(serializers.ChoiceField):
    """A listed key's status, documented as its own component (``ListedKeyStatusEnum``): the service
    API's statuses are ``KeyStatusEnum`` (all four), and ENUM_NAME_OVERRIDES keeps "StatusEnum" for
    an older two-value set, so an enum named after the field would collide."""

    def __init__(self, **kwargs):
        super().__init__(choices=LISTED_STATUSES, read_only=True, **kwargs)


# The fields of every key the API shows: the contract's, with expires_at and status.
SHOWN_FIELDS = ["id", "name", "key_prefix", "created_at", "last_used_at", "expires_at", "status", "scopes"]


class DevApiKeySerializer(serializers.ModelSerializer):
    """A key as listed, changed, disabled or enabled: everything but the secret."""

    id = serializers.CharField(read_only=True)
    # Never null in practice; declared nullable to match Omi's published schema.
    scopes = ScopeListField(read_only=True, allow_null=True)

    status = ListedStatusField(
        help_text=(
            "active; disabled (paused by its owner or staff: it does not work until enabled); or expired "
            "(it no longer works). An expired key that is also disabled is expired."
        ),
    )
    disabled_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When the key was disabled (paused); null while it is enabled.",
    )

    class Meta:
        model = ApiKey
        fields = [*SHOWN_FIELDS, "disabled_at"]
        read_only_fields = fields


class DevApiKeyCreatedSerializer(DevApiKeySerializer):
    """A key just created: the listed fields plus the plaintext ``key``, shown this once."""

    key = serializers.SerializerMethodField()

    # The contract's shape (and expires_at, status): a key just created is never disabled.
    class Meta(DevApiKeySerializer.Meta):
        fields = [*SHOWN_FIELDS, "key"]
        read_only_fields = fields

    @extend_schema_field({"type": "string"})
    def get_key(self, obj) -> str:
        return self.context["plaintext"]


class DevApiKeyRotatedSerializer(DevApiKeyCreatedSerializer):
    """A rotated key: the create response's shape, and until when the old secret works."""

    previous_key_expires_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="Until this moment the replaced secret still works. Null: it stopped at once.",
    )

    class Meta(DevApiKeyCreatedSerializer.Meta):
        # A disabled key stays disabled when rotated: its status and disabled_at say so.
        fields = [*DevApiKeyCreatedSerializer.Meta.fields, "previous_key_expires_at", "disabled_at"]
        read_only_fields = fields


SECRET_CURRENT, SECRET_REPLACED = "current", "replaced"


class CallingApiKeySerializer(DevApiKeySerializer):
    """The key that authenticated the request, and whose it is (the schema of ``calling_key_body``).

    ``secret`` says which of the key's secrets was sent: its current one, or the one a
    rotation replaced, still accepted during the rotation's grace period; and
    ``secret_expires_at`` when the secret sent stops working (the ``Sunset`` header).
    """

    uid = serializers.CharField(source="owner.firebase_uid", read_only=True, help_text="The owner's Firebase uid.")
    scopes = serializers.SerializerMethodField(help_text="The scopes this key grants, sorted.")
    secret = serializers.SerializerMethodField(
        help_text=(
            "Which secret authenticated this request: `current`, or `replaced` (the secret a rotation "
            "replaced, accepted until `secret_expires_at`: move to the key's current secret, `key_prefix`)."
        )
    )
    secret_expires_at = serializers.SerializerMethodField(
        help_text=(
            "When the secret sent stops working: for a replaced secret the end of the rotation's grace "
            "period (or the key's expiry if sooner), else the key's expiry. Null: no end. Also sent as "
            "the Sunset header (RFC 8594)."
        )
    )

    # A disabled key never authenticates a request, so its disabled_at is not shown here.
    class Meta(DevApiKeySerializer.Meta):
        fields = [*SHOWN_FIELDS, "uid", "secret", "secret_expires_at"]
        read_only_fields = fields

    @extend_schema_field(STRING_LIST)
    def get_scopes(self, obj) -> list[str]:
        return sorted(obj.scope_codes)

    @extend_schema_field({"type": "string", "enum": [SECRET_CURRENT, SECRET_REPLACED]})
    def get_secret(self, obj) -> str:
        return SECRET_REPLACED if presented_secret_sunset(obj) else SECRET_CURRENT

    @extend_schema_field({"type": ["string", "null"], "format": "date-time"})
    def get_secret_expires_at(self, obj) -> str | None:
        return _moment(presented_secret_expires_at(obj))


def presented_secret_sunset(api_key: ApiKey):
    """When the replaced secret that authenticated this request stops, or None when the current one did."""
    return getattr(api_key, "replaced_secret_sunset", None)


def presented_secret_expires_at(api_key: ApiKey):
    """When the secret that authenticated this request stops working (None: no end)."""
    return presented_secret_sunset(api_key) or api_key.expires_at


_DATETIME = serializers.DateTimeField()


def _moment(value):
    return None if value is None else _DATETIME.to_representation(value)


def calling_key_body(api_key: ApiKey) -> dict:
    """``CallingApiKeySerializer(api_key).data``, built directly.

    This runs on every verification; a ModelSerializer builds its fields on every
    use and would cost more than the verification itself. A test keeps the two equal.
    """
    return {
        "id": str(api_key.pk),
        "name": api_key.name,
        "key_prefix": api_key.key_prefix,
        "created_at": _moment(api_key.created_at),
        "last_used_at": _moment(api_key.last_used_at),
        "expires_at": _moment(api_key.expires_at),
        "status": api_key.status,
        "scopes": sorted(api_key.scope_codes),
        "uid": api_key.owner.firebase_uid,
        "secret": SECRET_REPLACED if presented_secret_sunset(api_key) else SECRET_CURRENT,
        "secret_expires_at": _moment(presented_secret_expires_at(api_key)),
    }


# --- usage per key (GET /v1/dev/keys/{key_id}/usage) -----------------------------------


class UsageCountsSerializer(serializers.Serializer):
    """Requests by outcome, and their total."""

    accepted = serializers.IntegerField(help_text="Verified, with every scope required.")
    insufficient_scope = serializers.IntegerField(help_text="Verified, but refused for a missing scope.")
    expired = serializers.IntegerField(help_text="Refused: the key (or the presented replaced secret) had expired.")
    disabled = serializers.IntegerField(help_text="Refused: the key was paused.")
    revoked = serializers.IntegerField(help_text="Refused: the key was revoked.")
    owner_inactive = serializers.IntegerField(help_text="Refused: the key's owner was deactivated.")
    total = serializers.IntegerField(help_text="Every request with this key, whatever its outcome.")


class UsageBucketSerializer(UsageCountsSerializer):
    """One day's (or hour's) requests."""

    start = serializers.CharField(help_text="The day's (hour's) start, ISO 8601 in UTC.")


class UsageLastUseSerializer(serializers.Serializer):
    """The most recent request with the key."""

    at = serializers.CharField(help_text="When, ISO 8601 in UTC.")
    outcome = serializers.CharField(help_text="Its outcome: accepted, insufficient_scope, expired, disabled...")
    address = serializers.CharField(allow_null=True, help_text="The client's IP address (null once past retention).")
    user_agent = serializers.CharField(help_text="The client's User-Agent (empty if none, or past retention).")


class UsageAddressSerializer(serializers.Serializer):
    """An address the key was used from."""

    address = serializers.CharField()
    first_seen = serializers.CharField(help_text="ISO 8601 in UTC.")
    last_seen = serializers.CharField(help_text="ISO 8601 in UTC.")
    requests = serializers.IntegerField()


class KeyUsageSerializer(serializers.Serializer):
    """A key's usage over a window of days."""

    key_id = serializers.CharField()
    days = serializers.IntegerField(help_text="The window: this many days, the current (UTC) day last.")
    granularity = serializers.ChoiceField(choices=["day", "hour"])
    buckets = UsageBucketSerializer(many=True, help_text="Oldest first, one per day (hour) of the window.")
    totals = UsageCountsSerializer()
    last_use = UsageLastUseSerializer(allow_null=True, help_text="null if the key was never used.")
    addresses = UsageAddressSerializer(
        many=True, help_text="Addresses seen in the address retention window (30 days by default), latest first."
    )


def key_usage_body(api_key: ApiKey, usage) -> dict:
    """The usage endpoint's answer for a ``lifecycle.KeyUsage``."""

    def counts(values: dict) -> dict:
        return {**values, "total": sum(values.values())}

    last_use = usage.last_use
    return {
        "key_id": str(api_key.pk),
        "days": usage.days,
        "granularity": usage.granularity,
        "buckets": [{"start": _moment(row.start), **counts(row.counts)} for row in usage.rows],
        "totals": counts(usage.totals),
        "last_use": None
        if last_use is None
        else {
            "at": _moment(last_use.at),
            "outcome": last_use.outcome,
            "address": last_use.address,
            "user_agent": last_use.user_agent,
        },
        "addresses": [
            {
                "address": seen.address,
                "first_seen": _moment(seen.first_seen),
                "last_seen": _moment(seen.last_seen),
                "requests": seen.requests,
            }
            for seen in usage.addresses
        ],
    }
