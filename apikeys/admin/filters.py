"""The admin's list filters, and the rule that no URL lookup may reach a stored hash."""

from django.contrib import admin
from django.db.models.constants import LOOKUP_SEP
from django.utils import timezone

from ..models import ApiKey

# Secrets are stored as hashes only; no URL filter may touch them, on any model.
HASH_FIELDS = frozenset({"key_hash", "previous_key_hash"})


def touches_a_hash(lookup: str) -> bool:
    """True when a changelist lookup such as ``api_key__key_hash__startswith`` reaches a hash column."""
    return not HASH_FIELDS.isdisjoint(lookup.split(LOOKUP_SEP))


class KeyStatusFilter(admin.SimpleListFilter):
    """Active, disabled, expired or revoked: the values of ApiKey.status, decided in SQL.

    "Active" means verifying (live and not disabled), as the status column says; a disabled
    key that has expired is expired, and a revoked one revoked, as ApiKey.status orders them.
    """

    title = "status"
    parameter_name = "status"
    # Each status narrows a queryset; "now" is read when the filter runs, not at import.
    STATES = {
        ApiKey.Status.ACTIVE.value: lambda keys: keys.active().enabled(),
        ApiKey.Status.DISABLED.value: lambda keys: keys.active().disabled(),
        ApiKey.Status.EXPIRED.value: lambda keys: keys.unrevoked().filter(expires_at__lte=timezone.now()),
        ApiKey.Status.REVOKED.value: lambda keys: keys.filter(revoked_at__isnull=False),
    }

    def lookups(self, request, model_admin):
        return [(value, ApiKey.Status(value).label) for value in self.STATES]

    def queryset(self, request, queryset):
        narrow = self.STATES.get(self.value())
        return queryset if narrow is None else narrow(queryset)


class ScopeFilter(admin.RelatedFieldListFilter):
    """Keys carrying one scope. Every key has at least one, so there is no "keys without scopes" choice."""

    include_empty_choice = False  # Django offers one for every many-to-many field, shown as "-"


class EventDateFilter(admin.DateFieldListFilter):
    """Filter by the event's time, titled "date" rather than the field's terse name."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "date"
