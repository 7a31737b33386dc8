"""The "Quarantine portal and API" rows of THREATS.md against the real binary over HTTP, plus the
access-control matrix (no session, another user's message, helpdesk on admin pages, no CSRF token).
The browser rows (script execution, remote requests from a rendered page) are in test_portal_browser.py.

Each test also checks that the gateway still serves afterwards: a normal message is delivered once, and
no file appeared where an injected command would have written one."""

from __future__ import annotations

import os
import re
import socket
import time
import urllib.parse
from pathlib import Path

import pytest

from helpers import wait_until
from test_portal_support import (GTUBE, PASSWORDS, Client, Portal, held_items, mail_text, portal_settings,
                                 spam, wait_for_item)

ALLOWED_UNAUTHENTICATED = {400, 401, 403, 404, 405, 413, 414, 415, 431}
MARKER = Path("/tmp/portcullis-portal-pwned")


def clean_message(mid: str) -> bytes:
    return (f"From: a@ext.test\r\nTo: alice@our.test\r\nSubject: normal\r\nMessage-ID: <{mid}>\r\n"
            f"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\nhello\r\n").encode()


def still_serving(gw, sink, portal: Portal) -> None:
    assert Client(portal.port).get("/healthz").status == 200
    mid = f"after-{time.monotonic_ns()}@ext.test"
    gw.send("a@ext.test", ["alice@our.test"], clean_message(mid))
    assert len(sink.wait_for_message(mid)) == 1
    assert not MARKER.exists()
    children = [Path(f"/proc/{gw.proc.pid}/task/{t}/children").read_text().split()
                for t in os.listdir(f"/proc/{gw.proc.pid}/task")]
    assert not any(children), children


@pytest.fixture
def portal(gateway_factory, sink):
    gw = gateway_factory(portal_settings(sink, login_max_failures_per_address=1000))
    p = Portal(gw)
    p.tokens = p.standard_accounts()
    p.sink = sink
    return p


def quarantine_for(p: Portal, to: str, subject: str) -> dict:
    p.gw.send("spammer@ext.test", [to], spam(subject, to=to))
    return wait_for_item(Client(p.port), p.tokens["admin"], subject)


# -- unauthenticated surface -----------------------------------------------------------------------

WEB_GET = ["/", "/quarantine/AAAAAAAAAAAAAAAAAAAAAA", "/quarantine/AAAAAAAAAAAAAAAAAAAAAA/raw", "/lists",
           "/preferences", "/account", "/admin", "/admin/tracking", "/admin/queue", "/admin/users",
           "/admin/config", "/admin/audit", "/metrics", "/login/totp"]
WEB_POST = ["/logout", "/quarantine/bulk", "/quarantine/AAAAAAAAAAAAAAAAAAAAAA/action", "/lists", "/preferences",
            "/account/password", "/account/tokens", "/account/tokens/revoke", "/account/totp",
            "/account/totp/remove", "/admin/users", "/admin/users/update", "/admin/queue/retry",
            "/admin/queue/delete", "/admin/digests", "/admin/nodes/forget", "/login/totp"]
API_GET = ["/api/v1/openapi.json", "/api/v1/me", "/api/v1/quarantine", "/api/v1/quarantine/AAAAAAAAAAAAAAAAAAAAAA",
           "/api/v1/quarantine/AAAAAAAAAAAAAAAAAAAAAA/raw", "/api/v1/tracking", "/api/v1/lists",
           "/api/v1/digest-preferences", "/api/v1/dashboard", "/api/v1/users", "/api/v1/queue", "/api/v1/config",
           "/api/v1/audit", "/api/v1/tokens"]
API_POST = ["/api/v1/quarantine/AAAAAAAAAAAAAAAAAAAAAA/release", "/api/v1/quarantine/AAAAAAAAAAAAAAAAAAAAAA/delete",
            "/api/v1/quarantine/AAAAAAAAAAAAAAAAAAAAAA/learn-spam", "/api/v1/quarantine/AAAAAAAAAAAAAAAAAAAAAA/safelist",
            "/api/v1/lists", "/api/v1/lists/remove", "/api/v1/digest-preferences", "/api/v1/users",
            "/api/v1/users/alice", "/api/v1/queue/retry", "/api/v1/queue/0123456789abcdef/delete",
            "/api/v1/tokens", "/api/v1/tokens/1/revoke", "/api/v1/digests/send"]
