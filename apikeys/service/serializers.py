"""Input and output shapes of the service API."""

import ipaddress

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import crypto, lifecycle
from ..jsonapi.serializers import StrictCharField, StrictSerializer
from ..lifecycle import Code
from ..models import ApiKey, Scope

MAX_REQUIRED_SCOPES = 50
MAX_PRESENTED_KEY_LENGTH = 8192  # far longer than any key: longer is refused (422), not judged
MAX_USER_AGENT_LENGTH = 1000
MAX_REASON_LENGTH = 200
STRING_LIST = {"type": "array", "items": {"type": "string"}}
NULLABLE_DATE_TIME = {"type": ["string", "null"], "format": "date-time"}


class IPAddressField(StrictCharField):
    """An IPv4 or IPv6 address, as a string; returned in its canonical form."""

    default_error_messages = {"ip_address": "Input should be a valid IPv4 or IPv6 address."}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            self.fail("ip_address")


def quoted(value: str) -> str:
    """A rejected value as a message may quote it: shortened, and never a secret."""
    if crypto.contains_raw_key(value):
        return "(a value that looks like an API key)"
    return repr(value if len(value) <= 40 else value[:40] + "...")


@extend_schema_field(STRING_LIST)
class RequiredScopesField(serializers.Field):
    """Scope codes the key must carry; each must exist (an unknown code is the caller's bug: 422 at its index)."""

    default_error_messages = {
        "list_type": "Input should be a valid list of scope strings.",
        "too_long": "List should have at most {max} items.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, list):
            self.fail("list_type")
        if len(data) > MAX_REQUIRED_SCOPES:
            self.fail("too_long", max=MAX_REQUIRED_SCOPES)
        errors = {}
        known = set(Scope.objects.values_list("code", flat=True))
        for index, item in enumerate(data):
            if not isinstance(item, str):
                errors[index] = [serializers.ErrorDetail("Input should be a valid string.", code="string_type")]
            elif item not in known:
                valid = ", ".join(sorted(known))
                shown = item if len(item) <= 40 else item[:40] + "..."
                errors[index] = [
                    serializers.ErrorDetail(f"Unknown scope {shown!r}. Valid scopes: {valid}.", code="enum")
                ]
        if errors:
            raise serializers.ValidationError(errors)
        return list(dict.fromkeys(data))


class VerifyKeyRequestSerializer(StrictSerializer):
    """What a service sends about a key its client presented."""

    key = StrictCharField(
        allow_blank=True,
        trim_whitespace=False,
        max_length=MAX_PRESENTED_KEY_LENGTH,
        help_text="The key exactly as the client presented it (without 'Bearer '). Anything not shaped like a key "
        "is judged MALFORMED.",
    )
    required_scopes = RequiredScopesField(
        required=False,
        default=list,
        help_text="Scopes the operation needs; the key must carry every one (else INSUFFICIENT_SCOPE). "
        "Each must be a known scope code. Default: none.",
    )
    client_ip = IPAddressField(
        help_text="The end client's IP address (IPv4 or IPv6), as the service saw it. Failed attempts are throttled "
        "per this address (per /64 for IPv6), never per the service's own. Required."
    )
    user_agent = StrictCharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=MAX_USER_AGENT_LENGTH,
        help_text=f"The end client's User-Agent, if any (at most {MAX_USER_AGENT_LENGTH} characters); logged with "
        "a client that gets throttled, and kept (its first 300 characters) as the key's last use with client_ip "
        "for OMIKEYS_USAGE_ADDRESS_RETENTION_DAYS.",
    )


class RevokeUserKeysRequestSerializer(StrictSerializer):
    """Why every key of a user is being revoked."""

    reason = StrictCharField(
        max_length=MAX_REASON_LENGTH,
        help_text="Why (such as 'account deleted' or 'banned'), 1 to 200 characters, one line, never a secret (an "
        "API key or token in it is refused); shown to the key's owner in the email notice and kept in the audit "
        "record of each key.",
        error_messages={"required": "Field required.", "blank": "The reason must not be empty."},
    )

    def validate_reason(self, value: str) -> str:
        if any(ch in value for ch in "\r\n\x00") or not value.isprintable():
            raise serializers.ValidationError("The reason must be one line of printable text.", code="string_pattern")
        if crypto.contains_raw_key(value):  # lifecycle.validate_reason's rule, answered as a 422 at "reason"
            raise serializers.ValidationError(lifecycle.SECRET_IN_REASON, code="secret_in_reason")
        return value


class EraseUserRequestSerializer(StrictSerializer):
    """The erase request: no fields. A body may be omitted or ``{}``; any field in it is refused."""


