"""Form pieces the web pages and the admin share: the one-time form token and the grace-period choice."""

import secrets

from django import forms

from . import lifecycle

# ApiKey.request_token holds at most 64 characters; new_form_token makes 32.
FORM_TOKEN_REGEX = r"^[A-Za-z0-9_-]{16,64}$"


def new_form_token() -> str:
    """A fresh one-time token for a form that issues a key: 32 URL-safe characters."""
    return secrets.token_urlsafe(24)


class FormTokenField(forms.RegexField):
    """The hidden one-time token a key-issuing form carries, passed to ``lifecycle.issue_key`` as the
    request token: the same form sent twice (double click, reload) never issues a second key."""

    def __init__(self, **kwargs):
        super().__init__(regex=FORM_TOKEN_REGEX, widget=forms.HiddenInput, **kwargs)


class GracePeriodField(forms.TypedChoiceField):
    """How long a rotated key's replaced secret keeps working: one of ``lifecycle.GRACE_PERIODS``, in seconds.

    ``immediately`` labels 0; ``later`` labels the others, with ``{period}`` standing
    for the period's wording ("1 hour", "24 hours", "7 days").
    """

    def __init__(self, *, immediately: str, later: str, **kwargs):
        choices = [
            (seconds, later.format(period=period) if seconds else immediately)
            for seconds, period in lifecycle.GRACE_PERIODS.items()
        ]
        super().__init__(choices=choices, coerce=int, initial=0, widget=forms.RadioSelect, **kwargs)