METACHARACTERS = [";touch%20/tmp/portcullis-portal-pwned;", "$(touch%20/tmp/portcullis-portal-pwned)",
                  "%60id%60", "|id", "%3Cscript%3Ealert(1)%3C/script%3E", "../../etc/passwd", "%2e%2e%2f%2e%2e%2f",
                  "%00", "%c0%ae%c0%ae%2f", "'%20OR%20'1'='1", "${jndi:ldap://127.0.0.1:1/a}"]


def test_every_route_refuses_without_a_session(portal):
    c = Client(portal.port)
    for path in WEB_GET + API_GET:
        r = c.get(path)
        assert r.status == 401, (path, r.status)
    for path in WEB_POST:
        r = c.post(path, form={"csrf": "x", "op": "release", "id": "AAAAAAAAAAAAAAAAAAAAAA"})
        assert r.status == 401, (path, r.status)
    for path in API_POST:
        r = c.post(path, body=b"{}", headers={"Content-Type": "application/json"})
        assert r.status == 401, (path, r.status, r.text[:200])
        assert r.header("WWW-Authenticate") == "Bearer"
        r = c.post(path, body=b"{}", headers={"Content-Type": "application/json"}, token="pcl_forged")
        assert r.status == 401, (path, r.status)


def test_unauthenticated_surface_fuzzing(portal):
    c = Client(portal.port)
    seen = set()

    def check(r, what, ok=ALLOWED_UNAUTHENTICATED):
        seen.add(r.status)
        assert r.status in ok, (what, r.status, r.text[:300])
        assert r.status < 500, what

    paths = WEB_GET + WEB_POST + API_GET + API_POST + ["/digest/x", "/digest/request", "/login", "/static/x.css",
                                                       "/static/../../etc/passwd", "/nope"]
    for path in paths:
        for meta in METACHARACTERS:
            check(c.get(f"{path}/{meta}"), f"GET {path}/{meta}")
            check(c.get(f"{path}?q={meta}&id={meta}&error={meta}"), f"GET {path}?{meta}",
                  ALLOWED_UNAUTHENTICATED | ({200} if path in ("/login", "/digest/request") else set()))
        for method in ("PUT", "DELETE", "PATCH", "TRACE", "PROPFIND", "FOO"):
            check(c.request(method, path), f"{method} {path}")
        for kind in ("application/xml", "multipart/form-data; boundary=x", "text/plain", "application/json"):
            check(c.post(path, body=b"<a>;id</a>", headers={"Content-Type": kind}), f"POST {path} {kind}")
    # Unauthenticated routes themselves, with hostile input.
    for meta in METACHARACTERS:
        decoded = urllib.parse.unquote(meta)
        check(c.post("/login", form={"name": decoded, "password": decoded}), f"login {meta}")
        check(c.get(f"/digest/{meta}"), f"digest {meta}")
        check(c.post(f"/digest/{meta}"), f"digest POST {meta}")
    big = "a" * (1 << 20)
    check(c.get(f"/login?error={big}"), "1 MB query")
    check(c.get("/login?error=" + "a" * 5000), "5 kB query")
    check(c.get(f"/api/v1/quarantine?subject={big}"), "1 MB API query")
    check(c.post("/login", form={"name": big, "password": big}), "1 MB form")
    check(c.post("/api/v1/quarantine/x/release", body=b"{" * (2 << 20), headers={"Content-Type": "application/json"}),
          "2 MB JSON")
    assert {401, 404, 405, 414, 415} <= seen, seen
    # Only the intended routes answer without a session.
    assert c.get("/login").status == 200
    assert c.get("/static/portal.css").status == 200
    assert c.get("/healthz").status == 200 and c.get("/healthz").text == "ok\n"
    still_serving(portal.gw, portal.sink, portal)


# -- stored XSS, reflected XSS, second-order injection (HTTP level; the browser test runs them) ------

