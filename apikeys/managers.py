"""The managers of the users and scopes: finding a Firebase user, the users who may hold keys, resolving scope codes."""

import secrets
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.models import UserManager
from django.core.exceptions import ValidationError
from django.db import models

from . import bulk

if TYPE_CHECKING:
    from .models import Scope, User


class FirebaseUserManager(UserManager):
    """Users as Firebase knows them: one per uid."""

    def for_firebase(self, uid: str, email: str | None) -> "User":
        """The one Django user for a Firebase uid, created the first time the uid is seen.

        Firebase is the source of truth for identity, so the email is copied over
        whenever it changes there (never back onto an erased user: ``lifecycle.erase_user``);
        nothing else about the user is touched. Two
        first requests racing each other both end with the same row, because
        ``get_or_create`` falls back to a read when the insert loses.
        """
        email = self._storable_email(email)
        user, created = self.get_or_create(firebase_uid=uid, defaults=self._new_user_fields(uid, email))
        if not created and user.email != email and not user.is_erased:
            user.email = email
            user.save(update_fields=["email"])
        return user

    def for_firebase_uids(self, emails: Mapping[str, str | None]) -> tuple[dict[str, "User"], list[str]]:
        """:meth:`for_firebase` for many uids at once: ``({uid: user}, the uids whose users were created)``.

        ``emails`` maps each uid to its Firebase email, or to ``None`` when Firebase was
        not asked: a new user then gets no email and an existing one keeps its own. The
        same rule as sign-in (one user per uid, the email copied from Firebase) in a few
        queries whatever the count, for importers. Concurrent creation of the same uid
        is safe: the insert ignores the row another process made, and the read after it
        finds whichever row won. A uid whose user cannot be made is left out of the result.
        """
        wanted = {uid: None if email is None else self._storable_email(email) for uid, email in emails.items()}
        users = {user.firebase_uid: user for user in self.filter(firebase_uid__in=wanted)}
        missing = [uid for uid in wanted if uid not in users]
        if missing:
            new_users = [
                self.model(firebase_uid=uid, **self._new_user_fields(uid, wanted[uid] or "")) for uid in missing
            ]
            bulk.insert(self.model, new_users, using=self.db, ignore_conflicts=True)
            users.update((user.firebase_uid, user) for user in self.filter(firebase_uid__in=missing))
        changed = []
        for uid, email in wanted.items():
            user = users.get(uid)  # None only if the username "firebase:<uid>" belongs to another row
            if user is not None and email is not None and user.email != email and not user.is_erased:
                user.email = email
                changed.append(user)
        if changed:
            self.bulk_update(changed, ["email"])
        return users, missing

    def _storable_email(self, email: str | None) -> str:
        email = email or ""
        # Firebase allows longer addresses than the column holds.
        return "" if len(email) > self.model._meta.get_field("email").max_length else email

    def _new_user_fields(self, uid: str, email: str) -> dict:
        return {
            "username": self.model.username_for_uid(uid),
            "email": email,
            # Firebase users never sign in with a Django password: what make_password(None) makes, faster.
            "password": UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30),
        }

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
