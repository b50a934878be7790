"""OpenAPI extensions: describe Firebase authentication as the contract's ``firebaseBearer``."""

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
