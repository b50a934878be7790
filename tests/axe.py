"""Accessibility checks for the browser tests: axe-core (WCAG 2.0/2.1 A, AA) under the page's own CSP, and reflow.

axe-core comes from npm (``node_modules/axe-core``, pinned in package-lock.json). The test
serves it from the site's own origin (a Playwright route answers ``AXE_PATH``) and adds it
as an ordinary ``<script src>``, so the page's real Content-Security-Policy decides whether
it may run, exactly as for the site's own scripts; nothing bypasses the policy.
"""

from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

AXE_SOURCE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"
# Same origin as the pages (so 'self' in script-src covers it), and a path the site never serves.
AXE_PATH = "/__tests__/axe-core/axe.min.js"
# WCAG 2.0 and 2.1, levels A and AA: the rules axe tags so (https://github.com/dequelabs/axe-core/blob/develop/doc/API.md#axe-core-tags).
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")

# Elements whose right edge passes the viewport's, for a readable reflow failure.
_OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.classList.length ? '.' + [...el.classList].join('.') : '');
  const clipped = (el) => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== 'visible') return true;
    }
    return false;
  };
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    const right = box.left + Math.max(box.width, el.scrollWidth);
    if (box.width > 1 && right > width + 0.5 && !clipped(el)) wide.push([el, right]);
  }
  // The innermost of them: what actually sticks out, not every ancestor around it.
  const out = wide.filter(([el]) => !wide.some(([other]) => other !== el && el.contains(other)))
    .map(([el, right]) => `${name(el)} (right edge ${Math.round(right)} px)`);
  return {scrollWidth: document.documentElement.scrollWidth, clientWidth: width, culprits: out.slice(0, 8)};
}"""


def serve_axe(context) -> None:
    """Make every page of ``context`` able to fetch axe-core from its own origin at ``AXE_PATH``."""
    source = AXE_SOURCE.read_bytes()
    context.route(
        f"**{AXE_PATH}",
        lambda route: route.fulfill(status=200, body=source, content_type="text/javascript; charset=utf-8"),
    )


def axe_violations(page) -> list[dict]:
    """axe-core's WCAG 2.0/2.1 A and AA violations on the page as it is now (``axe.run`` results' ``violations``).

    Loads axe-core with a ``<script src>`` on first use in a document: a page whose CSP refused it
    fails here (Playwright raises), which is the point.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(url=AXE_PATH)
    return page.evaluate(
        """tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
                 .then(results => results.violations)""",
        list(WCAG_TAGS),
    )


def describe_violations(violations: list[dict]) -> list[str]:
    """One readable paragraph per violated rule: its id, impact, help text and the first offending elements."""
    lines = []
    for violation in violations:
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
        shown = "; ".join(targets[:5]) + (f"; and {len(targets) - 5} more" if len(targets) > 5 else "")
        summary = " ".join((violation["nodes"][0].get("failureSummary") or "").split())
        lines.append(
            f"{violation['id']} ({violation['impact']}): {violation['help']} [{shown}] {summary} {violation['helpUrl']}"
        )
    return lines


def horizontal_overflow(page) -> str | None:
    """None when the page does not scroll sideways (document scrollWidth <= clientWidth), else what sticks out."""
    measured = page.evaluate(_OVERFLOWING)
    if measured["scrollWidth"] <= measured["clientWidth"]:
        return None
    return (
        f"scrolls sideways: scrollWidth {measured['scrollWidth']} > clientWidth {measured['clientWidth']}; "
        f"sticking out: {', '.join(measured['culprits']) or 'nothing visible'}"
    )


@dataclass
class Layout:
    """A window to check pages in: its CSS viewport and its device scale factor."""

    name: str
    width: int
    height: int
    scale: float = 1
    reflows: bool = False  # 320 CSS px wide or zoomed: the page must not scroll sideways (WCAG 1.4.10)

    def context_options(self) -> dict:
        return {"viewport": {"width": self.width, "height": self.height}, "device_scale_factor": self.scale}


# A desktop window; a phone 320 CSS px wide; a 1280 x 800 window at 200 % zoom (640 x 400 CSS px at scale 2).
LAYOUTS = (
    Layout("desktop", 1280, 800),
    Layout("320px", 320, 640, reflows=True),
    Layout("zoom200", 640, 400, scale=2, reflows=True),
)


@dataclass
class Findings:
    """Every problem found on every page of one walk, reported together at the end."""

    layout: Layout
    problems: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)

    def check(self, page, label: str) -> None:
        """Run axe (and, for a reflowing layout, the sideways-scroll check) on ``page``, recording what fails."""
        self.pages.append(label)
        where = f"{label} ({page.url}) at {self.layout.name}"
        for line in describe_violations(axe_violations(page)):
            self.problems.append(f"{where}: {line}")
        if self.layout.reflows and (overflow := horizontal_overflow(page)):
            self.problems.append(f"{where}: {overflow}")

    def assert_none(self) -> None:
        assert not self.problems, f"{len(self.problems)} accessibility problem(s):\n" + "\n".join(self.problems)


# What the focused element looks like: an outline, or a box-shadow ring, counts as a visible focus.
_FOCUS_SHOWN = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const named = el.getAttribute('name');
  const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (named ? `[name=${named}]` : '');
  const shown = (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== 'none';
  return {name, shown};
}"""


def unseen_focus(page, presses: int) -> list[str]:
    """Press Tab ``presses`` times from the top of the page; the focused elements that showed no focus indicator."""
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    unseen = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        focused = page.evaluate(_FOCUS_SHOWN)
        if focused and not focused["shown"]:
            unseen.append(focused["name"])
    return unseen
