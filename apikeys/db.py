"""Database expressions Django does not ship for every backend."""

from django.db.models import Aggregate, CharField


class GroupConcat(Aggregate):
    """The values of a group joined with commas: ``STRING_AGG`` on PostgreSQL, ``GROUP_CONCAT`` on SQLite.

    The order of the values is not defined.
    """

    function = "GROUP_CONCAT"
    template = "%(function)s(%(expressions)s)"
    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler, connection, function="STRING_AGG", template="%(function)s(%(expressions)s, ',')", **extra_context
        )
