"""SMTP conformance against real clients (smtplib, swaks, raw sockets): every command, extension and limit."""

import smtplib
import subprocess

import pytest

from checks import assert_still_serving
from helpers import strip_received, wait_until


def body(subject="hello", extra=""):
    return (f"From: a@ext.test\r\nTo: b@our.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@client.test>\r\n"
            f"\r\nline one\r\n.leading dot\r\n{extra}").encode()


def test_ehlo_advertises_the_extensions(gateway):
    with gateway.smtp() as s:
        code, _ = s.ehlo("client.test")
        assert code == 250
        for ext in ["pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking", "starttls"]:
            assert s.has_extn(ext), ext
        assert s.esmtp_features["size"] == str(25 * 1024 * 1024)


def test_every_command_answers_with_its_code(gateway):
    with gateway.raw() as c:
        assert c.read_reply()[0] == 220
        assert c.command("HELO client.test")[0] == 250
        for cmd, expect in [("NOOP", "250 2.0.0"), ("RSET", "250 2.0.0"), ("VRFY root", "252 2.5.0"),
                            ("HELP", "214 2.0.0"), ("EXPN staff", "502 5.5.1"), ("XYZZY", "500 5.5.1"),
                            ("AUTH PLAIN AAAA", "502 5.5.1"), ("DATA", "503 5.5.1"),
                            ("RCPT TO:<b@our.test>", "503 5.5.1"), ("MAIL FROM:<a@ext.test> SIZE=10", "555 5.5.4")]:
            code, text = c.command(cmd)
            assert text.startswith(expect), (cmd, text)
        assert c.command("QUIT")[1].startswith("221 2.0.0")
        assert c.is_closed()


def test_smtplib_message_arrives_byte_identical(gateway, sink):
    msg = body("identical", "trailing\r\n")
    reply = gateway.send("a@ext.test", ["b@our.test", "c@our.test"], msg)
    assert reply.startswith("2.0.0 OK queued as "), reply
    (sender, rcpts, data), = sink.wait_for(1)
    assert sender == "a@ext.test"
    assert sorted(rcpts) == ["b@our.test", "c@our.test"]
    assert strip_received(data) == msg
    assert data.startswith(b"Received: from client.test ([127.0.0.1])\r\n\tby mx.our.test (Portcullis) with ESMTP id ")


