"""Forms for the web pages: the same rules as the API, with errors shown beside each field."""

import datetime
from collections import defaultdict

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from .. import lifecycle
from ..forms import FormTokenField, GracePeriodField, new_form_token
from ..models import KEY_NAME_MAX_LENGTH, ApiKey, NotificationSettings, Scope, validate_key_name

NEVER = "never"
# The edit form's expiry choice that leaves the key's expiry as it is (its default).
KEEP = "keep"
# How long a new key may live, in days; choices beyond OMIKEYS_MAX_KEY_LIFETIME_DAYS are not offered.
EXPIRY_DAYS = (30, 90, 365)

# What each grace period of lifecycle.GRACE_PERIODS (in seconds) is for, beside its choice.
GRACE_HELP = {
    0: "The old key stops working the moment you rotate. Choose this if the key may have leaked.",
    60 * 60: "The old key keeps working for one hour: time to update a single app or script.",
    24 * 60 * 60: "The old key keeps working for a day: time to update and redeploy your apps.",
    7 * 24 * 60 * 60: "The old key keeps working for a week: for keys used in many places or by other people.",
}


class SignInForm(forms.Form):
    """What the sign-in page posts once the browser has signed in with Firebase."""

    id_token = forms.CharField(max_length=8192, error_messages={"required": "Sign in with Firebase first."})
    next = forms.CharField(required=False, max_length=2048)


class ScopeCodesField(forms.ModelMultipleChoiceField):
    """Scope checkboxes whose values are codes, resolved by ``Scope.objects.resolve``."""

    def _check_values(self, value):
        codes = [str(code) for code in value]
        for code in codes:
            self.validate_no_null_characters(code)  # as Django's own field does, before any lookup
        try:
            return self.queryset.resolve(codes)
        except ValidationError as error:
            (unknown, *_) = error.error_dict["scopes"][0].params["unknown"]
            raise ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice", params={"value": unknown}
            ) from None


def name_field(**kwargs) -> forms.CharField:
    """A key's name field as every form shows it; ``validate_key_name`` owns the limit, so messages match the API's."""
    return forms.CharField(
        max_length=None,
        error_messages={"required": "The name must not be empty."},
        widget=forms.TextInput(attrs={"maxlength": KEY_NAME_MAX_LENGTH, "autocomplete": "off", "spellcheck": "false"}),
        help_text="Something that tells you where the key is used, like “Zapier sync”.",
        **kwargs,
    )


def scopes_field() -> ScopeCodesField:
    """A key's scope checkboxes as every form shows them: one per scope, by code."""
    return ScopeCodesField(
        queryset=Scope.objects.order_by("code"),
        to_field_name="code",
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": "Choose at least one scope.",
            "invalid_choice": "Unknown scope %(value)s.",
        },
    )


def scope_groups(field: forms.BoundField) -> list[dict]:
    """A scope field's checkboxes grouped by resource, read before write: ``[{resource, label, choices}]``,
    each choice ``(action, checkbox)``."""
    order = {"read": 0, "write": 1}
    groups: dict[str, list] = defaultdict(list)
    for checkbox in field:
        resource, _, action = str(checkbox.data["value"]).partition(":")
        groups[resource].append((order.get(action, 2), action, checkbox))
    return [
        {
            "resource": resource,
            "label": resource.replace("_", " ").capitalize(),
            "choices": [(action, checkbox) for _, action, checkbox in sorted(items, key=lambda i: i[:2])],
        }
        for resource, items in sorted(groups.items())
    ]


