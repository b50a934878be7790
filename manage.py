#!/usr/bin/env python
"""Django's command-line utility for omikeys."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omikeys_project.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A missing or malformed setting: say which, without a traceback.
        sys.exit(f"error: {exc}\n(Locally, scripts/manage runs commands with the development settings.)")


if __name__ == "__main__":
    main()