def test_swaks_plain_pipelined_and_starttls(gateway, sink):
    base = ["swaks", "--server", f"127.0.0.1:{gateway.port}", "--from", "a@ext.test", "--to", "b@our.test",
            "--helo", "swaks.test", "--timeout", "20"]
    for extra in [[], ["--pipeline"], ["--tls"]]:
        r = subprocess.run(base + extra + ["--header", f"Subject: swaks {extra}"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "250 2.0.0 OK queued as" in r.stdout
    got = sink.wait_for(3)
    assert any(b"with ESMTPS id" in m[2] for m in got), "the --tls message was received over TLS"


def test_starttls_with_smtplib(gateway, sink):
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with gateway.smtp() as s:
        s.ehlo("client.test")
        assert s.starttls(context=ctx)[0] == 220
        s.ehlo("client.test")
        assert not s.has_extn("starttls")
        s.sendmail("a@ext.test", ["b@our.test"], body("tls"))
    (_, _, data), = sink.wait_for(1)
    assert b"with ESMTPS id" in data.split(b"\r\n\r\n")[0]


def test_smtputf8_and_8bitmime(gateway, sink):
    utf8_body = "From: jörg@ext.test\r\nSubject: grüße\r\n\r\nÜnïcödé\r\n".encode()
    with gateway.smtp() as s:
        s.ehlo("client.test")
        s.sendmail("jörg@ext.test", ["b@our.test"], utf8_body, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    (sender, _, data), = sink.wait_for(1)
    assert sender == "jörg@ext.test"
    assert strip_received(data) == utf8_body
    with gateway.raw() as c:
        c.read_reply()
        c.command("EHLO c")
        assert c.command("MAIL FROM:<jörg@ext.test>")[1].startswith("553 5.6.7")


def test_size_limits(gateway_factory, sink):
    gw = gateway_factory({"smtp": {"max_message_size": 100_000}, "relay": {"next_hop": sink.next_hop}})
    with gw.raw() as c:
        c.read_reply()
        c.command("EHLO c")
        assert c.command("MAIL FROM:<a@ext.test> SIZE=99999999999")[1].startswith("552 5.3.4")
        assert c.command("MAIL FROM:<a@ext.test>")[0] == 250
        assert c.command("RCPT TO:<b@our.test>")[0] == 250
        assert c.command("DATA")[0] == 354
        line = b"x" * 998 + b"\r\n"
        for _ in range(200):  # 200 kB, twice the limit, streamed
            c.send(line)
        code, text = c.command(b".")
        assert text.startswith("552 5.3.4"), text
        assert c.command("NOOP")[0] == 250
    assert gw.queue_ids("incoming") == [] and gw.queue_ids("active") == []
    assert sink.received() == []
    assert_still_serving(gw, sink)


def test_pipelined_transaction_in_one_write(gateway, sink):
    with gateway.raw() as c:
        c.read_reply()
        c.command("EHLO c")
        c.send(b"MAIL FROM:<a@ext.test>\r\nRCPT TO:<b@our.test>\r\nRCPT TO:<nobody@ext.test>\r\n"
               b"RCPT TO:<c@our.test>\r\nDATA\r\n")
        codes = [c.read_reply()[0] for _ in range(5)]
        assert codes == [250, 250, 550, 250, 354]
        c.send(b"Subject: p\r\n\r\nx\r\n.\r\nMAIL FROM:<a@ext.test>\r\nRCPT TO:<d@our.test>\r\nDATA\r\n")
        codes = [c.read_reply()[0] for _ in range(4)]
        assert codes == [250, 250, 250, 354]
        c.send(b"Subject: q\r\n\r\ny\r\n.\r\nQUIT\r\n")
        assert [c.read_reply()[0] for _ in range(2)] == [250, 221]
    got = sink.wait_for(2)
    assert sorted(r for m in got for r in m[1]) == ["b@our.test", "c@our.test", "d@our.test"]


def test_bdat_chunking(gateway, sink):
    with gateway.raw() as c:
        c.read_reply()
        c.command("EHLO c")
        c.command("MAIL FROM:<a@ext.test>")
        c.command("RCPT TO:<b@our.test>")
        part1, part2 = b"Subject: chunks\r\n\r\nfirst ", b"second\r\n.\r\n"
        c.send(b"BDAT %d\r\n" % len(part1) + part1)
        assert c.read_reply()[1].startswith("250 2.0.0")
        c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
        assert "queued as" in c.read_reply()[1]
        # Misuse: DATA after BDAT, BDAT without a transaction (its bytes are skipped, not run).
        c.command("MAIL FROM:<a@ext.test>")
        c.command("RCPT TO:<b@our.test>")
        c.send(b"BDAT 2\r\nab")
        c.read_reply()
        assert c.command("DATA")[1].startswith("503 5.5.1")
        assert c.command("RSET")[0] == 250
        c.send(b"BDAT 6 LAST\r\nQUIT\r\n")
        assert c.read_reply()[1].startswith("503 5.5.1")
        assert c.command("NOOP")[0] == 250
    (_, _, data), = sink.wait_for(1)
    assert strip_received(data) == part1 + part2, "BDAT content is stored as sent (a dot line is content)"


def test_recipient_limit(gateway_factory, sink):
    gw = gateway_factory({"relay": {"next_hop": sink.next_hop}})
    with gw.raw(timeout=60) as c:
        c.read_reply()
        c.command("EHLO c")
        c.command("MAIL FROM:<a@ext.test>")
        c.send(b"".join(b"RCPT TO:<r%d@our.test>\r\n" % i for i in range(1001)))
        replies = [c.read_reply()[1] for _ in range(1001)]
        assert all(r.startswith("250 2.1.5") for r in replies[:1000])
        assert replies[1000].startswith("452 4.5.3"), replies[1000]
        assert c.command("DATA")[0] == 354
        assert "queued as" in c.command(b"Subject: many\r\n\r\nx\r\n.")[1]
    got = wait_until(lambda: sum(len(m[1]) for m in sink.received()) >= 1000 and sink.received(), timeout=60,
                     what="1000 recipients delivered")
    assert sum(len(m[1]) for m in got) == 1000
    assert len({r for m in got for r in m[1]}) == 1000


def test_unknown_recipient_is_refused_at_rcpt(gateway_factory, sink):
    gw = gateway_factory({"smtp": {"recipients": ["known@our.test"]}, "relay": {"next_hop": sink.next_hop}})
    with gw.smtp() as s:
        s.ehlo("c")
        s.mail("a@ext.test")
        code, msg = s.rcpt("stranger@our.test")
        assert (code, msg[:5]) == (550, b"5.1.1")
        assert s.rcpt("Known@our.test")[0] == 250


def test_local_maildir_delivery(gateway_factory):
    gw = gateway_factory({"smtp": {"accepted_domains": ["our.test", "localhost"]}})
    gw.send("a@ext.test", ["User@localhost"], body("maildir"))
    wait_until(lambda: gw.maildir("User@localhost"), what="maildir delivery")
    (data,) = gw.maildir("User@localhost")
    assert strip_received(data) == body("maildir")


def test_smtplib_rejects_are_exceptions_not_hangs(gateway):
    with gateway.smtp() as s:
        s.ehlo("c")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.sendmail("a@ext.test", ["x@elsewhere.test"], b"Subject: x\r\n\r\nx\r\n")


def test_starttls_uses_the_configured_certificate(gateway_factory, sink, tmp_path):
    import ssl
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=configured.our.test",
                    "-keyout", str(key), "-out", str(cert), "-days", "2"], check=True, capture_output=True)
    gw = gateway_factory({"smtp": {"tls_cert": str(cert), "tls_key": str(key)}, "relay": {"next_hop": sink.next_hop}})
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    with gw.smtp() as s:
        s.ehlo("client.test")
        s.starttls(context=ctx)  # verifies against the configured certificate
        assert s.sock.getpeercert()["subject"] == ((("commonName", "configured.our.test"),),)
        s.ehlo("client.test")
        s.sendmail("a@ext.test", ["b@our.test"], body("configured-cert"))
    sink.wait_for(1)
    # A certificate path that does not exist stops the start with a clear error.
    bad = gateway_factory({"smtp": {"tls_cert": str(tmp_path / "nope.pem"), "tls_key": str(key)}}, start=False)
    r = bad.cli("serve", timeout=30)
    assert r.returncode == 2 and b"nope.pem" in r.stderr, r.stderr
