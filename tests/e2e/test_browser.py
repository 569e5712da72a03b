"""The snippet in a real browser: headless Chromium (Debian's, driven by Selenium through its
ChromeDriver) loads a shop's page that installs px.js with one tag, against `make dev`'s stack.

The shop's host names resolve to 127.0.0.1 through Chromium's host-resolver rules, so the page's
Origin is a real domain: the one attached to the pixel, or one that is not.
"""

import http.server
import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devtools.net import free_port
from tests.support.dev_stack import DEV_AUTH, REPO_ROOT, DevStack
from tests.support.documents import DOMAINS, PIXEL, PIXELS, SEED_QUERY, SETUP, SETUP_VARIABLES, STATS

SHOP = "shop.example.com"
STRANGER = "evil.example"
FBP = "fb.1.1596403881668.1116446470"
FBC = "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890"
# A visitor's browser (headless Chromium says "HeadlessChrome", which is a bot's user agent).
VISITOR_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
)
CRAWLER_AGENT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
EVIDENCE_DIR = REPO_ROOT / ".local" / "test-artifacts"
DEADLINE_SECONDS = 60
REFUSED = (
    "refused: unknown pixel or origin not attached"  # the access log's outcome (pixel_core.browser_events)
)
STATUS = """query S($tenantId: ID!) { tenantQueries(tenantId: $tenantId) { account { signalConfigs {
  connectionStatus { pixelID totalEventsReceived totalEventsFromBots totalEventsRateLimited } } } } }"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title>
<script>window.pxg = window.pxg || function(){(pxg.q=pxg.q||[]).push(arguments)}</script>
<script async src="http://127.0.0.1:__GATEWAY_PORT__/px.js" data-pixel="__PIXEL__"></script>
</head>
<body style="font: 24px sans-serif">
<h1>A shop on <span id="host"></span></h1>
<p id="status">px.js not loaded yet</p>
<script>
document.getElementById("host").textContent = location.host;
pxg("track", "Purchase", {value: 42.5, currency: "EUR"}, {eventID: "order-42-" + location.hostname});
window.addEventListener("load", function () {
  document.getElementById("status").textContent =
    window.pxg && window.pxg.loaded ? "px.js loaded: PageView and Purchase sent" : "px.js missing";
});
</script>
</body></html>
"""


# The seeds' inline-secret page, made hostile: a page script calling an admin operation.
REMOVE_DOMAIN = {
    "query": SEED_QUERY,
    "variables": {"auth": DEV_AUTH, "event": {"pixel_id": int(PIXEL), "action": "remove", "domain": SHOP}},
}
ADMIN_FROM_THE_PAGE = """
const [port, body, done] = arguments;
const url = "http://127.0.0.1:" + port + "/graphql";
const attempt = (headers, mode) => fetch(url, {method: "POST", mode, headers, body: JSON.stringify(body)})
  .then(() => "sent", (error) => "failed: " + error);
Promise.all([
  attempt({"Content-Type": "application/json"}, "cors"),
  attempt({"Content-Type": "text/plain"}, "no-cors"),
]).then(([json, plain]) => done({json, plain}));
"""


def stack_log_records(stack: DevStack) -> list[dict[str, Any]]:
    records = []
    for line in stack.log_path.read_text().splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def browser_binaries() -> tuple[str, str]:
    """Chromium and its ChromeDriver, as scripts/bootstrap installs them; fails saying what is missing."""
    browser = next(
        (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))),
        None,
    )
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail(
            "The browser test needs Chromium and ChromeDriver on PATH: `scripts/bootstrap test` installs "
            "Debian's (apt-get install chromium chromium-driver); install them by hand where it cannot.",
            pytrace=False,
        )
    return browser, driver


class ShopPages(http.server.ThreadingHTTPServer):
    """The shop's page, for any host name, with Meta's cookies already set (as Meta's pixel would)."""

    def __init__(self, gateway_port: int) -> None:
        self.page = PAGE.replace("__GATEWAY_PORT__", str(gateway_port)).replace("__PIXEL__", PIXEL).encode()
        super().__init__(("127.0.0.1", free_port()), _PageHandler)


class _PageHandler(http.server.BaseHTTPRequestHandler):
    server: ShopPages

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.server.page)))
        self.send_header("Set-Cookie", f"_fbp={FBP}; Path=/; SameSite=Lax")
        self.send_header("Set-Cookie", f"_fbc={FBC}; Path=/; SameSite=Lax")
        self.end_headers()
        self.wfile.write(self.server.page)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DevStack]:
    stack = DevStack(tmp_path / "dynamodb")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def pages(stack: DevStack) -> Iterator[ShopPages]:
    server = ShopPages(stack.port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = browser_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        # No network here: these would only fail, many at a time, at every start.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1000,600",
        f"--user-agent={VISITOR_AGENT}",
        f"--host-resolver-rules=MAP {SHOP} 127.0.0.1, MAP *.{SHOP} 127.0.0.1, MAP {STRANGER} 127.0.0.1",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def visit(driver: Any, url: str, user_agent: str = VISITOR_AGENT) -> None:
    """Loads the page as a visitor with this user agent, until the snippet has run."""
    driver.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": user_agent})
    driver.get(url)
    wait_for(lambda: driver.execute_script("return !!(window.pxg && window.pxg.loaded)"), f"px.js on {url}")


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {DEADLINE_SECONDS} s")


def received_at_meta(stack: DevStack) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.env['META_PORT']}/__received", timeout=5) as answer:
        events: list[dict[str, Any]] = json.loads(answer.read())["events"]
    return events


