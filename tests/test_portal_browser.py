"""The portal in a real browser: Debian's headless Chromium, driven through the system chromedriver by
Selenium (never a downloaded browser). Log in, find a quarantined message, release it and see it reach
the next hop; an end user sees only their own mail; a digest link releases exactly one message, once;
hostile mail content never runs script, never makes the browser fetch from a remote host, and shows up
as escaped text."""

from __future__ import annotations

import http.server
import re
import shutil
import threading
import time
import urllib.parse

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from helpers import Gateway, Sink, free_port, wait_until
from test_portal_support import PASSWORDS, Client, Portal, held_items, mail_text, portal_settings, spam, wait_for_item

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class RemoteHost:
    """An HTTP listener on loopback standing in for a remote host that hostile mail points at. It
    records every request it gets; the tests want none."""

    def __init__(self):
        self.port = free_port()
        self.requests: list[str] = []
        self.pages: dict[str, str] = {}
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                if self.path in host.pages:  # the attacker's own pages, not a fetch by our portal
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.end_headers()
                    self.wfile.write(host.pages[self.path].encode())
                    return
                host.requests.append(f"GET {self.path}")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"fetched")

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One gateway (relaying to a sink, digests linking to its portal), its accounts, a remote-host
    stand-in and one headless Chromium for the whole module."""
    sink = Sink().start()
    port = free_port()
    settings = {**portal_settings(sink, listen=f"127.0.0.1:{port}"),
                "digest": {"enabled": True, "portal_url": f"http://127.0.0.1:{port}"}}
    gw = Gateway(tmp_path_factory.mktemp("browser"), settings).start()
    gw.portal_port = port
    portal = Portal(gw)
    portal.tokens = portal.standard_accounts()
    portal.sink = sink
    remote = RemoteHost()
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield portal, driver, remote
    finally:
        driver.quit()
        remote.stop()
        gw.kill()
        sink.stop()


def chromium(profile) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver


def base(portal: Portal) -> str:
    return f"http://127.0.0.1:{portal.port}"


def log_in(driver, portal: Portal, name: str) -> None:
    driver.delete_all_cookies()
    driver.get(base(portal) + "/login")
    driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(PASSWORDS[name])
    driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    wait_until(lambda: driver.find_elements(By.ID, "whoami"), timeout=15, what="logged in")
    assert driver.find_element(By.ID, "whoami").text == name


def pwned(driver) -> str:
    return driver.execute_script("return typeof window.__pwned")


def test_log_in_find_release_and_see_it_at_the_next_hop(env):
    portal, driver, _ = env
    mid = "browser-release@ext.test"
    portal.gw.send("spammer@ext.test", ["alice@our.test"], spam("please release me", mid=mid))
    wait_for_item(Client(portal.port), portal.tokens["alice"], "please release me")
    log_in(driver, portal, "alice")
    driver.get(base(portal) + "/?subject=release+me")
    driver.find_element(By.LINK_TEXT, "please release me").click()
    assert driver.find_element(By.ID, "status").text == "held"
    driver.find_element(By.ID, "release").click()
    wait_until(lambda: driver.find_elements(By.ID, "notice"), timeout=15, what="the release notice")
    assert driver.find_element(By.ID, "notice").text == "Released."
    assert driver.find_element(By.ID, "status").text.startswith("released by alice")
    delivered = portal.sink.wait_for_message(mid)
    assert len(delivered) == 1 and delivered[0][1] == ["alice@our.test"]


def test_an_end_user_sees_only_their_own_mail(env):
    portal, driver, _ = env
    portal.gw.send("spammer@ext.test", ["bob@our.test"], spam("bob's secret"))
    portal.gw.send("spammer@ext.test", ["alice@our.test"], spam("alice's own"))
    bob_item = wait_for_item(Client(portal.port), portal.tokens["bob"], "bob's secret")
    wait_for_item(Client(portal.port), portal.tokens["alice"], "alice's own")
    log_in(driver, portal, "alice")
    driver.get(base(portal) + "/?status=any")
    subjects = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "a.subject")]
    assert "alice's own" in subjects and "bob's secret" not in subjects
    driver.get(base(portal) + f"/quarantine/{bob_item['id']}")
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith("404")
    assert "bob's secret" not in driver.page_source
    driver.get(base(portal) + "/admin/users")
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith("403")


def test_a_digest_link_releases_exactly_one_message_once(env):
    portal, driver, _ = env
    c = Client(portal.port)
    for n in (1, 2):
        portal.gw.send("spammer@ext.test", ["helen-digest@our.test"], spam(f"digest item {n}", to="helen-digest@our.test",
                                                                           mid=f"digest-{n}@ext.test"))
    admin = portal.tokens["admin"]
    wait_for_item(c, admin, "digest item 1")
    wait_for_item(c, admin, "digest item 2")
    assert c.post("/api/v1/digests/send", token=admin).status == 200

    def digest():
        for _, rcpts, data in portal.sink.received():
            if rcpts == ["helen-digest@our.test"] and b"Quarantine digest" in data:
                return mail_text(data)
        return None
    text = wait_until(digest, timeout=30, what="the digest at the next hop")
    # The text part lists each item's subject, then its links; take item 1's Release link.
    block = text[text.index("digest item 1"):]
    link = re.search(r"http://127\.0\.0\.1:\d+/digest/[A-Za-z0-9_\-]+", block).group(0)
    driver.delete_all_cookies()
    driver.get(link)
    assert "digest item 1" in driver.find_element(By.ID, "subject").text
    driver.find_element(By.ID, "do").click()
    wait_until(lambda: driver.find_elements(By.ID, "message"), timeout=15, what="the outcome")
    assert driver.find_element(By.ID, "message").text.startswith("Released")
    assert driver.get_cookies() == [], "a digest link never logs anyone in"
    assert len(portal.sink.wait_for_message("digest-1@ext.test")) == 1
    # The same link again: explained, with a login offer; nothing more is released.
    driver.get(link)
    assert not driver.find_elements(By.ID, "do"), "a used link offers nothing to do"
    assert "already been used" in driver.find_element(By.ID, "message").text
    assert driver.find_element(By.ID, "login-link").get_attribute("href").endswith("/login")
    time.sleep(0.5)
    assert not [m for m in portal.sink.received() if b"digest-2@ext.test" in m[2]]
    states = {i["subject"]: i["status"] for i in held_items(c, admin, status="any", recipient="helen-digest@our.test")}
    assert states == {"digest item 1": "released", "digest item 2": "held"}, states


def hostile_html(remote: RemoteHost) -> str:
    return (
        "<html><head><meta http-equiv=\"refresh\" content=\"0;url=" + remote.url("meta") + "\">"
        "<link rel=\"stylesheet\" href=\"" + remote.url("link.css") + "\">"
        "<style>@import url(" + remote.url("import.css") + "); body{background:url(" + remote.url("bg-style") + ")}</style>"
        "<base href=\"" + remote.url("") + "\"></head>"
        "<body onload=\"window.__pwned='onload'\"><p>Visible <b>bold</b> text</p>"
        "<script>window.__pwned='script'; new Image().src='" + remote.url("script") + "';</script>"
        "<img src=\"" + remote.url("img.png") + "\" onerror=\"window.__pwned='img'\" alt=\"remote picture\">"
        "<iframe src=\"" + remote.url("frame") + "\"></iframe>"
        "<form action=\"" + remote.url("form") + "\" method=\"post\"><input name=q value=x><button>Go</button></form>"
        "<div style=\"background-image:url(" + remote.url("bg-attr") + ")\">styled</div>"
        "<a href=\"javascript:window.__pwned='href'\">click</a>"
        "<svg><image href=\"" + remote.url("svg-image") + "\"/><script>window.__pwned='svg'</script></svg>"
        "<video poster=\"" + remote.url("poster") + "\"></video><object data=\"" + remote.url("object") + "\"></object>"
        "<embed src=\"" + remote.url("embed") + "\"><audio src=\"" + remote.url("audio") + "\"></audio>"
        "<img srcset=\"" + remote.url("srcset.png") + " 1x\">"
        "</body></html>"
    )


PAYLOAD_SUBJECT = "<img src=x onerror=\"window.__pwned='subject'\">"
PAYLOAD_NAME = "<script>window.__pwned='name'</script>"
PAYLOAD_FILE = "\"><img src=x onerror=window.__pwned='file'>.pdf"


def test_hostile_content_never_runs_or_fetches_and_shows_as_text(env):
    portal, driver, remote = env
    encoded = "=?utf-8?b?PHN2ZyBvbmxvYWQ9d2luZG93Ll9fcHduZWQ9J3dvcmQnPg==?="  # <svg onload=window.__pwned='word'>
    subject = f"{PAYLOAD_SUBJECT} {encoded} inv\u202efdp.exe"
    raw = spam(subject, display=f'"{PAYLOAD_NAME}"', html=hostile_html(remote), attachment_name=PAYLOAD_FILE,
               mid="hostile@ext.test")
    portal.gw.send("spammer@ext.test", ["alice@our.test"], raw)
    item = wait_for_item(Client(portal.port), portal.tokens["alice"], "onerror")
    log_in(driver, portal, "alice")
    driver.get(base(portal) + "/?subject=onerror")
    assert pwned(driver) == "undefined"
    row_subject = driver.find_element(By.CSS_SELECTOR, f"tr[data-id='{item['id']}'] a.subject").text
    assert PAYLOAD_SUBJECT in row_subject and "<svg onload=window.__pwned='word'>" in row_subject
    assert PAYLOAD_NAME in driver.find_element(By.CSS_SELECTOR, f"tr[data-id='{item['id']}'] .from").text
    driver.get(base(portal) + f"/quarantine/{item['id']}")
    wait_until(lambda: driver.execute_script("return document.readyState") == "complete", timeout=15,
               what="the message page loaded")
    time.sleep(1.5)  # time for anything that would fire (onload, refresh, image errors) to fire
    assert pwned(driver) == "undefined"
    shown = driver.find_element(By.ID, "subject").text
    assert PAYLOAD_SUBJECT in shown and "inv[U+202E]fdp.exe" in shown, shown
    assert PAYLOAD_NAME in driver.find_element(By.ID, "from").text
    names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".attachment-name")]
    assert PAYLOAD_FILE in names, names
    frame = driver.find_element(By.ID, "preview")
    assert frame.get_attribute("sandbox") == ""
    srcdoc = frame.get_attribute("srcdoc")
    assert "Visible <b>bold</b> text" in srcdoc
    for bad in ("<script", "onload", "onerror", "<iframe", "<form", "<img", "url(", "javascript:", "<style",
                "<meta", "<base", "<link", "<object", "<embed", "<video", "<audio", str(remote.port)):
        assert bad not in srcdoc, (bad, srcdoc)
    driver.switch_to.frame(frame)
    assert "Visible bold text" in driver.find_element(By.TAG_NAME, "body").text
    try:
        inner = driver.execute_script("return typeof window.__pwned")
    except WebDriverException:
        inner = "undefined"  # scripts cannot run in the sandboxed frame at all
    driver.switch_to.default_content()
    assert inner == "undefined"
    assert pwned(driver) == "undefined"
    assert remote.requests == [], remote.requests
    # The page's own policy: no inline script could run even if markup got through.
    policy = Client(portal.port, cookies={c["name"]: c["value"] for c in driver.get_cookies()}).get(
        f"/quarantine/{item['id']}").header("Content-Security-Policy")
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    # Reflected: the login page with a script in ?error= renders without running it.
    driver.get(base(portal) + "/login?error=" + urllib.parse.quote("<script>window.__pwned='reflected'</script>"))
    assert pwned(driver) == "undefined"
    assert remote.requests == []
    # And the download is a file, never a page.
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    r = Client(portal.port, cookies=cookies).get(f"/quarantine/{item['id']}/raw")
    assert r.header("Content-Type") == "application/octet-stream" and r.header("Content-Disposition").startswith("attachment")


def test_a_cross_site_form_post_changes_nothing(env):
    """A page on another origin (the remote-host stand-in: same IP, other port, so "same-site" to the
    browser, which would even send the SameSite=Strict cookie) posts a release form at the portal."""
    portal, driver, remote = env
    portal.gw.send("spammer@ext.test", ["alice@our.test"], spam("csrf in a browser", mid="csrf-browser@ext.test"))
    item = wait_for_item(Client(portal.port), portal.tokens["alice"], "csrf in a browser")
    log_in(driver, portal, "alice")
    target = f"{base(portal)}/quarantine/{item['id']}/action"
    remote.pages["/attack"] = (
        f"<html><body><form id=f method=post action='{target}'><input name=op value=release></form>"
        "<script>document.getElementById('f').submit()</script></body></html>")
    driver.get(remote.url("attack"))
    wait_until(lambda: driver.current_url.startswith(base(portal)), timeout=15, what="the forged post")
    assert "403" in driver.find_element(By.TAG_NAME, "h1").text
    time.sleep(0.5)
    detail = Client(portal.port).get(f"/api/v1/quarantine/{item['id']}", token=portal.tokens["alice"]).json()
    assert detail["item"]["status"] == "held"
    assert not [m for m in portal.sink.received() if b"csrf-browser@ext.test" in m[2]]
