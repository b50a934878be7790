"""Input and output shapes of the leak reports."""

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


class GitHubMatchSerializer(serializers.Serializer):
    """One match in a GitHub secret-scanning alert: ``token``, ``type``, ``url`` and ``source`` (GitHub may add
    fields; they are ignored)."""

    token = StrictCharField(max_length=MAX_TOKEN_LENGTH, trim_whitespace=False)
    type = StrictCharField(max_length=MAX_TYPE_LENGTH, required=False, default="", allow_blank=True)
    url = StrictCharField(max_length=URL_MAX_LENGTH, required=False, default="", allow_blank=True)
    source = StrictCharField(max_length=MAX_SOURCE_LENGTH, required=False, default="", allow_blank=True)

    def validate_url(self, value: str) -> str:
        return one_line(value)


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
