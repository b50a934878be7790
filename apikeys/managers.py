"""The managers of the users and scopes: finding a Firebase user, the users who may hold keys, resolving scope codes."""

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import UserManager
from django.core.exceptions import ValidationError
from django.db import models

if TYPE_CHECKING:
    from .models import Scope, User


class FirebaseUserManager(UserManager):
    """Users as Firebase knows them: one per uid."""

    def for_firebase(self, uid: str, email: str | None) -> "User":
        """The one Django user for a Firebase uid, created the first time the uid is seen.

        Firebase is the source of truth for identity, so the email is copied over
        whenever it changes there; nothing else about the user is touched. Two
        first requests racing each other both end with the same row, because
        ``get_or_create`` falls back to a read when the insert loses.
        """
        email = email or ""
        if len(email) > self.model._meta.get_field("email").max_length:
            email = ""  # Firebase allows longer addresses than the column holds
        user, created = self.get_or_create(
            firebase_uid=uid,
            defaults={
                "username": self.model.username_for_uid(uid),
                "email": email,
                "password": make_password(None),  # Firebase users never sign in with a Django password
            },
        )
        if not created and user.email != email:
            user.email = email
            user.save(update_fields=["email"])
        return user

    def key_holders(self):
        """Users who may hold keys as far as the database knows: active, with a Firebase uid."""
        return self.filter(is_active=True, firebase_uid__isnull=False)


class ScopeQuerySet(models.QuerySet):
    """``Scope.objects``: scopes looked up by the codes clients send."""

    def resolve(self, codes: Iterable[str]) -> list["Scope"]:
        """The Scope rows named by ``codes`` (strings such as "memories:read"), in the order given, each once.

        One query, whatever the codes: the scopes are few, and are compared here rather
        than in SQL, so any string a client sends (a NUL byte included) is just unknown.
        Unknown codes raise ``ValidationError({"scopes": ...})`` naming every one of them;
        its single error has the code "unknown_scope" and the params ``unknown`` (the
        unknown codes, in the order given) and ``valid`` (every known code, sorted and
        comma-separated), so a door can word the refusal its own way.
        """
        wanted = list(dict.fromkeys(codes))
        available = {scope.code: scope for scope in self.all()}
        unknown = [code for code in wanted if code not in available]
        if unknown:
            error = ValidationError(
                "Unknown scope%(plural)s %(listed)s. Valid scopes: %(valid)s.",
                code="unknown_scope",
                params={
                    "plural": "s" if len(unknown) > 1 else "",
                    "listed": ", ".join(map(repr, unknown)),
                    "unknown": unknown,
                    "valid": ", ".join(sorted(available)),
                },
            )
            raise ValidationError({"scopes": error})
        return [available[code] for code in wanted]