def test_stored_xss_from_mail_is_escaped_everywhere(portal):
    subject = "<img src=x onerror=alert(1)> =?utf-8?b?PHNjcmlwdD5hbGVydCgyKTwvc2NyaXB0Pg==?="
    portal.gw.send("spammer@ext.test", ["alice@our.test"],
                   spam(subject, display='"<script>alert(3)</script>"', attachment_name='"><svg onload=alert(4)>.pdf'))
    alice = portal.logged_in("alice")
    item = wait_for_item(alice, portal.tokens["alice"], "onerror")
    assert "<script>alert(2)</script>" in item["subject"], "the encoded word is decoded, as data"
    for page in (alice.get("/"), alice.get(f"/quarantine/{item['id']}")):
        assert page.status == 200
        for raw in ("<img src=x", "<script>alert", "<svg onload"):
            assert raw not in page.text, raw
        assert "&#60;img src=x onerror=alert(1)&#62;" in page.text
        assert "default-src 'none'" in page.header("Content-Security-Policy")
    view = alice.get(f"/quarantine/{item['id']}").text
    assert "&#60;script&#62;alert(2)&#60;/script&#62;" in view
    assert "&#34;&#62;&#60;svg onload=alert(4)&#62;.pdf" in view


def test_reflected_xss_is_escaped(portal):
    c = Client(portal.port)
    r = c.get("/login?error=%3Cscript%3Ealert(1)%3C/script%3E")
    assert r.status == 200 and "<script>alert" not in r.text and "alert(1)" not in r.text
    alice = portal.logged_in("alice")
    r = alice.get("/?subject=%3Cscript%3Ealert(1)%3C/script%3E&sender=%22%3E%3Csvg/onload=alert(1)%3E")
    assert r.status == 200
    assert "<script>alert" not in r.text and "<svg/onload" not in r.text
    assert 'value="&#60;script&#62;alert(1)&#60;/script&#62;"' in r.text
    r = alice.get("/?from=%3Cscript%3E")
    assert r.status == 400 and "<script>" not in r.text


def test_second_order_injection_is_literal_text(gateway_factory, sink):
    gw = gateway_factory({**portal_settings(sink), "digest": {"enabled": True, "portal_url": "http://127.0.0.1:1"}})
    p = Portal(gw)
    tokens = p.standard_accounts()
    injection = "x' UNION SELECT password_hash FROM accounts --"
    gw.send("spammer@ext.test", ["alice@our.test"], spam(injection))
    c = Client(p.port)
    item = wait_for_item(c, tokens["alice"], "UNION")
    assert item["subject"] == injection
    # Stored settings that look like SQL stay data too: a safelist entry, then a search for it.
    r = c.post("/api/v1/lists", body=f'{{"owner": "alice@our.test", "list": "safelist", "sender": "x\'--@ext.test"}}',
               headers={"Content-Type": "application/json"}, token=tokens["alice"])
    assert r.status == 204, r.text
    assert any(e["sender"] == "x'--@ext.test" for e in c.get("/api/v1/lists", token=tokens["alice"]).json())
    found = held_items(c, tokens["alice"], subject="' UNION SELECT")
    assert [i["id"] for i in found] == [item["id"]]
    assert held_items(c, tokens["bob"], subject="' OR '1'='1") == []
    # The digest job reads the stored subject back and shows it as text.
    r = c.post("/api/v1/digests/send", token=tokens["admin"])
    assert r.status == 200 and r.json()["sent"] >= 1, r.text
    digest = next(m for m in sink.wait_for(1) if b"Quarantine digest" in m[2])
    text = mail_text(digest[2])
    assert "x' UNION SELECT password_hash FROM accounts --" in text, text
    assert "$argon2id$" not in text


# -- IDOR and path traversal ------------------------------------------------------------------------

