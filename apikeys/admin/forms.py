"""The admin's forms: issuing, changing and rotating a key, and editing a scope."""

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin import widgets
from django.core.exceptions import ValidationError
from django.utils import timezone

from .. import lifecycle
from ..forms import FormTokenField, GracePeriodField, new_form_token
from ..models import ApiKey, Scope, User
from .widgets import NamedAutocompleteSelect


class ExpiryField(forms.SplitDateTimeField):
    """When a key stops verifying; empty means never. The admin's date and time pickers."""

    def __init__(self, **kwargs):
        super().__init__(required=False, widget=widgets.AdminSplitDateTime, label="Expires", **kwargs)

    def describe_limits(self) -> None:
        # Read at form time, so the help follows the setting (and tests that change it).
        self.help_text = (
            f"Leave empty for a key that never expires. At most {settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS} "
            f"days ahead; times are {timezone.get_current_timezone_name()}."
        )


class ApiKeyAddForm(forms.ModelForm):
    """Owner, name, scopes and expiry of a key about to be issued by lifecycle.issue_key.

    The form only checks the input; the view issues the key, and puts the core's
    refusals (too many keys, a name or expiry it rejects) beside the fields.
    """

    scopes = forms.ModelMultipleChoiceField(
        queryset=Scope.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    expires_at = ExpiryField()
    form_token = FormTokenField(required=False)

    class Meta:
        model = ApiKey
        fields = ("owner", "name", "scopes")
        widgets = {"name": widgets.AdminTextInputWidget}

    def __init__(self, *args, admin_site: admin.AdminSite = admin.site, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial.setdefault("form_token", new_form_token())
        owner = self.fields["owner"]
        # Searched as the user list is, and without the admin's "+": a user added
        # there would be a plain Django account, with no Firebase uid to own keys.
        owner.widget = NamedAutocompleteSelect(ApiKey._meta.get_field("owner"), admin_site)
        owner.widget.is_required = True
        # Keys belong to active Firebase users, as on every other door. (Set after the
        # widget: the queryset gives the widget its choices.)
        owner.queryset = User.objects.key_holders()
        owner.help_text = "An active user who signs in with Firebase."
        defaults = ", ".join(scope.code for scope in lifecycle.default_scopes()) or "none at present"
        # Matches the API, where a key created without scopes gets the read-only default.
        self.fields["scopes"].help_text = f"Leave every box unticked to give the key the read-only default: {defaults}."
        self.fields["expires_at"].describe_limits()

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        lifecycle.validate_expiry(expires_at)  # the core's rules, shown beside the field
        return expires_at


class ApiKeyChangeForm(forms.ModelForm):
    """Name, scopes and expiry of an unrevoked key. The expiry is saved by lifecycle.set_expiry."""

    # A form field of its own: the model field is not editable, so form.save() never writes it.
    expires_at = ExpiryField()

    class Meta:
        model = ApiKey
        fields = ("name", "scopes")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_at"].describe_limits()
        current = self.instance.expires_at
        # The time widget shows whole seconds; an unchanged expiry must compare equal.
        self.initial["expires_at"] = current.replace(microsecond=0) if current else None

    def clean_expires_at(self):
        expires_at = self.cleaned_data["expires_at"]
        current = self.instance.expires_at
        if current is not None and expires_at == current.replace(microsecond=0):
            return current  # unchanged: keep the stored value, a past one included
        if expires_at != current:
            lifecycle.validate_expiry(expires_at)
        return expires_at


class RotateKeyForm(forms.Form):
    """The confirmation before a key gets a new secret."""

    grace_seconds = GracePeriodField(
        immediately="Immediately: the current secret stops working now",
        later="In {period}",
        label="The current secret stops working",
        help_text="A grace period lets clients move to the new secret while the current one still works.",
    )
    # The display prefix the page showed: a form sent twice rotates once (lifecycle.AlreadyRotated).
    expected_prefix = forms.CharField(max_length=32, widget=forms.HiddenInput)


class DisableKeyForm(forms.Form):
    """The confirmation before a key is paused: why (optional), shown to the owner in the email notice and
    kept in the audit event; never a secret (``lifecycle.validate_reason``)."""

    reason = forms.CharField(
        required=False,
        max_length=200,
        label="Reason",
        help_text="Optional. Shown to the key's owner in the email notice and kept in the audit record: for "
        "example, “checking whether it leaked”. Never paste the key itself.",
        widget=forms.TextInput(attrs={"class": "vTextField"}),
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason.isprintable():
            raise ValidationError("The reason must be one line of printable text.", code="reason_not_printable")
        try:
            lifecycle.validate_reason(reason)
        except ValidationError as refused:  # keyed "reason" by the lifecycle: the field's own error here
            self.data = self.data.copy()  # the page shown again does not carry the secret back
            self.data["reason"] = ""
            raise ValidationError(lifecycle.SECRET_IN_REASON, code="secret_in_reason") from refused
        return reason


class ScopeAdminForm(forms.ModelForm):
    """A scope's code, description and default flag; a code in use by keys stays as it is."""

    class Meta:
        model = Scope
        fields = ("code", "description", "is_default")

    def clean_code(self):
        code = self.cleaned_data["code"]
        # The admin shows a used code read-only; this keeps the rule wherever else the form is used.
        if self.instance.pk and code != self.instance.code and self.instance.api_keys.exists():
            raise ValidationError(
                "Keys use this scope, so its code cannot change; add a new scope instead.", code="scope_in_use"
            )
        return code
