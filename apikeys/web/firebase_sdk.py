"""The Firebase web SDK's browser modules, served as our own static files.

Sign-in pages import ``firebase-app.js`` and ``firebase-auth.js`` from the npm
package ``firebase`` (pinned in package.json), so the browser never loads code
from a CDN. Only those two files are exposed, under a versioned path, rather
than the whole 50 MB package.
"""

import json
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import Error
from django.core.files.storage import FileSystemStorage

# Must equal the version of "firebase" in package.json (a test checks it): the
# auth module imports the app module by its CDN address, which carries the version.
VERSION = "12.19.0"
MODULES = ("firebase-app.js", "firebase-auth.js")
STATIC_DIR = f"vendor/firebase/{VERSION}"
CDN_BASE = f"https://www.gstatic.com/firebasejs/{VERSION}"


def package_dir() -> Path:
    """Where npm installed the ``firebase`` package."""
    return Path(settings.BASE_DIR) / "node_modules" / "firebase"


def installed_version() -> str | None:
    """The installed Firebase JS SDK's version ("12.19.0"), or None when it is not installed."""
    try:
        return json.loads((package_dir() / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


class FirebaseSdkFinder(BaseFinder):
    """A static files finder for ``vendor/firebase/<version>/firebase-{app,auth}.js``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=package_dir())
        self.storage.prefix = STATIC_DIR  # where collectstatic puts the files

    def check(self, **kwargs):
        found = installed_version()
        if found is None:
            return [
                Error(
                    "The Firebase web SDK is not installed, so the sign-in page cannot load.",
                    hint="Run 'npm ci' in the project folder (scripts/dev and scripts/test do).",
                    id="apikeys.E001",
                )
            ]
        if found != VERSION:
            return [
                Error(
                    f"node_modules has Firebase web SDK {found}, but the pages expect {VERSION}.",
                    hint="Run 'npm ci', or update apikeys/web/firebase_sdk.VERSION with package.json.",
                    id="apikeys.E002",
                )
            ]
        return []

    def find(self, path, find_all=False, **kwargs):
        directory, _, name = path.rpartition("/")
        if directory == STATIC_DIR and name in MODULES:
            candidate = package_dir() / name
            if candidate.is_file():
                match = str(candidate)
                return [match] if find_all else match
        return []  # what Django's own finders return for no match, whatever find_all says

    def list(self, ignore_patterns):
        for name in MODULES:
            if self.storage.exists(name):
                yield name, self.storage