def test_idor_gets_404_and_changes_nothing(portal):
    b_item = quarantine_for(portal, "bob@our.test", "for bob only")
    alice, t_alice, t_bob = portal.logged_in("alice"), portal.tokens["alice"], portal.tokens["bob"]
    iid = b_item["id"]
    csrf = alice.csrf("/")
    assert alice.get(f"/quarantine/{iid}").status == 404
    assert alice.get(f"/quarantine/{iid}/raw").status == 404
    for op in ("release", "delete", "learn_spam", "safelist", "release_safelist"):
        assert alice.post(f"/quarantine/{iid}/action", form={"csrf": csrf, "op": op}).status == 404, op
    r = alice.post("/quarantine/bulk", form={"csrf": csrf, "op": "delete", "id": [iid]})
    assert r.status == 303 and "n=0" in r.header("Location")
    for path in ("", "/raw"):
        assert alice.get(f"/api/v1/quarantine/{iid}{path}", token=t_alice).status == 404
    for op in ("release", "delete", "learn-spam", "safelist"):
        assert alice.post(f"/api/v1/quarantine/{iid}/{op}", token=t_alice).status == 404, op
    assert all(i["id"] != iid for i in held_items(alice, t_alice, status="any"))
    assert held_items(alice, t_alice, recipient="bob@our.test") == []
    # A list entry or a digest preference for bob's address: not alice's to change.
    r = alice.post("/lists", form={"csrf": csrf, "op": "add", "owner": "bob@our.test", "list": "safelist",
                                   "sender": "evil@ext.test"})
    assert r.status == 404
    still = Client(portal.port).get(f"/api/v1/quarantine/{iid}", token=t_bob)
    assert still.status == 200 and still.json()["item"]["status"] == "held"
    assert portal.sink.received() == []
    still_serving(portal.gw, portal.sink, portal)


def test_path_traversal_ids_never_reach_a_file(portal):
    admin = portal.logged_in("admin")
    token = portal.tokens["admin"]
    for bad in ["..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%252f..%252fetc%252fpasswd",
                "%c0%ae%c0%ae%c0%afetc%c0%afpasswd", "AAAAAAAAAAAAAAAAAAAAA%00", "....//....//etc/passwd",
                "%2fetc%2fpasswd", "AAAAAAAAAAAAAAAAAAAAAA%2F..", "%ff%fe"]:
        for path in (f"/quarantine/{bad}", f"/quarantine/{bad}/raw"):
            r = admin.get(path)
            assert r.status in (400, 404), (path, r.status)
            assert "root:" not in r.text
        r = admin.get(f"/api/v1/quarantine/{bad}", token=token)
        assert r.status in (400, 404), (bad, r.status)
        r = admin.post("/admin/queue/delete", form={"csrf": admin.csrf("/admin/queue"), "id": urllib.parse.unquote(bad)})
        assert r.status in (400, 404), (bad, r.status)
    still_serving(portal.gw, portal.sink, portal)


# -- CSRF -------------------------------------------------------------------------------------------

def test_csrf_is_refused_and_nothing_changes(portal):
    item = quarantine_for(portal, "alice@our.test", "csrf target")
    alice = portal.logged_in("alice")
    iid = item["id"]
    attempts = [
        (f"/quarantine/{iid}/action", {"op": "release"}),
        (f"/quarantine/{iid}/action", {"op": "delete"}),
        ("/quarantine/bulk", {"op": "release", "id": iid}),
        ("/lists", {"op": "add", "owner": "alice@our.test", "list": "safelist", "sender": "evil@ext.test"}),
        ("/preferences", {"address": "alice@our.test", "enabled": "no"}),
        ("/account/tokens", {"label": "stolen"}),
    ]
    good = alice.csrf("/")
    for path, form in attempts:
        # A cross-site form post: another origin, no token (the browser would send the cookie only if
        # SameSite allowed it; the server refuses either way).
        r = alice.post(path, form=form, headers={"Origin": "http://evil.test", "Sec-Fetch-Site": "cross-site"})
        assert r.status == 403, (path, r.status)
        r = alice.post(path, form={**form, "csrf": good}, headers={"Origin": "http://evil.test"})
        assert r.status == 403, (path, "foreign origin with a token", r.status)
        r = alice.post(path, form=form)
        assert r.status == 403, (path, "no token", r.status)
        r = alice.post(path, form={**form, "csrf": "A" * 43})
        assert r.status == 403, (path, "wrong token", r.status)
    t = portal.tokens["alice"]
    assert Client(portal.port).get(f"/api/v1/quarantine/{iid}", token=t).json()["item"]["status"] == "held"
    assert Client(portal.port).get("/api/v1/lists", token=t).json() == []
    assert Client(portal.port).get("/api/v1/digest-preferences", token=t).json()[0]["enabled"] is True
    cookie = alice.get("/").header("Set-Cookie")
    login = Client(portal.port).login("alice", PASSWORDS["alice"])
    set_cookie = login.header("Set-Cookie")
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/" in set_cookie, set_cookie
    assert cookie == "" or "HttpOnly" in cookie
    # With the token and from our own origin, the same release works.
    r = alice.post(f"/quarantine/{iid}/action", form={"op": "release", "csrf": good},
                   headers={"Origin": f"http://127.0.0.1:{portal.port}", "Sec-Fetch-Site": "same-origin"})
    assert r.status == 303
    assert len(portal.sink.wait_for(1)) == 1


