"""OpenAPI extensions: Firebase authentication as the contract's ``firebaseBearer``, and API keys."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class FirebaseAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.api.authentication.FirebaseAuthentication"
    name = "firebaseBearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "Firebase ID token",
            "description": "Send `Authorization: Bearer <firebase_id_token>`.",
        }


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.api.authentication.ApiKeyAuthentication"
    name = "apiKeyBearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "Omi Developer API key (omi_dev_...)",
            "description": "Send `Authorization: Bearer <API key>`.",
        }
