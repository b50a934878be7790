"""How a key's name is shown in HTML: isolated from the text around it, and never as nothing."""

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .. import text

register = template.Library()

# Shown instead of a name that has no visible character (one stored before names had to show one).
NO_VISIBLE_NAME = "(name not visible)"


@register.filter
def key_name(name: str) -> SafeString:
    """The name, escaped; ``<bdi>name</bdi>`` when it holds right-to-left text or a bidi control (a ``bdi``
    element is ``dir="auto"`` and isolated), so it cannot reorder the text after it; a placeholder when it
    shows nothing."""
    name = name or ""
    if not text.has_visible(name):
        return format_html('<bdi class="muted" title="{}">{}</bdi>', text.describe(name), NO_VISIBLE_NAME)
    if text.needs_isolation(name):
        return format_html("<bdi>{}</bdi>", name)
    return format_html("{}", name)


@register.filter
def key_name_text(name: str) -> str:
    """The name for plain text (a page title): between bidi isolates (``text.isolated``) when it needs them,
    or the placeholder."""
    name = name or ""
    if not text.has_visible(name):
        return NO_VISIBLE_NAME
    return text.isolated(name) if text.needs_isolation(name) else name