# -- digest tokens ------------------------------------------------------------------------------------

def digest_links(sink, address: str) -> list[str]:
    def links():
        for _, rcpts, data in sink.received():
            if address in rcpts and b"Quarantine digest" in data:
                text = mail_text(data)
                return re.findall(r"http://127\.0\.0\.1:\d+/digest/[A-Za-z0-9_\-]+", text)
        return None
    return list(dict.fromkeys(wait_until(links, timeout=30, what=f"a digest for {address}")))


@pytest.fixture
def digest_portal(gateway_factory, sink):
    from helpers import free_port
    port = free_port()
    gw = gateway_factory({**portal_settings(sink, listen=f"127.0.0.1:{port}"),
                          "digest": {"enabled": True, "portal_url": f"http://127.0.0.1:{port}",
                                     "token_lifetime": "1h"}})
    gw.portal_port = port
    p = Portal(gw)
    p.tokens = p.standard_accounts()
    p.sink = sink
    return p


def test_token_forgery_is_refused(digest_portal):
    p = digest_portal
    first = quarantine_for(p, "alice@our.test", "digest one")
    second = quarantine_for(p, "alice@our.test", "digest two")
    c = Client(p.port)
    assert c.post("/api/v1/digests/send", token=p.tokens["admin"]).status == 200
    links = digest_links(p.sink, "alice@our.test")
    assert len(links) >= 4, links
    token = links[0].rsplit("/", 1)[1]
    for forged in (token[:-1], token[:-10], token + "A", token + "AAAA", token[:20], "A" * len(token),
                   token[:5] + ("B" if token[5] != "B" else "C") + token[6:]):
        assert c.get(f"/digest/{forged}").status == 401, forged
        r = c.post(f"/digest/{forged}")
        assert r.status == 401 and "not valid" in r.text and 'href="/login"' in r.text, forged
    # The genuine link: a confirmation on GET (nothing happens), the action once on POST.
    assert c.get(f"/digest/{token}").status == 200
    assert c.get(f"/digest/{token}").status == 200
    r = c.post(f"/digest/{token}")
    assert r.status == 200, r.text
    replay = c.post(f"/digest/{token}")
    assert replay.status == 410 and "already been used" in replay.text and 'href="/login"' in replay.text
    assert c.get(f"/digest/{token}").status == 410
    assert "set-cookie" not in r.headers and not c.cookies, "a digest link never logs anyone in"
    assert c.get("/", ).status == 401
    t = p.tokens["alice"]
    statuses = {i["subject"]: i["status"] for i in held_items(c, t, status="any")}
    assert sorted(statuses.values()).count("held") == 1, statuses
    # Another recipient's token for the same item does nothing: bob's session cannot use alice's links.
    assert first["id"] != second["id"]


