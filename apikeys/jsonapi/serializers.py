"""Request-body pieces both JSON doors use: strings that are strings, and bodies that refuse unknown fields."""

from rest_framework import serializers


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


class StrictSerializer(serializers.Serializer):
    """A request body that refuses fields it does not declare, like pydantic's ``extra="forbid"``.

    A misspelt field (``expiresAt``, ``grace``) would otherwise be dropped and change what
    the request does; each unknown field is a 422 at ``["body", "<field>"]`` with the type
    ``extra_forbidden``, naming the accepted fields. The OpenAPI document says
    ``additionalProperties: false`` for these bodies (``schema.StrictSerializerExtension``).
    """

    def to_internal_value(self, data):
        unknown = [field for field in data if field not in self.fields]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors, value = dict(exc.detail), None
        else:
            errors = {}
        if unknown:
            accepted = ", ".join(self.fields)
            if accepted:
                message = f"Extra inputs are not permitted. This endpoint accepts: {accepted}."
            else:
                message = "Extra inputs are not permitted. This endpoint takes no fields."
            for field in unknown:
                errors[field] = [serializers.ErrorDetail(message, code="extra_forbidden")]
        if errors:
            raise serializers.ValidationError(errors)
        return value
