"""Accessibility checks for the browser tests: axe-core (tests/e2e/vendor/axe-core, from the npm registry) run
in the page under test, and the colour scheme and language a page is seen in.

axe is injected with execute_script, so the site never serves it.
"""

from functools import cache
from pathlib import Path

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = {"serious", "critical"}


@cache
def axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


def axe_violations(driver, context=None) -> list[dict]:
    """The page's WCAG 2.1 A/AA violations of impact serious or critical, as axe reports them
    (id, impact, help, nodes). `context`: a CSS selector or an axe context object; None, the whole page."""
    if not driver.execute_script("return Boolean(window.axe)"):
        driver.execute_script(axe_source())
    result = driver.execute_async_script(
        """
        const [context, tags, done] = arguments;
        axe.run(context || document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]})
          .then((results) => done({violations: results.violations}), (error) => done({error: String(error)}));
        """,
        context,
        WCAG_21_AA,
    )
    if "error" in result:
        raise RuntimeError(f"axe failed: {result['error']}")
    return [violation for violation in result["violations"] if violation["impact"] in BLOCKING]


def describe(violations: list[dict], limit: int = 5) -> str:
    """Violations as lines a person can act on: the rule, its impact, what it asks, and where."""
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:limit]:
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            lines.append(f"    {' '.join(map(str, node['target']))}  {node['html'][:160]}  -> {summary[:300]}")
        if len(violation["nodes"]) > limit:
            lines.append(f"    ... and {len(violation['nodes']) - limit} more")
    return "\n".join(lines)


def emulate_color_scheme(driver, scheme: str) -> None:
    """Make the page see prefers-color-scheme `scheme` ("light" or "dark"), as a system setting would."""
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"media": "", "features": [{"name": "prefers-color-scheme", "value": scheme}]}
    )


def force_theme(driver, theme: str | None) -> None:
    """Set <html data-theme> as the person's theme setting renders it (None: no attribute, the system's)."""
    if theme is None:
        driver.execute_script("document.documentElement.removeAttribute('data-theme')")
    else:
        driver.execute_script("document.documentElement.dataset.theme = arguments[0]", theme)


def set_language(driver, base_url: str, language: str) -> None:
    """The language the site answers in from the next page on (Django's language cookie)."""
    if not driver.current_url.startswith(base_url):
        driver.get(base_url + "/healthz")
    driver.add_cookie({"name": "chat_language", "value": language, "path": "/"})