def test_expired_digest_link_explains_itself(gateway_factory, sink):
    from helpers import free_port
    port = free_port()
    gw = gateway_factory({**portal_settings(sink, listen=f"127.0.0.1:{port}"),
                          "digest": {"enabled": True, "portal_url": f"http://127.0.0.1:{port}", "token_lifetime": "1s"}})
    gw.portal_port = port
    p = Portal(gw)
    p.tokens = p.standard_accounts()
    p.sink = sink
    quarantine_for(p, "alice@our.test", "expiring")
    c = Client(port)
    assert c.post("/api/v1/digests/send", token=p.tokens["admin"]).status == 200
    link = digest_links(sink, "alice@our.test")[0]
    time.sleep(2.5)
    token = link.rsplit("/", 1)[1]
    r = c.post(f"/digest/{token}")
    assert r.status == 410 and "expired" in r.text and 'href="/login"' in r.text
    assert held_items(c, p.tokens["alice"])[0]["status"] == "held"


# -- login brute force and user enumeration --------------------------------------------------------------

def test_login_brute_force_is_throttled_per_address_and_account(gateway_factory, sink):
    gw = gateway_factory(portal_settings(sink, login_max_failures_per_account=5, login_max_failures_per_address=8))
    p = Portal(gw)
    p.standard_accounts()
    attacker = Client(p.port, source_ip="127.0.0.2")
    codes = [attacker.login("alice", f"guess-{i}").status for i in range(100)]
    assert codes[:5] == [401] * 5, codes[:10]
    assert set(codes[5:]) == {429}, codes
    r = attacker.login("alice", "x")
    assert r.status == 429 and r.header("Retry-After")
    # The account is locked from everywhere for the window; the right password does not get in either.
    assert Client(p.port, source_ip="127.0.0.5").login("alice", PASSWORDS["alice"]).status == 429
    # Per address: one source spraying many names is stopped after its own limit.
    sprayer = Client(p.port, source_ip="127.0.0.3")
    codes = [sprayer.login(f"user{i}", "guess").status for i in range(12)]
    assert codes[:8] == [401] * 8 and set(codes[8:]) == {429}, codes
    assert sprayer.login("bob", PASSWORDS["bob"]).status == 429
    # Other users, from other addresses, still log in.
    assert Client(p.port).login("bob", PASSWORDS["bob"]).status == 303
    assert Client(p.port, source_ip="127.0.0.4").login("helen", PASSWORDS["helen"]).status == 303
    audit = (gw.data_dir / "audit" / "audit.log").read_text()
    assert '"auth.lockout"' in audit and '"auth.login_failed"' in audit
    assert PASSWORDS["alice"] not in audit and "guess-1" not in audit


def test_user_enumeration_gets_identical_answers(portal):
    c = Client(portal.port, source_ip="127.0.0.6")
    unknown = c.login("nosuchuser", "wrong-password-1")
    wrong = c.login("alice", "wrong-password-1")
    disabled_setup = portal.gw.cli("users", "disable", "bob")
    assert disabled_setup.returncode == 0
    disabled = c.login("bob", PASSWORDS["bob"])
    assert unknown.status == wrong.status == disabled.status == 401
    assert unknown.body == wrong.body == disabled.body
    assert "set-cookie" not in unknown.headers and "set-cookie" not in wrong.headers
    # "Send me my digest": the same page for a real and an unknown address, then 429.
    quarantine_for(portal, "alice@our.test", "enumeration")
    d = Client(portal.port, source_ip="127.0.0.7")
    real = d.post("/digest/request", form={"address": "alice@our.test"})
    fake = d.post("/digest/request", form={"address": "nobody@our.test"})
    odd = d.post("/digest/request", form={"address": "<script>"})
    assert real.status == fake.status == odd.status == 200
    assert real.body == fake.body == odd.body
    codes = [d.post("/digest/request", form={"address": "alice@our.test"}).status for _ in range(5)]
    assert codes[-1] == 429, codes


# -- HTTP abuse ---------------------------------------------------------------------------------------

def raw_http(port: int, data: bytes, timeout: float = 10, read_after: float | None = None) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if read_after:
            time.sleep(read_after)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and len(out) > 12:
                    break
        except (socket.timeout, ConnectionResetError):
            pass
        return out


def status_of(reply: bytes) -> int:
    m = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    return int(m.group(1)) if m else 0


