"""WSGI entry point (gunicorn omikeys_project.wsgi; runserver through WSGI_APPLICATION)."""

import os

from django.core.wsgi import get_wsgi_application

from omikeys_project.request_bodies import ChunkedBodyMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omikeys_project.settings")

# A chunked request body is read (or refused), never taken as empty.
application = ChunkedBodyMiddleware(get_wsgi_application())
