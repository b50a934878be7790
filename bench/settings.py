"""Settings for the benchmark: the project's settings, plus djangorestframework-api-key.

Nothing else changes: the same middleware, REST framework defaults, logging and
database options as production. Only the app list (for the comparison library's
APIKey table) and the URL configuration (for the two bench-only views) differ.
"""

from omikeys_project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework_api_key"]  # noqa: F405
ROOT_URLCONF = "bench.urls"
