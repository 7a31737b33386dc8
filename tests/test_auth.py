"""Sender authentication, DNS blocklists and sender groups, against real peers on loopback.

A real authoritative DNS server (NLnet Labs' `nsd`, from Debian) serves the test zones on a high port;
messages are signed by a DKIM and ARC signer no one here wrote (`dkimpy` from PyPI) with a key made by
`openssl`. The gateway is the real `portcullis` binary, pointed at that server with `[dns] nameservers`;
clients connect from 127.0.0.x addresses (`source_address`) to be listed or grouped.
"""

from __future__ import annotations

import base64
import email
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import dkim
import dns.message
import dns.query
import pytest

from helpers import free_port, wait_until

NSD = shutil.which("nsd") or "/usr/sbin/nsd"
pytestmark = pytest.mark.skipif(not Path(NSD).exists(), reason="nsd is not installed (scripts/test.sh installs it)")

RCPT = "user@our.test"


# -- the DNS server ---------------------------------------------------------------------------------
class Keys:
    """One RSA key (2048 bits: ring verifies nothing smaller) in the forms dkimpy and DNS want."""

    def __init__(self, workdir: Path):
        pem = workdir / "dkim.pem"
        subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(pem), "2048"], check=True,
                       capture_output=True)
        self.private = pem.read_bytes()
        der = subprocess.run(["openssl", "rsa", "-in", str(pem), "-pubout", "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.public_b64 = base64.b64encode(der).decode()

    def txt(self) -> str:
        """The key record as TXT strings of at most 255 bytes each."""
        value = f"v=DKIM1; k=rsa; p={self.public_b64}"
        return " ".join(f'"{value[i:i + 200]}"' for i in range(0, len(value), 200))


def zone_test(keys: Keys) -> str:
    key = keys.txt()
    return f"""$ORIGIN test.
$TTL 30
@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 30
@ IN NS ns.test.
ns IN A 127.0.0.1
; SPF outcomes for a client on 127.0.0.1
good IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
_dmarc.good IN TXT "v=DMARC1; p=reject"
sel1._domainkey.good IN TXT {key}
client IN TXT "v=spf1 ip4:127.0.0.1 -all"
fail IN TXT "v=spf1 ip4:192.0.2.1 -all"
soft IN TXT "v=spf1 ~all"
neutral IN TXT "v=spf1 ?all"
perm IN TXT "v=spf1 include:none.test -all"
none IN A 192.0.2.9
; DMARC: a spoofed bank (p=reject), a quarantining domain, relaxed and strict DKIM alignment
bank IN TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.bank IN TXT "v=DMARC1; p=reject"
quar IN TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.quar IN TXT "v=DMARC1; p=quarantine"
relaxed IN TXT "v=spf1 -all"
_dmarc.relaxed IN TXT "v=DMARC1; p=reject; adkim=r"
sel1._domainkey.mail.relaxed IN TXT {key}
strict IN TXT "v=spf1 -all"
_dmarc.strict IN TXT "v=DMARC1; p=reject; adkim=s"
sel1._domainkey.mail.strict IN TXT {key}
relay IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
sel1._domainkey.relay IN TXT {key}
; an IP blocklist listing 127.0.0.2 and a domain blocklist listing evil-links.test
2.0.0.127.bl IN A 127.0.0.2
2.0.0.127.bl IN TXT "listed for testing"
evil-links.test.dbl IN A 127.0.1.2
; forward-confirmed and unconfirmed reverse names
host3.dyn IN A 127.0.0.3
"""


ZONE_REVERSE = """$ORIGIN 0.0.127.in-addr.arpa.
$TTL 30
@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 30
@ IN NS ns.test.
1 IN PTR localhost.test.
3 IN PTR host3.dyn.test.
4 IN PTR host4.dyn.test.
"""


class NameServer:
    """nsd in the foreground on 127.0.0.1:<port>, serving `test.` and `0.0.127.in-addr.arpa.`."""

    def __init__(self, workdir: Path, keys: Keys):
        self.dir = workdir / "nsd"
        self.dir.mkdir()
        self.port = free_port()
        (self.dir / "test.zone").write_text(zone_test(keys))
        (self.dir / "reverse.zone").write_text(ZONE_REVERSE)
        d = self.dir
        (d / "nsd.conf").write_text(f"""server:
    ip-address: 127.0.0.1@{self.port}
    port: {self.port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    pidfile: "{d}/nsd.pid"
    xfrdfile: "{d}/xfrd.state"
    zonelistfile: "{d}/zone.list"
    xfrdir: "{d}"
    logfile: "{d}/nsd.log"
    server-count: 1
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: test
    zonefile: test.zone
zone:
    name: 0.0.127.in-addr.arpa
    zonefile: reverse.zone
""")
        self.proc = subprocess.Popen([NSD, "-d", "-c", str(d / "nsd.conf")], stdout=subprocess.DEVNULL,
                                     stderr=open(d / "stderr.log", "wb"))
        wait_until(self._answers, timeout=20, what=f"nsd on port {self.port}: {self.logs()}")

    def query(self, name: str, rdtype: str = "A"):
        return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=self.port, timeout=1)

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"nsd exited with {self.proc.returncode}: {self.logs()}")
        try:
            return bool(self.query("good.test.", "TXT").answer)
        except Exception:
            return False

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.dir.glob("*.log") if p.exists())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("auth")


