// Select2, behind Django's autocomplete fields, names its combobox only by the option it shows,
// so an empty one has no accessible name (WCAG 4.1.2). This wraps Django's initialiser so each
// combobox is named by the field's label and then its current choice ("Owner: alice@…"), and
// described by what describes the hidden select (the field's help and errors).
'use strict';
{
    const $ = django.jQuery;
    const initialise = $.fn.djangoAdminSelect2;

    function nameCombobox(select) {
        const label = select.id && document.querySelector(`label[for="${select.id}"]`);
        const container = select.nextElementSibling;
        const combobox = container && container.querySelector('.select2-selection[role="combobox"]');
        const shown = combobox && combobox.querySelector('.select2-selection__rendered');
        if (!label || !combobox) {
            return;
        }
        label.id = label.id || `${select.id}_label`;
        if (shown) {
            // Select2 makes the shown choice an unnamed read-only "textbox" inside the combobox:
            // it is the combobox's value, not a control of its own.
            shown.removeAttribute('role');
            shown.removeAttribute('aria-readonly');
        }
        combobox.setAttribute('aria-labelledby', shown && shown.id ? `${label.id} ${shown.id}` : label.id);
        const description = select.getAttribute('aria-describedby');
        if (description) {
            combobox.setAttribute('aria-describedby', description);
        }
        if (select.getAttribute('aria-invalid') === 'true') {
            combobox.setAttribute('aria-invalid', 'true');
        }
    }

    $.fn.djangoAdminSelect2 = function() {
        initialise.apply(this, arguments);
        $.each(this, (i, select) => nameCombobox(select));
        return this;
    };
}
