"""The admin's widgets that Django ships short of WCAG 2.1 AA, each with the small script that completes it."""

from django import forms
from django.contrib.admin import widgets


def _after_django(media: forms.Media, script: str) -> forms.Media:
    # One list, so ``script`` comes after the Django script whose initialiser it wraps
    # (Media keeps the order within a list, not between lists).
    return forms.Media(css=media._css, js=[*media._js, script])


class NamedAutocompleteSelect(widgets.AutocompleteSelect):
    """Django's autocomplete select, whose Select2 combobox is named by the field's label as well as its choice.

    Select2 4.0 labels the combobox with the option it shows only, so an empty one has no
    accessible name (WCAG 4.1.2); ``autocomplete_names.js`` wraps Django's initialiser to add the label.
    """

    @property
    def media(self):
        return _after_django(super().media, "apikeys/admin/autocomplete_names.js")


class LabelledFilteredSelectMultiple(widgets.FilteredSelectMultiple):
    """Django's two-box chooser (``filter_horizontal``), whose search icons get a role for their text alternative.

    ``SelectFilter2.js`` puts ``aria-label`` on a bare ``span``, where it is not allowed
    (axe: aria-prohibited-attr); ``select_filter_icons.js`` makes each such icon ``role="img"``.
    """

    @property
    def media(self):
        return _after_django(super().media, "apikeys/admin/select_filter_icons.js")