def test_http_abuse(gateway_factory, sink):
    gw = gateway_factory(portal_settings(sink, request_timeout="2s"))
    p = Portal(gw)
    p.standard_accounts()
    port = p.port
    big_header = b"GET /login HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n"
    assert status_of(raw_http(port, big_header)) == 431
    many = b"GET /login HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n"
    assert status_of(raw_http(port, many)) in (400, 431)
    long_url = b"GET /login?" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert status_of(raw_http(port, long_url)) in (414, 431)
    assert status_of(raw_http(port, b"GET /login?" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")) == 414
    gigabyte = (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 1073741824\r\n\r\n" + b"a" * 65536)
    assert status_of(raw_http(port, gigabyte)) == 413
    chunked_big = (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n" + (b"10000\r\n" + b"a" * 65536 + b"\r\n") * 20)
    assert status_of(raw_http(port, chunked_big)) == 413
    for smuggle in (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                    b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"):
        assert status_of(raw_http(port, smuggle)) == 400
    slow = (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100\r\n\r\nname=a")
    start = time.monotonic()
    assert status_of(raw_http(port, slow, timeout=15)) == 408
    assert time.monotonic() - start < 10
    assert status_of(raw_http(port, b"BREW /login HTTP/1.1\r\nHost: x\r\n\r\n")) == 405
    assert status_of(raw_http(port, b"GET /login HTTP/9.9\r\nHost: x\r\n\r\n")) in (400, 505)
    assert status_of(raw_http(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64)) in (0, 400)
    still_serving(gw, sink, p)


# -- access control ------------------------------------------------------------------------------------

ADMIN_WEB_GET = ["/admin", "/admin/queue", "/admin/users", "/admin/config", "/admin/audit"]
ADMIN_WEB_POST = ["/admin/users", "/admin/users/update", "/admin/queue/retry", "/admin/queue/delete", "/admin/digests",
                  "/admin/nodes/forget"]
ADMIN_API_GET = ["/api/v1/users", "/api/v1/queue", "/api/v1/config", "/api/v1/audit", "/api/v1/dashboard"]
ADMIN_API_POST = ["/api/v1/users", "/api/v1/users/alice", "/api/v1/queue/retry", "/api/v1/queue/0123456789abcdef/delete",
                  "/api/v1/digests/send"]


def test_roles_are_enforced(portal):
    helen, alice = portal.logged_in("helen"), portal.logged_in("alice")
    for who, client, token in (("helpdesk", helen, portal.tokens["helen"]), ("user", alice, portal.tokens["alice"])):
        csrf = client.csrf("/")
        for path in ADMIN_WEB_GET:
            assert client.get(path).status == 403, (who, path)
        for path in ADMIN_WEB_POST:
            r = client.post(path, form={"csrf": csrf, "name": "x", "role": "admin", "op": "disable", "id": "x"})
            assert r.status == 403, (who, path, r.status)
        for path in ADMIN_API_GET:
            assert client.get(path, token=token).status == 403, (who, path)
        for path in ADMIN_API_POST:
            r = client.post(path, body=b'{"name": "mallory", "role": "admin"}',
                            headers={"Content-Type": "application/json"}, token=token)
            assert r.status == 403, (who, path, r.status, r.text[:200])
    assert helen.get("/admin/tracking").status == 200
    assert alice.get("/admin/tracking").status == 403
    admin = portal.logged_in("admin")
    for path in ADMIN_WEB_GET + ["/admin/tracking"]:
        assert admin.get(path).status == 200, path
    assert "mallory" not in portal.gw.cli("users", "list").stdout.decode()
    # Metrics: an admin session, never an end user.
    assert admin.get("/metrics").status == 200
    assert alice.get("/metrics").status == 403


def test_end_user_sees_only_their_own_mail_and_helpdesk_sees_all(portal):
    a = quarantine_for(portal, "alice@our.test", "mine alice")
    b = quarantine_for(portal, "bob@our.test", "mine bob")
    c = Client(portal.port)
    ids = lambda name: {i["id"] for i in held_items(c, portal.tokens[name])}  # noqa: E731
    assert ids("alice") == {a["id"]} and ids("bob") == {b["id"]}
    assert {a["id"], b["id"]} <= ids("helen") and {a["id"], b["id"]} <= ids("admin")
    page = portal.logged_in("alice").get("/").text
    assert "mine alice" in page and "mine bob" not in page
    # The documented fields outside scripts rely on.
    item = held_items(c, portal.tokens["alice"])[0]
    assert {"id", "kind", "sender", "recipients", "subject", "score", "symbols", "received_at"} <= set(item)
    assert item["kind"] == "spam" and item["recipients"] == ["alice@our.test"]
    assert any(s["name"] == "GTUBE" and s["reason"] for s in item["symbols"])
    detail = c.get(f"/api/v1/quarantine/{a['id']}", token=portal.tokens["alice"]).json()
    assert GTUBE in detail["text"]
    raw = c.get(f"/api/v1/quarantine/{a['id']}/raw", token=portal.tokens["alice"])
    assert raw.status == 200 and raw.header("Content-Type") == "application/octet-stream"
    assert raw.header("Content-Disposition") == f'attachment; filename="{a["id"]}.eml"'
    r = c.post(f"/api/v1/quarantine/{a['id']}/release", token=portal.tokens["alice"])
    assert r.status == 200 and r.json()["outcome"] == "done"
    again = c.post(f"/api/v1/quarantine/{a['id']}/release", token=portal.tokens["alice"])
    assert again.json()["outcome"] == "already_done"
    assert len(portal.sink.wait_for(1)) == 1
    r = c.post(f"/api/v1/quarantine/{b['id']}/delete", token=portal.tokens["bob"])
    assert r.json()["outcome"] == "done"
    timelines = c.get("/api/v1/tracking?recipient=alice@our.test", token=portal.tokens["admin"]).json()
    assert isinstance(timelines, list)


def test_cli_users_and_tokens(portal):
    gw = portal.gw
    listed = __import__("json").loads(gw.cli("users", "list", "--json").stdout)
    names = {u["name"]: u for u in listed}
    assert {"admin", "alice", "bob", "helen"} <= set(names)
    assert names["alice"]["addresses"] == ["alice@our.test"] and names["helen"]["role"] == "helpdesk"
    assert "password" not in str(listed) and "$argon2" not in str(listed)
    r = gw.cli("users", "passwd", "alice", "--password-stdin", input=b"a-new-password-99\n")
    assert r.returncode == 0
    assert Client(portal.port).login("alice", "a-new-password-99").status == 303
    r = gw.cli("users", "passwd", "alice")
    new = r.stdout.decode().strip().rsplit(" ", 1)[-1]
    assert Client(portal.port).login("alice", new).status == 303
    assert gw.cli("users", "add", "alice", "--role", "user").returncode != 0
    assert gw.cli("users", "add", "Bad Name", "--role", "user").returncode != 0
    token = gw.cli("users", "token", "bob", "--name", "script").stdout.decode().strip()
    assert token.startswith("pcl_")
    assert Client(portal.port).get("/api/v1/me", token=token).json()["name"] == "bob"
    assert gw.cli("users", "disable", "bob").returncode == 0
    assert Client(portal.port).get("/api/v1/me", token=token).status == 401
    db = (gw.data_dir / "store" / "portcullis.db").read_bytes()
    assert token.encode() not in db and PASSWORDS["bob"].encode() not in db
    audit = (gw.data_dir / "audit" / "audit.log").read_text()
    for action in ("user.create", "user.update", "token.create", "auth.login"):
        assert f'"{action}"' in audit, action
    assert token not in audit and portal.admin_password not in audit


def test_sessions_rotate_and_end(portal):
    c = portal.client()
    c.cookies["portcullis_session"] = "A" * 43
    assert c.login("alice", PASSWORDS["alice"]).status == 303
    first = dict(c.cookies)
    assert first["portcullis_session"] != "A" * 43
    assert c.get("/").status == 200
    assert c.login("alice", PASSWORDS["alice"]).status == 303
    assert c.cookies["portcullis_session"] != first["portcullis_session"], "rotated at login"
    old = Client(portal.port, cookies=first)
    assert old.get("/").status == 401, "the session before the login ended"
    csrf = c.csrf("/")
    assert c.post("/logout", form={"csrf": csrf}).status == 303
    assert c.get("/").status == 401
