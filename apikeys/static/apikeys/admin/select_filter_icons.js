// Django's SelectFilter2.js gives the two-box chooser's search icons an aria-label on a bare
// span, where ARIA does not allow one; role="img" makes the label the icon's text alternative.
'use strict';
{
    const initialise = window.SelectFilter.init;

    window.SelectFilter.init = function(fieldId, ...rest) {
        const result = initialise.call(this, fieldId, ...rest);
        const chooser = document.getElementById(`${fieldId}_selector`);
        for (const icon of (chooser || document).querySelectorAll('.help-tooltip[aria-label]:not([role])')) {
            icon.setAttribute('role', 'img');
        }
        return result;
    };
}