class VerifyKeyResponseSerializer(serializers.Serializer):
    """The verdict (documentation of :func:`verdict_body`)."""

    valid = serializers.BooleanField(help_text="True only for VALID: the client may proceed.")
    code = serializers.ChoiceField(choices=list(Code.ALL), help_text="Why: see the endpoint's description.")
    detail = serializers.CharField(help_text="The verdict in a sentence, fit to pass on to the client (401/403).")
    key_id = serializers.CharField(allow_null=True, help_text="The key's id when the secret matched a key.")
    uid = serializers.CharField(allow_null=True, help_text="The key owner's Firebase uid, when a key matched.")
    scopes = serializers.ListField(
        child=serializers.CharField(), allow_null=True, help_text="The key's scopes, sorted, when a key matched."
    )
    expires_at = serializers.DateTimeField(allow_null=True, help_text="When the key expires; null: never or no key.")
    secret = serializers.ChoiceField(
        choices=["current", "previous"],
        allow_null=True,
        help_text="Which of the key's secrets was presented: `current`, or `previous` (the one a rotation replaced, "
        "accepted during its grace period); null when no key matched.",
    )
    secret_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="When the presented secret stops (or stopped) working; null: no end, or no key."
    )
    missing_scopes = serializers.ListField(
        child=serializers.CharField(), help_text="For INSUFFICIENT_SCOPE, the required scopes the key lacks."
    )
    retry_after = serializers.IntegerField(
        allow_null=True, help_text="For RATE_LIMITED, the seconds before this client_ip may try again."
    )


class ServiceApiKeySerializer(serializers.ModelSerializer):
    """A user's key as the service API shows it: everything but the secret, with its status."""

    id = serializers.CharField(read_only=True)
    scopes = serializers.SerializerMethodField()
    status = serializers.ChoiceField(
        choices=ApiKey.Status.choices,
        read_only=True,
        help_text="active, disabled (paused: it does not verify until enabled), expired or revoked; "
        "revoked wins over expired, expired over disabled.",
    )
    disabled_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When the key was disabled (paused); null while it is enabled."
    )

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "key_prefix",
            "status",
            "scopes",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "rotated_at",
            "disabled_at",
        ]
        read_only_fields = fields

    @extend_schema_field(STRING_LIST)
    def get_scopes(self, obj) -> list[str]:
        return [scope.code for scope in obj.scopes.all()]


class UserKeysSerializer(serializers.Serializer):
    """A user and their keys, newest first (documentation of the list answer)."""

    uid = serializers.CharField()
    is_active = serializers.BooleanField(help_text="False when the user is deactivated: none of their keys works.")
    active_key_count = serializers.IntegerField(
        help_text="Live keys: neither revoked nor expired, disabled ones included (they count toward the "
        "active-key limit)."
    )
    disabled_key_count = serializers.IntegerField(
        help_text="Of the live keys, those disabled (paused): they do not verify until enabled."
    )
    keys = ServiceApiKeySerializer(many=True)


class RevokedUserKeysSerializer(serializers.Serializer):
    """What a revocation of all a user's keys did."""

    uid = serializers.CharField()
    revoked_count = serializers.IntegerField(help_text="Keys this request revoked (0 when all already were).")
    revoked_key_ids = serializers.ListField(child=serializers.CharField())


class ErasureSerializer(serializers.Serializer):
    """What an erasure did (``lifecycle.ErasureReport``)."""

    uid = serializers.CharField()
    revoked_key_ids = serializers.ListField(child=serializers.CharField(), help_text="Keys this request revoked.")
    deactivated = serializers.BooleanField(help_text="Whether this request deactivated the user.")
    email_erased = serializers.BooleanField(help_text="Whether an email address was there and is now erased.")
    names_erased = serializers.BooleanField(
        help_text="Whether a first or last name, or a username other than firebase:<uid>, was there and is now erased."
    )
    events_scrubbed = serializers.IntegerField(
        help_text="Key events whose address, user agent, label or details (the email in a name) were erased."
    )
    ip_addresses_erased = serializers.IntegerField()
    user_agents_erased = serializers.IntegerField()
    key_names_scrubbed = serializers.IntegerField(help_text="Keys whose name held the email (it became '(erased)').")
    admin_records_scrubbed = serializers.IntegerField(
        help_text="Admin history entries about the user or their keys that held the email, and admin sign-in "
        "attempts made with the email or username (deleted)."
    )
    usage_records_erased = serializers.IntegerField(
        help_text="Addresses the user's keys were used from (deleted), and last uses of their keys whose address and "
        "user agent were erased; the usage counts stay."
    )
