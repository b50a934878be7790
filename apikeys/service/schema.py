"""OpenAPI: the service token as ``serviceBearer``."""

from ..jsonapi.schema import BearerScheme


class ServiceTokenScheme(BearerScheme):
    """ServiceTokenAuthentication as ``serviceBearer``."""

    target_class = "apikeys.service.authentication.ServiceTokenAuthentication"
    name = "serviceBearer"
    bearer_format = "omikeys service token (omi_svc_...)"
    description = (
        "Send `Authorization: Bearer <service token>`; staff issue tokens in the admin or with createserviceclient."
    )