@pytest.fixture(scope="module")
def keys(workdir):
    return Keys(workdir)


@pytest.fixture(scope="module")
def nameserver(workdir, keys):
    ns = NameServer(workdir, keys)
    yield ns
    ns.stop()


def auth_settings(ns: NameServer, **sections) -> dict:
    base = {
        "dns": {"nameservers": [ns.address], "timeout": "1s", "attempts": 1},
        "reputation": {
            "ip_blocklists": [{"zone": "bl.test", "symbol": "RBL_TEST", "score": 2.5}],
            "url_blocklists": ["dbl.test"],
        },
    }
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v}
    return base


# -- messages ---------------------------------------------------------------------------------------
_counter = [0]


def message(from_addr: str, subject: str = "hello", body: str = "Hello there.\r\nSee you soon.\r\n",
            extra: str = "") -> bytes:
    _counter[0] += 1
    mid = f"<auth-{_counter[0]}-{time.monotonic_ns()}@client.test>"
    head = (f"From: Someone <{from_addr}>\r\nTo: {RCPT}\r\nSubject: {subject}\r\n"
            f"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: {mid}\r\n{extra}")
    return (head + "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + body).encode()


def sign(msg: bytes, keys: Keys, domain: str, canon=(b"relaxed", b"relaxed"), length=False,
         selector=b"sel1") -> bytes:
    sig = dkim.sign(msg, selector, domain.encode(), keys.private, canonicalize=canon, length=length,
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig + msg


def verdict_symbols(delivered: bytes) -> set[str]:
    value = email.message_from_bytes(delivered).get("X-Portcullis-Verdict", "")
    return {item.split("(")[0] for item in value.replace("\r\n\t", " ").split(";")[-1].split()}


def auth_results(delivered: bytes) -> str:
    parsed = email.message_from_bytes(delivered)
    values = parsed.get_all("Authentication-Results") or []
    return " ".join(v.replace("\r\n", "").replace("\t", " ") for v in values[:1])


def deliver(gw, msg: bytes, sender: str, source_ip: str = "127.0.0.1", helo: str = "client.test") -> bytes:
    """Send through the gateway and return the message as delivered to the local mailbox."""
    before = set(gw.maildir(RCPT))
    with gw.smtp(source_ip=source_ip) as s:
        s.ehlo(helo)
        code, reply = s.mail(sender)
        assert code == 250, (code, reply)
        assert s.rcpt(RCPT)[0] == 250
        code, reply = s.data(msg)
        assert code == 250, (code, reply, gw.logs()[-3000:])
    new = wait_until(lambda: [m for m in gw.maildir(RCPT) if m not in before], timeout=20,
                     what=f"delivery\n{gw.logs()[-3000:]}")
    return new[0]


def scan(gw, tmp: Path, name: str, msg: bytes) -> dict:
    path = tmp / f"{name}.eml"
    path.write_bytes(msg)
    out = gw.cli("scan", "--json", str(path))
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout.decode().splitlines()[0])


def names(scanned: dict) -> dict[str, str]:
    return {s["name"]: s["reason"] for s in scanned["symbols"]}


# -- the tests --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def authgw(nameserver, tmp_path_factory):
    """A gateway that rejects DMARC p=reject failures, with both blocklists."""
    from helpers import Gateway
    gw = Gateway(tmp_path_factory.mktemp("authgw"),
                 auth_settings(nameserver, auth={"dmarc_reject_action": "reject"}), name="auth").start()
    yield gw
    gw.kill()


def test_signed_aligned_message_is_delivered_with_authentication_results(authgw, keys):
    delivered = deliver(authgw, sign(message("alice@good.test"), keys, "good.test"), "alice@good.test")
    ar = auth_results(delivered)
    assert ar.startswith("mx.our.test;"), ar
    assert "spf=pass smtp.mailfrom=alice@good.test" in ar, ar
    assert "dkim=pass header.d=good.test header.s=sel1" in ar, ar
    assert "dmarc=pass header.from=good.test policy.dmarc=reject" in ar, ar
    assert "arc=none" in ar, ar
    symbols = verdict_symbols(delivered)
    assert {"SPF_PASS", "DKIM_ALLOW", "DMARC_POLICY_ALLOW", "AUTH_ALL_PASS"} <= symbols, symbols
    # Ours is the first field of the delivered message after our Received:.
    assert delivered.split(b"\r\n")[0].startswith(b"Received: ")
    assert b"\r\nAuthentication-Results: mx.our.test;" in delivered.split(b"\r\n\r\n")[0]


def test_spoofed_dmarc_reject_is_rejected_when_configured(authgw):
    msg = message("security@bank.test", subject="Verify your account")
    with authgw.smtp() as s:
        s.ehlo("client.test")
        assert s.mail("bounce@client.test")[0] == 250
        assert s.rcpt(RCPT)[0] == 250
        code, reply = s.data(msg)
    assert code == 550, (code, reply)
    assert b"5.7.1" in reply and b"DMARC_POLICY_REJECT" in reply, reply


def test_spoofed_dmarc_reject_is_quarantined_by_default(nameserver, gateway_factory):
    gw = gateway_factory(auth_settings(nameserver))
    code, reply = None, None
    with gw.smtp() as s:
        s.ehlo("client.test")
        s.mail("bounce@client.test")
        s.rcpt(RCPT)
        code, reply = s.data(message("security@bank.test", subject="Verify your account"))
    assert code == 250, (code, reply)
    wait_until(lambda: gw.queue_ids("quarantine"), timeout=10, what="the spoof in quarantine")
    assert gw.maildir(RCPT) == []
    assert "DMARC_POLICY_REJECT" in gw.logs()


def test_dmarc_quarantine_policy_is_quarantined(nameserver, gateway_factory):
    gw = gateway_factory(auth_settings(nameserver, auth={"dmarc_reject_action": "reject"}))
    with gw.smtp() as s:
        s.ehlo("client.test")
        s.mail("bounce@client.test")
        s.rcpt(RCPT)
        code, _ = s.data(message("news@quar.test"))
    assert code == 250
    wait_until(lambda: gw.queue_ids("quarantine"), timeout=10, what="quarantine")
    assert "DMARC_POLICY_QUARANTINE" in gw.logs()


def test_dmarc_enforcement_off_only_scores(nameserver, gateway_factory):
    gw = gateway_factory(auth_settings(nameserver, auth={"dmarc_enforce": False}))
    delivered = deliver(gw, message("security@bank.test"), "bounce@client.test")
    symbols = verdict_symbols(delivered)
    assert "DMARC_POLICY_REJECT" in symbols, symbols
    assert "dmarc=fail header.from=bank.test policy.dmarc=reject" in auth_results(delivered)


@pytest.mark.parametrize("domain,symbol,result", [
    ("client.test", "SPF_PASS", "pass"),
    # The shipped composite AUTH_FORGED (SPF_FAIL without DKIM) consumes SPF_FAIL.
    ("fail.test", "AUTH_FORGED", "fail"),
    ("soft.test", "SPF_SOFTFAIL", "softfail"),
    ("neutral.test", "SPF_NEUTRAL", "neutral"),
    ("none.test", "SPF_NONE", "none"),
    ("perm.test", "SPF_PERMERROR", "permerror"),
])
def test_spf_outcomes(authgw, domain, symbol, result):
    sender = f"someone@{domain}"
    delivered = deliver(authgw, message("someone@client.test"), sender)
    assert symbol in verdict_symbols(delivered), verdict_symbols(delivered)
    assert f"spf={result} smtp.mailfrom={sender}" in auth_results(delivered), auth_results(delivered)


def test_null_sender_checks_the_helo_name(authgw):
    delivered = deliver(authgw, message("mailer-daemon@client.test"), "", helo="client.test")
    assert "spf=pass smtp.helo=client.test" in auth_results(delivered), auth_results(delivered)


def test_dkim_canonicalisations_and_broken_signatures(authgw, keys, tmp_path):
    base = message("alice@good.test", body="Line one.  \r\nLine two\r\n\r\n\r\n")
    for canon in [(b"relaxed", b"relaxed"), (b"simple", b"simple"), (b"relaxed", b"simple"),
                  (b"simple", b"relaxed")]:
        found = names(scan(authgw, tmp_path, "c", sign(base, keys, "good.test", canon=canon)))
        assert "DKIM_ALLOW" in found, (canon, found)
        assert f"c={canon[0].decode()}/{canon[1].decode()}" in found["DKIM_ALLOW"]
        assert "DMARC_POLICY_ALLOW" in found, found
    signed = sign(base, keys, "good.test")
    tampered_body = signed.replace(b"Line two", b"Line 2")
    found = names(scan(authgw, tmp_path, "b", tampered_body))
    assert "DKIM_REJECT" in found and "body hash" in found["DKIM_REJECT"].lower(), found
    assert "DKIM_ALLOW" not in found
    tampered_head = signed.replace(b"Subject: hello", b"Subject: hullo")
    found = names(scan(authgw, tmp_path, "h", tampered_head))
    assert "DKIM_REJECT" in found, found
    # Without the client address a scan has no SPF: DMARC rests on DKIM alone and fails here.
    assert "DMARC_POLICY_REJECT" in found, found
    # Simple header canonicalisation breaks on refolding, relaxed does not.
    simple = sign(base, keys, "good.test", canon=(b"simple", b"simple"))
    refolded = simple.replace(b"Subject: hello", b"Subject:  hello")
    assert "DKIM_REJECT" in names(scan(authgw, tmp_path, "s", refolded))
    relaxed = sign(base, keys, "good.test", canon=(b"relaxed", b"relaxed"))
    assert "DKIM_ALLOW" in names(scan(authgw, tmp_path, "r", relaxed.replace(b"Subject: hello", b"Subject:  hello")))


def test_too_many_signatures_are_not_verified(authgw, keys, tmp_path):
    msg = message("alice@good.test")
    for _ in range(11):
        msg = sign(msg, keys, "good.test")
    found = names(scan(authgw, tmp_path, "many", msg))
    assert "DKIM_TOO_MANY_SIGNATURES" in found and "DKIM_ALLOW" not in found, found


def test_dkim_key_problems_and_no_signature(authgw, keys, tmp_path):
    msg = message("alice@good.test")
    missing = sign(msg, keys, "good.test", selector=b"nokey")
    assert "DKIM_PERMFAIL" in names(scan(authgw, tmp_path, "k", missing))
    assert "DKIM_NA" in names(scan(authgw, tmp_path, "n", msg))
    two = sign(sign(msg, keys, "relay.test"), keys, "good.test")
    scanned = scan(authgw, tmp_path, "two", two)
    allow = names(scanned)["DKIM_ALLOW"]
    assert "header.d=good.test" in allow and "header.d=relay.test" in allow, allow


def test_body_length_tag(authgw, keys, tmp_path):
    signed = sign(message("alice@good.test"), keys, "good.test", length=True)
    found = names(scan(authgw, tmp_path, "l", signed))
    assert {"DKIM_ALLOW", "DKIM_BODY_LENGTH"} <= set(found), found
    assert "DKIM_UNSIGNED_CONTENT" not in found
    appended = signed + b"\r\nClick http://www.evil-links.test/win now!\r\n"
    scanned = scan(authgw, tmp_path, "la", appended)
    found = names(scanned)
    assert {"DKIM_ALLOW", "DKIM_BODY_LENGTH", "DKIM_UNSIGNED_CONTENT", "DKIM_APPENDED_CONTENT"} <= set(found), found
    assert "URIBL_DBL_TEST" in found and "evil-links.test" in found["URIBL_DBL_TEST"], found
    assert "127.0.1.2" in found["URIBL_DBL_TEST"]


def test_body_length_tag_refused_when_configured(nameserver, gateway_factory, keys, tmp_path):
    gw = gateway_factory(auth_settings(nameserver, auth={"dkim_allow_length_tag": False}), start=False)
    signed = sign(message("alice@good.test"), keys, "good.test", length=True)
    found = names(scan(gw, tmp_path, "strict", signed))
    assert "DKIM_PERMFAIL" in found and "DKIM_ALLOW" not in found, found


def test_dmarc_relaxed_and_strict_alignment(authgw, keys, tmp_path):
    relaxed = sign(message("ceo@relaxed.test"), keys, "mail.relaxed.test")
    found = names(scan(authgw, tmp_path, "ra", relaxed))
    assert "DKIM_ALLOW" in found and "DMARC_POLICY_ALLOW" in found, found
    strict = sign(message("ceo@strict.test"), keys, "mail.strict.test")
    found = names(scan(authgw, tmp_path, "sa", strict))
    assert "DKIM_ALLOW" in found and "DMARC_POLICY_REJECT" in found, found
    unaligned = sign(message("ceo@bank.test"), keys, "good.test")
    found = names(scan(authgw, tmp_path, "ua", unaligned))
    assert "DKIM_ALLOW" in found and "DMARC_POLICY_REJECT" in found, found


def test_arc_chain(authgw, keys, tmp_path):
    msg = message("alice@good.test", extra="Authentication-Results: relay.test; spf=pass smtp.mailfrom=good.test\r\n")
    sealed = b"".join(dkim.arc_sign(msg, b"sel1", b"relay.test", keys.private, b"relay.test")) + msg
    found = names(scan(authgw, tmp_path, "arc", sealed))
    assert "ARC_ALLOW" in found, found
    broken = sealed.replace(b"See you soon.", b"See you later.")
    assert "ARC_REJECT" in names(scan(authgw, tmp_path, "arcb", broken))
    assert "ARC_NA" in names(scan(authgw, tmp_path, "arcn", message("alice@good.test")))


def test_forged_authentication_results_claiming_our_name(authgw, keys):
    forged = "Authentication-Results: mx.our.test; spf=pass smtp.mailfrom=bank.test; dkim=pass\r\n"
    delivered = deliver(authgw, message("alice@client.test", extra=forged), "alice@client.test")
    assert "AUTH_RESULTS_FORGED" in verdict_symbols(delivered)
    other = "Authentication-Results: mx.elsewhere.test; spf=pass\r\n"
    delivered = deliver(authgw, message("alice@client.test", extra=other), "alice@client.test")
    assert "AUTH_RESULTS_FORGED" not in verdict_symbols(delivered)


def test_listed_client_and_url_hosts(authgw):
    body = "Visit http://www.evil-links.test/offer and http://fine.example.test/ today.\r\n"
    delivered = deliver(authgw, message("alice@good.test", body=body), "alice@good.test",
                        source_ip="127.0.0.2")
    symbols = verdict_symbols(delivered)
    assert {"RBL_TEST", "URIBL_DBL_TEST"} <= symbols, symbols
    delivered = deliver(authgw, message("alice@client.test"), "alice@client.test")
    assert not {"RBL_TEST", "URIBL_DBL_TEST"} & verdict_symbols(delivered)


def test_offline_scan_makes_no_lookups(authgw, keys, tmp_path):
    path = tmp_path / "o.eml"
    path.write_bytes(sign(message("alice@good.test"), keys, "good.test"))
    out = authgw.cli("scan", "--json", "--offline", str(path))
    scanned = json.loads(out.stdout)
    assert scanned["offline"] is True
    assert not [s for s in scanned["symbols"] if s["name"].startswith(("DKIM_", "DMARC_", "SPF_", "ARC_"))]


# -- sender groups (connection-time policy) --------------------------------------------------------
@pytest.fixture(scope="module")
def hatgw(nameserver, tmp_path_factory):
    from helpers import Gateway
    groups = [
        {"name": "blocked", "ips": ["127.0.0.5"], "policy": "reject"},
        {"name": "listed", "dnsbl": ["bl.test"], "policy": "tempfail"},
        {"name": "throttled", "ips": ["127.0.0.3"], "policy": "throttle", "max_connections": 2, "window": "1h"},
    ]
    settings = auth_settings(nameserver, reputation={"sender_group": groups})
    gw = Gateway(tmp_path_factory.mktemp("hatgw"), settings, name="hat").start()
    yield gw
    gw.kill()


def greeting(gw, source_ip: str) -> tuple[int, str]:
    with gw.raw(source_ip=source_ip) as c:
        return c.read_reply()


def test_rejected_group_gets_554_at_connection(hatgw):
    code, text = greeting(hatgw, "127.0.0.5")
    assert code == 554 and "5.7.1" in text, text
    assert greeting(hatgw, "127.0.0.1")[0] == 220


def test_blocklisted_group_gets_421(hatgw):
    code, text = greeting(hatgw, "127.0.0.2")
    assert code == 421 and "4.7.0" in text, text


def test_throttled_group_connection_rate(hatgw):
    def one_message() -> int:
        with hatgw.smtp(source_ip="127.0.0.3") as s:
            s.ehlo("client.test")
            code, _ = s.mail("a@client.test")
            return code
    assert one_message() == 250
    assert one_message() == 250
    with hatgw.raw(source_ip="127.0.0.3") as c:
        code, text = c.read_reply()
        assert code == 421 and "4.7.0" in text, (code, text)
    assert greeting(hatgw, "127.0.0.4")[0] == 220, "other addresses are counted apart"


def test_message_rate_limit_at_mail_from(nameserver, gateway_factory):
    # (Reverse names are matched in the checks crate's tests: the resolver answers every 127.x
    # reverse query with `localhost` itself, as RFC 6761 asks, so loopback clients cannot have one.)
    groups = [{"name": "busy", "ips": ["127.0.0.3"], "policy": "throttle", "max_messages": 2, "window": "1h"}]
    gw = gateway_factory(auth_settings(nameserver, reputation={"sender_group": groups}))
    with gw.raw(source_ip="127.0.0.3") as c:
        assert c.read_reply()[0] == 220
        c.command("EHLO client.test")
        assert c.command("MAIL FROM:<a@client.test>")[0] == 250
        c.command("RSET")
        assert c.command("MAIL FROM:<a@client.test>")[0] == 250
        c.command("RSET")
        code, text = c.command("MAIL FROM:<a@client.test>")
        assert code == 451 and "4.7.1" in text, text
    with gw.raw(source_ip="127.0.0.4") as c:
        assert c.read_reply()[0] == 220
        c.command("EHLO client.test")
        for _ in range(3):
            assert c.command("MAIL FROM:<a@client.test>")[0] == 250
            c.command("RSET")
