"""Input and output shapes of the key API, named after the contract's schemas."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import crypto
from ..models import ApiKey, Scope, validate_key_name

MAX_SCOPES_IN_REQUEST = 50
_ECHO_LIMIT = 40  # characters of a rejected value quoted back in a message

STRING_LIST = {"type": "array", "items": {"type": "string"}}


def _quote(value: str) -> str:
    if crypto.contains_raw_key(value):
        return "(a value that looks like an API key)"
    shown = value if len(value) <= _ECHO_LIMIT else value[:_ECHO_LIMIT] + "..."
    return repr(shown)


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of converting them."""

    default_error_messages = {
        "string_type": "Input should be a valid string.",
        "null": "Input should be a valid string, not null.",
        "null_characters_not_allowed": "The value must not contain control characters.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("string_type")
        return super().to_internal_value(data)


@extend_schema_field(STRING_LIST)
class ScopeListField(serializers.Field):
    """A list of scope codes, resolved against the Scope table.

    Returns the distinct ``Scope`` rows in request order; reports every bad
    item at its own index.
    """

    default_error_messages = {
        "list_type": "Input should be a valid list of scope strings.",
        "too_short": "List should have at least 1 item. Omit scopes (or send null) for the read-only default.",
        "too_long": "List should have at most {max} items.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, list):
            self.fail("list_type")
        if not data:
            self.fail("too_short")
        if len(data) > MAX_SCOPES_IN_REQUEST:
            self.fail("too_long", max=MAX_SCOPES_IN_REQUEST)
        available = {scope.code: scope for scope in Scope.objects.all()}
        valid = ", ".join(sorted(available))
        errors = {}
        for index, item in enumerate(data):
            if not isinstance(item, str):
                errors[index] = [serializers.ErrorDetail("Input should be a valid string.", code="string_type")]
            elif item not in available:
                errors[index] = [
                    serializers.ErrorDetail(f"Unknown scope {_quote(item)}. Valid scopes: {valid}.", code="enum")
                ]
        if errors:
            raise serializers.ValidationError(errors)
        return [available[code] for code in dict.fromkeys(data)]

    def to_representation(self, value):
        return [scope.code for scope in value.all()]


class DevApiKeyCreateSerializer(serializers.Serializer):
    """The create request: a name and, optionally, scopes."""

    name = StrictCharField(
        help_text="Descriptive name for the key: 1 to 100 characters after trimming; must not contain a key.",
        validators=[validate_key_name],
        error_messages={"required": "Field required.", "blank": "The name must not be empty."},
    )
    scopes = ScopeListField(
        required=False,
        allow_null=True,
        help_text="Optional list of scopes. Omitted or null: the read-only default. Duplicates are collapsed.",
    )


class DevApiKeySerializer(serializers.ModelSerializer):
    """A key as listed: everything but the secret."""

    id = serializers.CharField(read_only=True)
    # Never null in practice; declared nullable to match Omi's published schema.
    scopes = ScopeListField(read_only=True, allow_null=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "key_prefix", "created_at", "last_used_at", "scopes"]
        read_only_fields = fields


class DevApiKeyCreatedSerializer(DevApiKeySerializer):
    """A key just created: the listed fields plus the plaintext ``key``, shown this once."""

    key = serializers.SerializerMethodField()

    class Meta(DevApiKeySerializer.Meta):
        fields = [*DevApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields

    @extend_schema_field({"type": "string"})
    def get_key(self, obj) -> str:
        return self.context["plaintext"]


# Documentation-only shapes for the error bodies.


@extend_schema_field({"anyOf": [{"type": "string"}, {"type": "array"}, {"type": "object"}]})
class _DetailField(serializers.Field):
    pass


class ErrorResponseSerializer(serializers.Serializer):
    detail = _DetailField(help_text="Error detail returned by the API.")


@extend_schema_field({"anyOf": [{"type": "string"}, {"type": "integer"}]})
class _LocItemField(serializers.Field):
    pass


class ValidationErrorSerializer(serializers.Serializer):
    loc = serializers.ListField(child=_LocItemField(), help_text="Where the problem is: body, field, list index.")
    msg = serializers.CharField()
    type = serializers.CharField()


class HTTPValidationErrorSerializer(serializers.Serializer):
    detail = ValidationErrorSerializer(many=True)
