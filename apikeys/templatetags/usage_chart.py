"""A key's usage chart (``lifecycle.KeyUsage``): bars drawn as inline SVG on the server, and a table of the numbers."""

from django import template

from apikeys.lifecycle import usage_delay_seconds

register = template.Library()

# The chart's drawing box, in SVG user units; the SVG scales to the page's width.
WIDTH, HEIGHT = 300, 100
# Outcomes drawn as refused (everything but accepted).
REFUSED = ("insufficient_scope", "expired", "disabled", "revoked", "owner_inactive")
# An outcome column (lifecycle.usage.OUTCOME_OF_CODE) as people read it, as the table's headings name them.
OUTCOME_LABELS = {
    "accepted": "Accepted",
    "insufficient_scope": "Refused: missing scope",
    "expired": "Refused: expired",
    "disabled": "Refused: disabled",
    "revoked": "Refused: revoked",
    "owner_inactive": "Refused: owner inactive",
}


def outcome_label(outcome: str) -> str:
    """The human label of a usage outcome column; an unknown one (a row older than this code) shown as stored."""
    return OUTCOME_LABELS.get(outcome, outcome)


def bars(usage) -> list[dict]:
    """One bar per row of ``usage``: ``x``, ``width``, and the ``y``/``height`` of its accepted and refused parts,
    scaled so the busiest row fills the height; numbers as strings with two decimals."""
    rows = usage.rows
    step = WIDTH / max(len(rows), 1)
    scale = HEIGHT / max(usage.busiest, 1)
    drawn = []
    for index, row in enumerate(rows):
        accepted = row.counts["accepted"] * scale
        refused = sum(row.counts[o] for o in REFUSED) * scale
        drawn.append(
            {
                "row": row,
                "x": f"{index * step + step * 0.15:.2f}",
                "width": f"{step * 0.7:.2f}",
                "accepted_y": f"{HEIGHT - accepted:.2f}",
                "accepted_height": f"{accepted:.2f}",
                "refused_y": f"{HEIGHT - accepted - refused:.2f}",
                "refused_height": f"{refused:.2f}",
                "refused": sum(row.counts[o] for o in REFUSED),
            }
        )
    return drawn


@register.inclusion_tag("apikeys/_usage.html")
def usage_chart(usage, heading_level: int = 2, last_used_at=None) -> dict:
    """Render ``apikeys/_usage.html`` for a ``lifecycle.KeyUsage``: the chart, its table, the last use and addresses.

    ``heading_level``: the level of the section's heading (its parts use the next one). ``last_used_at``: the
    key's own stamp, shown as its last use when no use has been written to usage yet (the writer is up to
    ``usage_delay_seconds`` behind, and keys used before usage was counted have none), so the page never
    says "never used" of a key that was.
    """
    busiest = max(usage.rows, key=lambda row: row.total) if usage.total else None
    return {
        "usage": usage,
        "last_used_at": last_used_at,
        "bars": bars(usage),
        "used_rows": [row for row in usage.rows if row.total],
        "refused_total": sum(usage.totals[o] for o in REFUSED),
        "last_outcome": outcome_label(usage.last_use.outcome) if usage.last_use else "",
        "delay": usage_delay_seconds(),
        "busiest": busiest,
        "width": WIDTH,
        "height": HEIGHT,
        "h": f"h{heading_level}",
        "h_sub": f"h{heading_level + 1}",
    }
