"""Forms for the web pages: the same rules as the API, with errors shown beside each field."""

import secrets
from collections import defaultdict

from django import forms

from ..models import KEY_NAME_MAX_LENGTH, Scope, validate_key_name


def new_form_token() -> str:
    return secrets.token_urlsafe(24)


class SignInForm(forms.Form):
    """What the sign-in page posts once the browser has signed in with Firebase."""

    id_token = forms.CharField(max_length=8192, error_messages={"required": "Sign in with Firebase first."})
    next = forms.CharField(required=False, max_length=2048)


class KeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=None,  # validate_key_name owns the limit, so the message matches the API's
        validators=[validate_key_name],
        error_messages={"required": "The name must not be empty."},
        widget=forms.TextInput(
            attrs={"maxlength": KEY_NAME_MAX_LENGTH, "autocomplete": "off", "spellcheck": "false"}
        ),
        help_text="Something that tells you where the key is used, like “Zapier sync”.",
    )
    scopes = forms.ModelMultipleChoiceField(
        queryset=Scope.objects.order_by("code"),
        to_field_name="code",
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": "Choose at least one scope.",
            "invalid_choice": "Unknown scope %(value)s.",
        },
    )
    # One-time token, passed to issue_key as the request token: a form sent again
    # (reload, back button, double click) never creates a second key.
    form_token = forms.RegexField(
        regex=r"^[A-Za-z0-9_-]{16,64}$",
        widget=forms.HiddenInput,
        error_messages={"required": "The form was incomplete. Check the details and create the key again."},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("scopes", [s.code for s in Scope.objects.filter(is_default=True)])
            self.initial.setdefault("form_token", new_form_token())

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
        """Scopes grouped by resource, read before write, for the checkbox grid."""
        order = {"read": 0, "write": 1}
        groups: dict[str, list] = defaultdict(list)
        for checkbox in self["scopes"]:
            resource, _, action = str(checkbox.data["value"]).partition(":")
            groups[resource].append((order.get(action, 2), action, checkbox))
        return [
            {"resource": resource, "label": resource.replace("_", " ").capitalize(),
             "choices": [(action, checkbox) for _, action, checkbox in sorted(items, key=lambda i: i[:2])]}
            for resource, items in sorted(groups.items())
        ]
