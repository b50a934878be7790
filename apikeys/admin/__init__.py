"""Staff door: the Django admin for users, scopes, API keys and their audit events, and webhooks.

One module per model admin (keys, scopes, users, events, service clients), with the key pages the
admin does not have (issue, rotate) in key_views, and forms and filters beside them.
"""

from django.contrib import admin

from ..models import ApiKey, Delivery, Event, KeyEvent, Scope, ServiceClient, User, WebhookEndpoint
from .events import KeyEventAdmin
from .keys import ApiKeyAdmin
from .notices import NoticeAdmin  # noqa: F401  (registers the notices' read-only list)
from .scopes import ScopeAdmin
from .service_clients import ServiceClientAdmin
from .users import OmikeysUserAdmin
from .webhooks import DeliveryAdmin, EventAdmin, WebhookEndpointAdmin

__all__ = [
    "ApiKeyAdmin",
    "DeliveryAdmin",
    "EventAdmin",
    "KeyEventAdmin",
    "OmikeysUserAdmin",
    "ScopeAdmin",
    "ServiceClientAdmin",
    "WebhookEndpointAdmin",
]

admin.site.site_header = "omikeys administration"
admin.site.site_title = "omikeys admin"
admin.site.index_title = "Keys, scopes and users"
# The key list is wide (owner, prefix, scopes, dates, status): give it the whole page.
admin.site.enable_nav_sidebar = False

admin.site.register(ApiKey, ApiKeyAdmin)
admin.site.register(Scope, ScopeAdmin)
admin.site.register(User, OmikeysUserAdmin)
admin.site.register(KeyEvent, KeyEventAdmin)
admin.site.register(ServiceClient, ServiceClientAdmin)
admin.site.register(WebhookEndpoint, WebhookEndpointAdmin)
admin.site.register(Delivery, DeliveryAdmin)
admin.site.register(Event, EventAdmin)
