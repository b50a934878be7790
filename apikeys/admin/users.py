"""The admin of users: Firebase users and staff accounts, each with their keys listed read-only."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.utils import timezone

from ..models import ApiKey, User
from .display import key_status, scope_codes
from .widgets import LabelledFilteredSelectMultiple


class ApiKeyInline(admin.TabularInline):
    """The user's keys, read-only: changes happen on each key's own page."""

    model = ApiKey
    fk_name = "owner"
    fields = ("name", "key_prefix", "scope_list", "created_at", "last_used_at", "status")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).with_scopes()

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="scopes")
    def scope_list(self, obj):
        return scope_codes(obj)

    @admin.display
    def status(self, obj):
        return key_status(obj)


class OmikeysUserAdmin(UserAdmin):
    """Django's user admin, with the Firebase uid shown but never set here, and the user's keys."""

    list_display = ("username", "email", "firebase_uid", "is_staff", "is_active")
    search_fields = ("username", "email", "firebase_uid")
    fieldsets = (
        *UserAdmin.fieldsets,
        ("Firebase", {"fields": ("firebase_uid",)}),
        ("Deactivation", {"fields": ("deactivation_reason", "deactivated_at")}),
    )
    inlines = (ApiKeyInline,)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()  # a user being added has no keys

    def get_readonly_fields(self, request, obj=None):
        readonly_fields = (*super().get_readonly_fields(request, obj), "deactivation_reason", "deactivated_at")
        if obj is None:
            return readonly_fields
        # A uid set here would let a Firebase sign-in act as this account (a staff
        # account's admin rights included), or hand a user's keys to someone else.
        readonly_fields = (*readonly_fields, "firebase_uid")
        if obj.firebase_uid:
            # Firebase users never get staff rights, and their derived
            # "firebase:<uid>" username fails the form's username characters.
            readonly_fields = (*readonly_fields, "username", "is_staff", "is_superuser")
        return readonly_fields

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        # Groups and permissions: Django's two-box chooser, with its icons' labels allowed.
        if db_field.name in (*self.filter_horizontal, *self.filter_vertical):
            stacked = db_field.name in self.filter_vertical
            kwargs["widget"] = LabelledFilteredSelectMultiple(db_field.verbose_name, stacked)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        # Staff turning "active" off or on is recorded as theirs, so syncfirebaseusers (which only undoes its own
        # deactivations) leaves that user alone.
        if change and "is_active" in form.changed_data:
            obj.deactivation_reason = User.Deactivation.NONE if obj.is_active else User.Deactivation.STAFF
            obj.deactivated_at = None if obj.is_active else timezone.now()
        super().save_model(request, obj, form, change)

    def get_search_results(self, request, queryset, search_term):
        """The user search, narrowed to users who may hold keys when it feeds a key's owner field."""
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        # Django's autocomplete view names the field it serves; the owner field of the
        # key forms offers only the users its form accepts.
        if request.GET.get("model_name") == "apikey" and request.GET.get("field_name") == "owner":
            queryset = queryset & User.objects.key_holders()
        return queryset, may_have_duplicates

    def get_deleted_objects(self, objs, request):
        deleted_objects, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        if protected:
            # Keys protect their owner; saying so beats "you lack permission to delete API keys".
            perms_needed = set()
        return deleted_objects, model_count, perms_needed, protected
