"""Every admin page, found from the app's routes, opened in Chromium: the browser test's list of
pages and ``make gallery``'s screenshots (docs/admin/*.png).

The pages are read from the running app's route mapper and view registrations (every
``admin_*`` route with a GET view), so a page added tomorrow is opened too; a route whose
path has a placeholder this module has no sample value for fails loudly, naming it.

``make gallery`` runs ``python -m tests.admin.gallery docs/admin``: a temporary SQLite
database with the sample rules (the admin tests' database), the app served on a free port,
every page opened as the owner, zero console errors asserted, one PNG per page written.
"""

from __future__ import annotations

import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyramid.interfaces import IRoutesMapper
from pyramid.paster import get_appsettings
from waitress.server import create_server

from approvalrules.app import main as make_app

from .conftest import ROOT, TESTING_INI, build_database

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the browser tests skip, the gallery says why
    sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

#: sample values of path placeholders, per route first, then by placeholder name
SAMPLES_BY_ROUTE = {
    "admin_company": {"id": "acme"},
    "admin_account": {"id": "bob"},
    "admin_approval": {"id": "1"},  # the sample order PO-800's request
    "admin_group": {"id": "acme", "group": "marketing"},
    "admin_membership": {"id": "bill", "company": "abc1234"},  # PointForce's settings
}
SAMPLES = {"name": "acme", "number": "1"}

#: routes that are not pages: the login (opened logged out), the logout, the bulk-sync
#: export (a JSON or CSV download); and files (a path ending in an extension: the chain's
#: SVG, the directory's YAML export)
NOT_PAGES = {"admin_logout", "admin_login", "admin_directory_download"}
FILE = re.compile(r"\.[a-z]+$")

#: a few more scenes for the gallery: (file name, path, what to do on the page)
SCENES = (
    ("evaluate-decision", "/admin/evaluate", "evaluate"),
    ("ruleset-beyond", "/admin/rulesets/beyond", None),
    ("ruleset-initech", "/admin/rulesets/initech", None),
    ("ruleset-max", "/admin/rulesets/max", None),
)
#: the tallest screenshot kept; a longer page is cut there (the acme form is very long)
MAX_HEIGHT = 6000


def admin_get_routes(app) -> list[tuple[str, str]]:
    """(route name, pattern) of every admin route that answers GET, as the app registered them."""
    registry = app.registry
    getable = set()
    for view in registry.introspector.get_category("views"):
        intr = view["introspectable"]
        methods = intr["request_methods"]
        if intr["route_name"] and (
            methods is None or "GET" in (methods if isinstance(methods, tuple) else (methods,))
        ):
            getable.add(intr["route_name"])
    mapper = registry.getUtility(IRoutesMapper)
    return [
        (route.name, route.pattern)
        for route in mapper.get_routes()
        if route.name.startswith("admin") and route.name in getable
    ]


def page_path(name: str, pattern: str) -> str:
    """``pattern`` with its placeholders filled from the samples; KeyError naming what is
    missing."""

    def fill(match: re.Match) -> str:
        key = match.group(1).split(":", 1)[0]
        value = SAMPLES_BY_ROUTE.get(name, {}).get(key, SAMPLES.get(key))
        if value is None:
            raise KeyError(
                f"route {name} ({pattern}): no sample value for {{{key}}}; "
                "add one to SAMPLES_BY_ROUTE or SAMPLES in tests/admin/gallery.py"
            )
        return value

    return re.sub(r"\{([^}]+)\}", fill, pattern)


def admin_pages(app) -> list[tuple[str, str]]:
    """(route name, path) of every admin page to open."""
    return [
        (name, page_path(name, pattern))
        for name, pattern in admin_get_routes(app)
        if name not in NOT_PAGES and not FILE.search(pattern)
    ]


@contextmanager
def served(app) -> Iterator[str]:
    """``app`` on http://127.0.0.1:<free port>, in a thread, while the block runs."""
    httpd = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=httpd.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.effective_port}"
    finally:
        httpd.close()
        thread.join(timeout=5)


class ConsoleErrors:
    """Console errors and failed requests of a page, each with the address it happened on."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on(
            "console",
            lambda m: self.errors.append(f"{page.url}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: {e}"))


def log_in(page, tenant="demo", login="olive", password="owner-password") -> None:
    page.goto("/admin/login")
    page.get_by_label("Tenant").fill(tenant)
    page.get_by_label("Login").fill(login)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/admin(/rulesets)?$"))


def evaluate_an_order(page) -> None:
    """The playground with a decision on screen: bob orders 800."""
    page.locator("select[name=buyer]").select_option("bob")
    page.locator("input[name=total]").fill("800")
    page.get_by_role("button", name="Evaluate").click()
    page.locator("#decision").wait_for()


def shoot(page, path: Path) -> None:
    height = page.evaluate("document.documentElement.scrollHeight")
    if height <= MAX_HEIGHT:
        page.screenshot(path=str(path), full_page=True)
    else:
        width = page.viewport_size["width"]
        page.screenshot(
            path=str(path),
            full_page=True,
            clip={"x": 0, "y": 0, "width": width, "height": MAX_HEIGHT},
        )


def gallery(app, out: Path) -> list[Path]:
    """Open every admin page as the owner, assert no console error, write one PNG each."""
    if sync_playwright is None:
        raise SystemExit("playwright is not installed: .venv/bin/pip install playwright")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with served(app) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=base, viewport={"width": 1366, "height": 900})
        page = context.new_page()
        page.set_default_timeout(90_000)  # the acme form page is long; the CPU may be busy
        console = ConsoleErrors(page)
        page.goto("/admin/login?tenant=demo")
        shoot(page, out / "admin_login.png")
        written.append(out / "admin_login.png")
        log_in(page)
        for name, path in admin_pages(app):
            response = page.goto(path)
            assert response is not None and response.ok, f"{path}: {response and response.status}"
            shoot(page, out / f"{name}.png")
            written.append(out / f"{name}.png")
        for name, path, action in SCENES:
            page.goto(path)
            if action == "evaluate":
                evaluate_an_order(page)
            shoot(page, out / f"{name}.png")
            written.append(out / f"{name}.png")
        context.close()
        browser.close()
    assert not console.errors, "console errors:\n" + "\n".join(console.errors)
    return written


def main(argv: list[str]) -> int:
    """``python -m tests.admin.gallery OUT``: the sample database, the app, the screenshots."""
    out = Path(argv[0] if argv else ROOT / "docs" / "admin")
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "gallery.sqlite"
        build_database(database)
        settings = dict(get_appsettings(str(TESTING_INI), name="main"))
        settings["sqlalchemy.url"] = f"sqlite:///{database}"
        settings["approvalrules.rules_dir"] = str(ROOT / "rules")
        app = make_app({}, **settings)
        written = gallery(app, out)
        app.registry["dbengine"].dispose()
    print(f"gallery: {len(written)} pages, no console errors, PNGs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
