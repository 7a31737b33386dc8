"""Shared pieces of the portal tests (tests/test_portal*.py): a gateway with its portal, an HTTP client
that keeps a session cookie and can speak from any loopback address, accounts, and quarantined mail.

No tests live here; the name only keeps it with the portal's files."""

from __future__ import annotations

import email
import email.policy
import http.client
import json
import re
import socket
import time
import urllib.parse
from dataclasses import dataclass, field

from helpers import Gateway, wait_until

# A message the shipped rules quarantine (GTUBE scores 1000; quarantine is from 8).
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
PASSWORDS = {"alice": "alice-password-1234", "bob": "bob-password-12345", "helen": "helen-password-1234"}


def portal_settings(sink=None, **portal) -> dict:
    settings = {
        "smtp": {"accepted_domains": ["our.test"]},
        "portal": {"login_max_failures_per_account": 10, "login_max_failures_per_address": 30, **portal},
    }
    if sink is not None:
        settings["relay"] = {"next_hop": sink.next_hop}
    return settings


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class Client:
    """HTTP/1.1 to the portal, one connection per request, with a cookie jar of one session."""

    port: int
    source_ip: str | None = None
    cookies: dict = field(default_factory=dict)
    timeout: float = 30

    def request(self, method: str, path: str, body: bytes | str | None = None, headers: dict | None = None,
                form: dict | list | None = None, token: str | None = None) -> Response:
        headers = dict(headers or {})
        if form is not None:
            body = urllib.parse.urlencode(form, doseq=True)
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if isinstance(body, str):
            body = body.encode()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout,
                                          source_address=(self.source_ip, 0) if self.source_ip else None)
        try:
            try:
                conn.request(method, path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered (413) and closed before the whole body was sent
            r = conn.getresponse()
            data = r.read()
            got = {k.lower(): v for k, v in r.getheaders()}
            for raw in r.headers.get_all("Set-Cookie") or []:
                name, _, rest = raw.partition("=")
                value = rest.split(";", 1)[0]
                if "Max-Age=0" in raw:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
            return Response(r.status, got, data)
        finally:
            conn.close()

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> Response:
        return self.request("POST", path, **kw)

    def login(self, name: str, password: str) -> Response:
        return self.post("/login", form={"name": name, "password": password})

    def csrf(self, path: str = "/") -> str:
        page = self.get(path)
        m = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert m, f"no CSRF token on {path}: {page.status} {page.text[:300]}"
        return m.group(1)


class Portal:
    """A gateway (SMTP and portal in one process) with accounts alice and bob (end users), helen
    (helpdesk) and the first-start admin."""

    def __init__(self, gw: Gateway):
        self.gw = gw
        self.port = gw.portal_port
        wait_until(self._up, timeout=30, what=f"portal on {self.port}\n{gw.logs()}")
        self.admin_password = first_admin_password(gw)

    def _up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def client(self, source_ip: str | None = None) -> Client:
        return Client(self.port, source_ip=source_ip)

    def add_user(self, name: str, role: str, *addresses: str) -> None:
        args = ["users", "add", name, "--role", role, "--password-stdin"]
        for a in addresses:
            args += ["--address", a]
        r = self.gw.cli(*args, input=(PASSWORDS[name] + "\n").encode())
        assert r.returncode == 0, r.stderr

    def token(self, name: str) -> str:
        r = self.gw.cli("users", "token", name, "--name", "tests")
        assert r.returncode == 0, r.stderr
        return r.stdout.decode().strip()

    def logged_in(self, name: str, source_ip: str | None = None) -> Client:
        c = self.client(source_ip)
        password = self.admin_password if name == "admin" else PASSWORDS[name]
        r = c.login(name, password)
        assert r.status == 303, (r.status, r.text[:500])
        return c

    def standard_accounts(self) -> dict:
        self.add_user("alice", "user", "alice@our.test")
        self.add_user("bob", "user", "bob@our.test")
        self.add_user("helen", "helpdesk")
        return {n: self.token(n) for n in ("alice", "bob", "helen", "admin")}


def first_admin_password(gw: Gateway) -> str:
    m = wait_until(lambda: re.search(r"One-time password \(shown only now\): (\S+)", gw.logs()), timeout=30,
                   what="the first-start admin password")
    return m.group(1)


def spam(subject: str, to: str = "alice@our.test", sender: str = "spammer@ext.test", display: str = "Spammer",
         html: str | None = None, attachment_name: str | None = None, mid: str | None = None) -> bytes:
    """A GTUBE message (quarantined) with the given hostile parts, as raw bytes."""
    mid = mid or f"{time.monotonic_ns()}@ext.test"
    head = (f"From: {display} <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
            f"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n")
    parts = [f"Content-Type: text/plain; charset=utf-8\r\n\r\nHello. {GTUBE}\r\n"]
    if html is not None:
        parts.append(f"Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n")
    if attachment_name is not None:
        encoded = urllib.parse.quote(attachment_name, safe="")
        parts.append(f"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; "
                     f"filename*=utf-8''{encoded}\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n")
    body = "".join(f"--b1\r\n{p}" for p in parts) + "--b1--\r\n"
    return (head + "Content-Type: multipart/mixed; boundary=b1\r\n\r\n" + body).encode()


def mail_text(data: bytes) -> str:
    """Every text part of a message, decoded (transfer encoding and charset), one after another."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    return "\n".join(p.get_content() for p in msg.walk() if p.get_content_maintype() == "text")


def held_items(client: Client, token: str, **query) -> list[dict]:
    q = urllib.parse.urlencode(query)
    r = client.get(f"/api/v1/quarantine?{q}", token=token)
    assert r.status == 200, (r.status, r.text[:300])
    return r.json()


def wait_for_item(client: Client, token: str, subject_part: str, timeout: float = 30) -> dict:
    """The quarantined item whose subject contains `subject_part`, once the index has it."""
    def found():
        items = held_items(client, token, status="any")
        return next((i for i in items if subject_part in i["subject"]), None)
    return wait_until(found, timeout=timeout, what=f"a quarantined item with {subject_part!r} in its subject")
