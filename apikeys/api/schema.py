"""OpenAPI: Firebase authentication as the contract's ``firebaseBearer``, and API keys as ``apiKeyBearer``."""

from ..jsonapi.schema import BearerScheme


class FirebaseAuthenticationScheme(BearerScheme):
    """FirebaseAuthentication as the contract's ``firebaseBearer``."""

    target_class = "apikeys.api.authentication.FirebaseAuthentication"
    name = "firebaseBearer"
    bearer_format = "Firebase ID token"
    description = "Send `Authorization: Bearer <firebase_id_token>`."


class ApiKeyAuthenticationScheme(BearerScheme):
    """ApiKeyAuthentication as ``apiKeyBearer``."""

    target_class = "apikeys.api.authentication.ApiKeyAuthentication"
    name = "apiKeyBearer"
    bearer_format = "Omi Developer API key (omi_dev_...)"
    description = "Send `Authorization: Bearer <API key>`."
