"""Input and output shapes of the leak reports."""

from dataclasses import dataclass

from rest_framework import serializers

from ..jsonapi.serializers import StrictCharField, StrictSerializer
from ..lifecycle.leaks import NOTE_MAX_LENGTH, URL_MAX_LENGTH

MAX_TOKEN_LENGTH = 200  # far longer than any key (44 characters); longer is refused, not looked up
MAX_TYPE_LENGTH = 100
MAX_SOURCE_LENGTH = 100


def one_line(value: str) -> str:
    """``value`` if it is one line of printable text; a 422 otherwise (it is kept, and mailed to the owner)."""
    if value and not value.isprintable():
        raise serializers.ValidationError("Must be one line of printable text.", code="string_pattern")
    return value


@dataclass(frozen=True)
class GitHubMatch:
    """One match of a GitHub secret-scanning alert as omikeys uses it: ``token`` ("" when not a string),
    ``usable`` (False when the entry cannot hold a key: it is answered false_positive), ``type`` and ``url``
    (printable one-line text, cut to :data:`MAX_TYPE_LENGTH` and ``URL_MAX_LENGTH`` characters; "" when
    missing or not text)."""

    token: str
    usable: bool
    type: str
    url: str


def printable(value, max_length: int) -> str:
    """``value`` as printable one-line text: "" for anything not a string (GitHub may send null), every
    character that is not printable (controls, tabs, U+2028, format characters) left out, cut to ``max_length``."""
    if not isinstance(value, str):
        return ""
    if not value.isprintable():
        value = "".join(char for char in value if char.isprintable())
    return value[:max_length]


def read_github_match(entry) -> GitHubMatch:
    """One entry of a GitHub alert, read leniently: GitHub documents ``token``, ``type``, ``url`` (which may be
    empty) and ``source``, and may add fields (ignored). One odd entry must not fail the whole alert (GitHub
    would retry it forever), so nothing here raises: an entry that is not an object, or whose ``token`` is not
    a string of 1 to :data:`MAX_TOKEN_LENGTH` characters, is not ``usable``."""
    if not isinstance(entry, dict):
        return GitHubMatch(token="", usable=False, type="", url="")
    token = entry.get("token")
    token = token if isinstance(token, str) else ""
    return GitHubMatch(
        token=token,
        usable=0 < len(token) <= MAX_TOKEN_LENGTH,
        type=printable(entry.get("type"), MAX_TYPE_LENGTH),
        url=printable(entry.get("url"), URL_MAX_LENGTH),
    )


class GitHubFeedbackSerializer(serializers.Serializer):
    """One entry of GitHub's feedback format: the SHA-256 (hex) of the token, its type, and the label."""

    token_hash = serializers.CharField(help_text="SHA-256, hex, of the reported token.")
    token_type = serializers.CharField(help_text="The type GitHub gave.")
    label = serializers.ChoiceField(
        choices=["true_positive", "false_positive"],
        help_text="true_positive: a secret of a key omikeys issued (whatever its state now); false_positive: not.",
    )


class LeakReportRequestSerializer(StrictSerializer):
    """A key someone found in public: the key, where (a URL), and a note, both optional."""

    key = StrictCharField(
        max_length=MAX_TOKEN_LENGTH,
        trim_whitespace=True,
        help_text="The key as found (omi_dev_...). The answer is the same whatever it is.",
        error_messages={"required": "Field required.", "blank": "The key must not be empty."},
    )
    url = StrictCharField(
        max_length=URL_MAX_LENGTH,
        required=False,
        default="",
        allow_blank=True,
        help_text=f"Where it was found: an http(s) URL, at most {URL_MAX_LENGTH} characters; told to the key's owner.",
    )
    note = StrictCharField(
        max_length=NOTE_MAX_LENGTH,
        required=False,
        default="",
        allow_blank=True,
        help_text=f"Anything else worth saying, one line, at most {NOTE_MAX_LENGTH} characters; told to the owner.",
    )

    def validate_url(self, value: str) -> str:
        return web_address(value)

    def validate_note(self, value: str) -> str:
        return one_line(value)


def web_address(value: str) -> str:
    """``value`` if it is empty or an http(s) URL on one line; a 422 otherwise (the owner is shown it: it must say
    where, and be nothing a mail client would run)."""
    one_line(value)
    if value and not value.lower().startswith(("https://", "http://")):
        raise serializers.ValidationError("URL scheme should be 'http' or 'https'.", code="url_scheme")
    return value


class LeakReportAcceptedSerializer(serializers.Serializer):
    """The answer to every accepted report, whatever the key."""

    detail = serializers.CharField()