class KeyCreateForm(forms.Form):
    """A new key's name, scopes and lifetime, and the form's one-time token."""

    name = name_field(validators=[validate_key_name])
    scopes = scopes_field()
    expires_in = forms.ChoiceField(
        required=False,  # a form sent without it gets the default, like an unticked box
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Choose one of the expiry options."},
    )
    form_token = FormTokenField(
        error_messages={"required": "The form was incomplete. Check the details and create the key again."},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_in"].choices = expiry_choices()
        if not self.is_bound:
            self.initial.setdefault("scopes", [s.code for s in Scope.objects.filter(is_default=True)])
            self.initial.setdefault("expires_in", NEVER)
            self.initial.setdefault("form_token", new_form_token())

    def expires_at(self, now: datetime.datetime | None = None) -> datetime.datetime | None:
        """The moment the chosen lifetime ends, counted from now; None for never."""
        choice = self.cleaned_data.get("expires_in") or NEVER
        if choice == NEVER:
            return None
        return (now or timezone.now()) + datetime.timedelta(days=int(choice))

    def expiry_options(self) -> list[dict]:
        """The expiry radio buttons, each with the date it would end on if chosen now."""
        now = timezone.now()
        radios = list(self["expires_in"])
        # A form sent without a choice (or with an unknown one) meant the default: show it ticked.
        nothing_selected = not any(radio.data["selected"] for radio in radios)
        options = []
        for radio in radios:
            value = str(radio.data["value"])
            until = None if value == NEVER else now + datetime.timedelta(days=int(value))
            checked = radio.data["selected"] or (nothing_selected and value == NEVER)
            options.append({"radio": radio, "value": value, "until": until, "checked": checked})
        return options

    def with_fresh_token(self) -> "KeyCreateForm":
        """This bound form, with a new token if its own was missing or malformed.

        A form that failed validation created no key, so a valid token is kept.
        """
        if "form_token" in self.errors:
            data = self.data.copy()
            data["form_token"] = new_form_token()
            self.data = data
        return self

    def scope_groups(self) -> list[dict]:
        """Scopes grouped by resource, read before write, for the checkbox grid (:func:`scope_groups`)."""
        return scope_groups(self["scopes"])


def expiry_choices() -> list[tuple[str, str]]:
    """Never, then each standard lifetime the setting allows (read per form, so tests can lower it)."""
    allowed = [days for days in EXPIRY_DAYS if days <= settings.OMIKEYS_MAX_KEY_LIFETIME_DAYS]
    return [(NEVER, "Never"), *((str(days), f"{days} days") for days in allowed)]


class KeyRotateForm(forms.Form):
    """The rotation confirmation: how long the old secret keeps working, and which secret the page showed."""

    grace_seconds = GracePeriodField(
        immediately="Immediately",
        later="After {period}",
        error_messages={
            "required": "Choose when the old key stops working.",
            "invalid_choice": "Choose one of the options for when the old key stops working.",
        },
    )
    # The display prefix the page showed: if the secret changed since (the form was
    # sent before, by a reload or a double click), lifecycle rotates nothing.
    expected_prefix = forms.CharField(
        max_length=32,
        widget=forms.HiddenInput,
        error_messages={"required": "The form was incomplete. Open the key and rotate it again."},
    )

    def grace_options(self) -> list[dict]:
        """The grace-period radio buttons, each with what it is for."""
        return [
            {"radio": radio, "help": GRACE_HELP.get(int(radio.data["value"]), "")} for radio in self["grace_seconds"]
        ]


class KeyEditForm(forms.Form):
    """An existing key's name, scopes and expiry, shown as the create form shows them.

    ``api_key`` is the key being edited: the form starts from its values, and an
    unchanged name is not checked again (a name stored before today's rules stays
    usable while the scopes or the expiry change). The expiry is a choice: keep it
    (the default), never, or a standard lifetime counted from now.
    """

    name = name_field()
    scopes = scopes_field()
    expires_in = forms.ChoiceField(
        required=False,  # a form sent without it keeps the expiry
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Choose one of the expiry options."},
    )

    def __init__(self, *args, api_key: ApiKey, **kwargs):
        super().__init__(*args, **kwargs)
        self.api_key = api_key
        self.current_scopes = sorted(scope.code for scope in api_key.scopes.all())
        self.fields["expires_in"].choices = [(KEEP, "Keep the current expiry"), *expiry_choices()]
        if not self.is_bound:
            self.initial.setdefault("name", api_key.name)
            self.initial.setdefault("scopes", self.current_scopes)
            self.initial.setdefault("expires_in", KEEP)

    def clean_name(self) -> str:
        """The name; a changed one must pass ``validate_key_name`` (the create form's messages)."""
        name = self.cleaned_data["name"]
        if name != self.api_key.name:
            validate_key_name(name)
        return name

    def changed_name(self) -> str | None:
        """The new name, or None when it is the key's own (``lifecycle.change_key`` then leaves it)."""
        name = self.cleaned_data["name"]
        return None if name == self.api_key.name else name

    def changed_scopes(self) -> list[Scope] | None:
        """The scopes chosen, or None when they are the key's own."""
        chosen = list(self.cleaned_data["scopes"])
        return None if sorted(scope.code for scope in chosen) == self.current_scopes else chosen

    def expires_at(self, now: datetime.datetime | None = None):
        """``lifecycle.KEEP``, None (never), or the moment the chosen lifetime ends, counted from now."""
        choice = self.cleaned_data.get("expires_in") or KEEP
        if choice == KEEP:
            return lifecycle.KEEP
        if choice == NEVER:
            return None
        return (now or timezone.now()) + datetime.timedelta(days=int(choice))

    def expiry_options(self) -> list[dict]:
        """The expiry radio buttons: keep (with what the expiry is now), never, and each lifetime with its end."""
        now = timezone.now()
        radios = list(self["expires_in"])
        nothing_selected = not any(radio.data["selected"] for radio in radios)
        options = []
        for radio in radios:
            value = str(radio.data["value"])
            option = {"radio": radio, "value": value, "until": None, "current": None}
            if value == KEEP:
                option["current"] = self.api_key.expires_at
                option["expired"] = self.api_key.is_expired(now)
            elif value != NEVER:
                option["until"] = now + datetime.timedelta(days=int(value))
            option["checked"] = radio.data["selected"] or (nothing_selected and value == KEEP)
            options.append(option)
        return options

    def scope_groups(self) -> list[dict]:
        """Scopes grouped by resource, read before write, for the checkbox grid (:func:`scope_groups`)."""
        return scope_groups(self["scopes"])


class NotificationSettingsForm(forms.ModelForm):
    """Which email notices a user wants: one checkbox per ``NotificationSettings`` field.

    The notice that a key was created on the account is not a field: it cannot be turned off.
    """

    class Meta:
        model = NotificationSettings
        fields = ["changes_by_others", "expiry_reminders", "expired"]
        labels = {
            "changes_by_others": "A key was changed by someone else",
            "expiry_reminders": "A key expires soon",
            "expired": "A key has expired",
        }
        help_texts = {
            "changes_by_others": "Staff or a service revoked, disabled, enabled, rotated, renamed or rescoped "
            "one of your keys, or changed its expiry.",
            "expiry_reminders": "7 days and 1 day before a key expires, with a link to extend or rotate it.",
            "expired": "When a key's expiry has passed and it stopped working.",
        }
