"""django-axes' database handler, with a successful sign-in clearing only that account's failures."""

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt


class AccountResetHandler(AxesDatabaseHandler):
    """``AXES_HANDLER``: as :class:`axes.handlers.database.AxesDatabaseHandler`, except the reset on a
    successful sign-in.

    With ``AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]`` axes' own reset deletes every
    failed attempt matching *either* parameter: the signing-in account's, and every account's
    from the same address. One staff member's successful sign-in would then wipe the failures
    an attacker at that address piled up against another account, and the guessing could go
    on. Here only the failures recorded for the account that proved its password are deleted
    (from any address); other accounts' failures keep counting, per account and per address.
    """

    def reset_user_attempts(self, request, credentials=None) -> int:
        """Delete the failed attempts recorded for the signing-in username; return how many."""
        username = get_client_username(request, credentials)
        if not username:
            return 0
        deleted, _ = AccessAttempt.objects.filter(username=username).delete()
        return deleted
