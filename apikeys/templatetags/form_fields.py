"""How the web pages tie a form field's help and errors to its controls: ``aria-describedby`` and ``aria-invalid``.

Every control of the end-user forms (a text input, each checkbox of a group, each radio
button) names its help and, when its field has errors, the error message beside it, and is
marked invalid then (WCAG 2.1 success criteria 1.3.1, 3.3.1 and 4.1.2). A group's message
is tied to every control of the group, not only to its ``fieldset``, which screen readers
do not announce when a control inside takes the focus.
"""

from django import template
from django.forms import BoundField
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def control_aria(field: BoundField, error_id: str, *help_ids: str) -> SafeString:
    """The ARIA attributes of one control of ``field``, with a leading space.

    ``aria-describedby`` names ``help_ids`` (empty ones skipped), then ``error_id`` when the
    field has errors; ``aria-invalid="true"`` is added then too. Nothing when there is
    nothing to name.
    """
    ids = [help_id for help_id in help_ids if help_id]
    if field.errors:
        ids.append(error_id)
    attributes = []
    if ids:
        attributes.append(("aria-describedby", " ".join(ids)))
    if field.errors:
        attributes.append(("aria-invalid", "true"))
    return format_html_join("", ' {}="{}"', attributes)


@register.inclusion_tag("apikeys/_field_error.html")
def field_error(field: BoundField, error_id: str, alert: bool = False) -> dict:
    """The message beside ``field`` when it has errors (``<p id=error_id class="field-error">``); nothing otherwise.

    ``alert`` adds ``role="alert"`` for a message the focus does not move to (a group's).
    """
    return {"errors": field.errors, "error_id": error_id, "alert": alert}
