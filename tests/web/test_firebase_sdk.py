"""The Firebase web SDK, served as our own static files."""

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

from apikeys.web import firebase_sdk

pytestmark = pytest.mark.django_db


def test_the_sdk_version_matches_package_json():
    package = json.loads((Path(settings.BASE_DIR) / "package.json").read_text())
    pinned = package.get("dependencies", {}).get("firebase") or package["devDependencies"]["firebase"]
    assert pinned == firebase_sdk.VERSION
    assert firebase_sdk.installed_version() == firebase_sdk.VERSION


def test_only_the_two_sdk_modules_are_served():
    for name in firebase_sdk.MODULES:
        assert finders.find(f"{firebase_sdk.STATIC_DIR}/{name}")
    assert not finders.find(f"{firebase_sdk.STATIC_DIR}/package.json")
    assert not finders.find(f"{firebase_sdk.STATIC_DIR}/firebase-firestore.js")
    finder = firebase_sdk.FirebaseSdkFinder()
    assert sorted(path for path, _ in finder.list(None)) == sorted(firebase_sdk.MODULES)
    assert finder.check() == []


def test_a_missing_sdk_is_a_system_check_error(settings, tmp_path):
    settings.BASE_DIR = tmp_path
    errors = firebase_sdk.FirebaseSdkFinder().check()
    assert [e.id for e in errors] == ["apikeys.E001"]
    assert "npm ci" in errors[0].hint
