"""OpenAPI pieces both JSON doors use: bearer schemes, bodies that refuse unknown fields, the error bodies' shapes."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class BearerScheme(OpenApiAuthenticationExtension):
    """An ``Authorization: Bearer`` scheme; subclasses name the class, the scheme and the credential."""

    bearer_format = ""
    description = ""

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": self.bearer_format, "description": self.description}


class StrictSerializerExtension(OpenApiSerializerExtension):
    """Request bodies built on ``StrictSerializer`` refuse unknown fields: ``additionalProperties: false``."""

    target_class = "apikeys.jsonapi.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        return schema


# Documentation-only shapes for the error bodies.


@extend_schema_field({"anyOf": [{"type": "string"}, {"type": "array"}, {"type": "object"}]})
class _DetailField(serializers.Field):
    pass


class ErrorResponseSerializer(serializers.Serializer):
    """``{"detail": ...}``: the body of 401, 404, 409, 413, 429 and 503 answers."""

    detail = _DetailField(help_text="Error detail returned by the API.")


@extend_schema_field({"anyOf": [{"type": "string"}, {"type": "integer"}]})
class _LocItemField(serializers.Field):
    pass


class ValidationErrorSerializer(serializers.Serializer):
    """One problem of a 422: where (``loc``), what (``msg``), and its pydantic-style ``type``."""

    loc = serializers.ListField(child=_LocItemField(), help_text="Where the problem is: body, field, list index.")
    msg = serializers.CharField()
    type = serializers.CharField()


class HTTPValidationErrorSerializer(serializers.Serializer):
    """``{"detail": [ValidationError, ...]}``: the body of a 422."""

    detail = ValidationErrorSerializer(many=True)