def pixel_status(stack: DevStack) -> dict[str, Any]:
    answer = stack.graphql(STATUS, {"tenantId": "IaoreXfj"}, path="/capig/graphql/", basic=True)
    (config,) = answer["data"]["tenantQueries"]["account"]["signalConfigs"]
    status: dict[str, Any] = config["connectionStatus"]
    return status


@pytest.mark.slow
def test_the_snippet_in_chromium_counts_a_pageview_sends_a_purchase_with_meta_cookies_refuses_a_stranger_flags_a_bot_and_the_page_cannot_act_as_admin(
    chromium: Any,
    stack: DevStack,
    pages: ShopPages,  # the browser first: without one, fail at once
) -> None:
    # Given a pixel connected to (the local) Meta, with the shop's domain attached
    assert "errors" not in stack.graphql(SETUP, SETUP_VARIABLES, path="/capig/graphql/", basic=True)
    added = stack.graphql(
        DOMAINS, {"event": {"pixel_id": int(PIXEL), "action": "add", "domain": SHOP}}, basic=True
    )
    assert added["data"]["domains"]["code"] == 200
    port = pages.server_address[1]

    # When the same page is opened on a domain that is not attached
    visit(chromium, f"http://{STRANGER}:{port}/")
    # Then its events are refused at once, counted nowhere (the stack's log says so)
    wait_for(lambda: REFUSED in stack.log_path.read_text(), "the stranger's events refused")

    # When a crawler opens the shop's page
    visit(chromium, f"http://www.{SHOP}:{port}/", user_agent=CRAWLER_AGENT)
    # Then its PageView and Purchase are counted as dropped by a bot, and never reach Meta
    wait_for(lambda: pixel_status(stack)["totalEventsFromBots"] == 2, "the crawler's events counted as bots'")

    # When a visitor opens it (and the page tracks a Purchase through the stub queue)
    visit(chromium, f"http://www.{SHOP}:{port}/")
    EVIDENCE_DIR.mkdir(parents=True, exist_ok=True)
    screenshot = EVIDENCE_DIR / "browser-shop-page.png"
    assert chromium.save_screenshot(str(screenshot))
    page_text = chromium.find_element("id", "status").text

    # And the page, holding an app's credentials as the seeds' pages do, tries to remove the
    # shop's domain: as JSON (which the browser must preflight) and as text/plain (which it need not)
    attempts = chromium.execute_async_script(ADMIN_FROM_THE_PAGE, stack.port, REMOVE_DOMAIN)

    # Then the PageView is counted in stats
    today = datetime.now(UTC).date().isoformat()
    stats_event = {"event": {"pixel_id": int(PIXEL), "from": today, "to": today}}
    totals = wait_for(
        lambda: (
            (t := stack.graphql(STATS, stats_event, basic=True)["data"]["stats"]["data"]["totals"])[
                "pageviews"
            ]
            and t
        ),
        "the visitor's PageView in stats",
    )
    # And the Purchase reached the local Meta with the page's fbp and fbc and the browser's user agent
    purchase = wait_for(
        lambda: next((e for e in received_at_meta(stack) if e["event_name"] == "Purchase"), None),
        "the Purchase at the local Meta",
    )
    time.sleep(1)  # anything sent twice, or counted late, would show now
    status = pixel_status(stack)
    sent = received_at_meta(stack)

    # And neither admin request ran: the preflight found no CORS, the plain POST was refused
    assert attempts["json"].startswith("failed")
    assert attempts["plain"] == "sent"  # no-cors: the page cannot read the answer, nor need it
    assert any(
        record.get("path") == "/graphql" and record.get("status") == 403
        for record in stack_log_records(stack)
    )
    listed = stack.graphql(PIXELS, {"event": {"action": "get", "pixel_id": int(PIXEL)}}, basic=True)
    assert SHOP in listed["data"]["pixels"]["data"]["domains"]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page_text == "px.js loaded: PageView and Purchase sent"
    assert totals["pageviews"] == 1
    assert purchase["event_id"] == f"order-42-www.{SHOP}"
    assert purchase["action_source"] == "website"
    assert purchase["event_source_url"] == f"http://www.{SHOP}:{port}/"
    assert purchase["custom_data"] == {"value": 42.5, "currency": "EUR"}
    assert purchase["user_data"]["fbp"] == FBP
    assert purchase["user_data"]["fbc"] == FBC
    assert purchase["user_data"]["client_user_agent"] == VISITOR_AGENT
    assert purchase["user_data"]["client_ip_address"] == "127.0.0.1"
    assert "em" not in purchase["user_data"]  # nothing personal unless the site passes it
    # And only the visitor's two events were received and published; the crawler's two dropped
    assert sorted(event["event_name"] for event in sent) == ["PageView", "Purchase"]
    counted = (status["totalEventsReceived"], status["totalEventsFromBots"], status["totalEventsRateLimited"])
    assert counted == (2, 2, 0)
    pixel = stack.graphql(PIXELS, {"event": {"action": "get", "pixel_id": int(PIXEL)}}, basic=True)
    assert pixel["data"]["pixels"]["data"]["events_dropped"] == 2
