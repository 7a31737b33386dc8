"""Every row of the SMTP intake table in shared/THREATS.md, against the real binary on loopback."""

import os
import resource
import socket
import subprocess
import time

import pytest

from checks import assert_not_created, assert_still_serving, child_processes, marker_path
from helpers import to_toml, wait_until


def opened(gw, helo="EHLO client.test"):
    c = gw.raw()
    assert c.read_reply()[0] == 220
    if helo:
        assert c.command(helo)[0] == 250
    return c


def test_shell_in_envelope(gateway, sink, tmp_path):
    marker = marker_path(tmp_path)
    with opened(gateway) as c:
        for sender in [f"<;touch {marker};>", f"<`touch {marker}`@a.test>", f"<$(touch {marker})@a.test>",
                       "<`id`@a.test>", "<$(id)@a.test>"]:
            code, text = c.command(f"MAIL FROM:{sender}")
            assert text.startswith("501 5.1.7"), (sender, text)
        assert c.command("MAIL FROM:<ok@a.test>")[0] == 250, "session still usable"
    assert_not_created(marker)
    assert_still_serving(gateway, sink)


def test_expansion_syntax_is_never_interpreted(gateway, sink, tmp_path):
    marker = marker_path(tmp_path)
    with opened(gateway) as c:
        c.command("MAIL FROM:<a@ext.test>")
        for rcpt in [f"<${{run{{/bin/sh -c 'touch {marker}'}}}}@our.test>", "<${run{/bin/sh -c id}}@local.test>",
                     "<${run{x}}@our.test>"]:
            code, text = c.command(f"RCPT TO:{rcpt}")
            assert code in (501, 550), (rcpt, text)
    assert_not_created(marker)
    assert_still_serving(gateway, sink)


def test_control_bytes(gateway, sink):
    with opened(gateway, helo=None) as c:
        for line in [b"EHLO a\x00b", b"EHLO a\rb", "EHLO caf\u00e9".encode()]:
            assert c.command(line)[1].startswith("501 5.5.2"), line
        c.send(b"EHLO bare-lf\n")
        assert c.read_reply()[1].startswith("501 5.5.2")
        # A HELO name that is printable but odd is accepted and shows up escaped in Received:.
        assert c.command("EHLO odd(name);x")[0] == 250
        c.command("MAIL FROM:<a@ext.test>")
        c.command("RCPT TO:<b@our.test>")
        c.command("DATA")
        assert "queued as" in c.command(b"Subject: odd\r\n\r\nx\r\n.")[1]
    (_, _, data), = sink.wait_for(1)
    assert data.startswith(b"Received: from odd?name??x ([127.0.0.1])")
    assert_still_serving(gateway, sink)


def test_long_lines_and_parts(gateway, sink):
    with opened(gateway) as c:
        assert c.command(b"MAIL FROM:<" + b"a" * 10_000 + b"@x.test>")[1].startswith("500 5.5.2")
        assert c.command(b"MAIL FROM:<" + b"a" * 65 + b"@x.test>")[1].startswith("501 5.1.7")
        assert c.command(b"MAIL FROM:<a@" + b"b" * 250 + b".test>")[1].startswith("501 5.1.7")
        c.command("MAIL FROM:<a@x.test>")
        assert c.command(b"RCPT TO:<" + b"a" * 65 + b"@our.test>")[1].startswith("501 5.1.3")
    assert gateway.proc is not None
    rss_kb = int(next(l for l in open(f"/proc/{gateway.proc.pid}/status") if l.startswith("VmRSS")).split()[1])
    assert rss_kb < 200_000, f"resident memory {rss_kb} kB"
    assert_still_serving(gateway, sink)


SMUGGLING = [b"\n.\n", b"\n.\r", b"\r.\n", b"\r.\r", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r\r\n"]


@pytest.mark.parametrize("terminator", SMUGGLING, ids=[repr(t) for t in SMUGGLING])
def test_smtp_smuggling(gateway, sink, terminator):
    with opened(gateway) as c:
        c.command("MAIL FROM:<a@ext.test>")
        c.command("RCPT TO:<b@our.test>")
        assert c.command("DATA")[0] == 354
        c.send(b"Subject: first\r\n\r\nbody" + terminator +
               b"MAIL FROM:<smuggled@ext.test>\r\nRCPT TO:<victim@our.test>\r\nDATA\r\nSubject: second\r\n\r\nx\r\n.\r\n")
        code, text = c.read_reply()
        assert text.startswith("550 5.5.2"), text
        assert c.is_closed()
    time.sleep(0.5)
    assert sink.received() == [], "nothing was accepted, let alone two messages"
    assert gateway.queue_ids("incoming") == []
    assert_still_serving(gateway, sink)


def test_nul_before_dot_is_content_not_terminator(gateway, sink):
    with opened(gateway) as c:
        c.command("MAIL FROM:<a@ext.test>")
        c.command("RCPT TO:<b@our.test>")
        c.command("DATA")
        c.send(b"Subject: nul\r\n\r\nx\r\n\x00.\r\nMAIL FROM:<s@ext.test>\r\n.\r\n")
        assert "queued as" in c.read_reply()[1]
    (_, _, data), = sink.wait_for(1)
    assert b"\x00.\r\nMAIL FROM:<s@ext.test>\r\n" in data


def test_early_talker(gateway_factory, sink):
    gw = gateway_factory({"smtp": {"greeting_delay": "1s"}, "relay": {"next_hop": sink.next_hop}})
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"EHLO x\r\nMAIL FROM:<a@ext.test>\r\nRCPT TO:<b@our.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"554 5.5.0"), data
    assert b"250" not in data
    assert sink.received() == []
    assert_still_serving(gw, sink)


def test_starttls_injection(gateway, sink):
    with opened(gateway) as c:
        c.send(b"STARTTLS\r\nMAIL FROM:<x@ext.test>\r\n")
        assert c.read_reply()[0] == 220
        c.starttls()
        assert c.command("RCPT TO:<b@our.test>")[1].startswith("503 5.5.1"), "the injected MAIL was discarded"
        assert c.command("EHLO again")[0] == 250
        assert c.command("MAIL FROM:<x@ext.test>")[0] == 250
    assert_still_serving(gateway, sink)


RELAY_TRICKS = ["<v@ext.test>", '<"v@ext.test">', "<v%ext.test@our.test>", "<ext.test!v@our.test>",
                "<@our.test:v@ext.test>", "<v@ext.test@our.test>", "<v@ext.test.>", "<v@[127.0.0.1]>"]


def test_open_relay_attempts(gateway, sink):
    with opened(gateway) as c:
        c.command("MAIL FROM:<a@ext.test>")
        for rcpt in RELAY_TRICKS:
            text = c.command(f"RCPT TO:{rcpt}")[1]
            assert text.startswith("550 5.7.1") or text.startswith("554 5.7.1"), (rcpt, text)
            c.command("RSET")
            c.command("MAIL FROM:<a@ext.test>")
        # A trailing dot on our own domain is the same canonical address, and routes there.
        assert c.command("RCPT TO:<v@our.test.>")[0] == 250
        c.command("DATA")
        c.command(b"Subject: dot\r\n\r\nx\r\n.")
    (_, rcpts, _), = sink.wait_for(1)
    assert rcpts == ["v@our.test"]


def test_junk_flood(gateway, sink):
    with opened(gateway) as c:
        c.send(b"".join(b"JUNK %d\r\n" % i for i in range(200)))
        codes = []
        while True:
            try:
                codes.append(c.read_reply()[0])
            except ConnectionError:
                break
        assert codes[-1] == 421 and codes.count(500) == 20, codes
        assert c.is_closed()
    assert_still_serving(gateway, sink)


def test_slowloris_command_and_data(gateway_factory, sink):
    gw = gateway_factory({"smtp": {"command_timeout": "2s", "data_timeout": "2s", "max_connections_per_ip": 1},
                          "relay": {"next_hop": sink.next_hop}})

    def admitted():
        """The one connection this client may have, once the previous one's slot is free."""
        c = gw.raw()
        if c.read_reply()[0] == 220:
            return c
        c.close()

    c = wait_until(admitted, timeout=3, what="a connection slot")
    with c:
        start = time.monotonic()
        with pytest.raises((ConnectionError, OSError)):
            for b in b"EHLO slow.client.example\r\n":
                c.send(bytes([b]))
                time.sleep(0.5)
        # The reply was the deadline, not an answer to the trickled command.
        assert c.buf.startswith(b"421 4.4.2") or c.read_reply()[1].startswith("421 4.4.2")
        assert time.monotonic() - start < 8
    # The slot is freed: the one allowed connection is available again.
    c = wait_until(admitted, timeout=3, what="the freed connection slot")
    with c:
        assert c.command("EHLO c")[0] == 250
        c.command("MAIL FROM:<a@ext.test>")
        c.command("RCPT TO:<b@our.test>")
        c.command("DATA")
        c.send(b"Subject: stalled\r\n\r\npartial")
        code, text = c.read_reply()
        assert text.startswith("421 4.4.2"), text
    time.sleep(0.5)
    assert sink.received() == [] and gw.queue_ids("incoming") == [] and gw.queue_ids("active") == []
    assert_still_serving(gw, sink)


def test_connection_flood(gateway_factory, sink):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    gw = gateway_factory({"smtp": {"max_connections_per_ip": 50, "max_connections": 400},
                          "relay": {"next_hop": sink.next_hop}})
    socks, greetings = [], []
    try:
        for _ in range(500):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
            socks.append(s)
        for s in socks:
            greetings.append(s.recv(512)[:9])
        assert greetings.count(b"220 mx.ou") == 50, greetings.count(b"220 mx.ou")
        assert greetings.count(b"421 4.7.0") == 450
        # Another client is still served while the flood holds its 50 slots.
        with gw.raw(source_ip="127.0.0.2") as c:
            assert c.read_reply()[0] == 220
    finally:
        for s in socks:
            s.close()
    assert_still_serving(gw, sink)


def test_bad_sequence(gateway, sink):
    with opened(gateway) as c:
        assert c.command("DATA")[1].startswith("503 5.5.1")
        c.command("MAIL FROM:<a@ext.test>")
        assert c.command("DATA")[1].startswith("554 5.5.1")
        assert c.command("MAIL FROM:<a@ext.test>")[1].startswith("503 5.5.1")
        c.send(b"BDAT 3 LAST\r\nabc")
        assert c.read_reply()[1].startswith("554 5.5.1")
        assert c.command("BDAT nonsense")[1].startswith("501 5.5.4")
        assert c.is_closed(), "a BDAT without a size cannot be skipped safely, so the session ends"
    assert_still_serving(gateway, sink)


def test_backscatter_unknown_user(gateway_factory, sink):
    gw = gateway_factory({"smtp": {"recipients": ["b@our.test"]}, "relay": {"next_hop": sink.next_hop}})
    with opened(gw) as c:
        c.command("MAIL FROM:<forged@victim.test>")
        assert c.command("RCPT TO:<nobody@our.test>")[1].startswith("550 5.1.1")
    time.sleep(0.5)
    assert sink.received() == [], "no bounce was ever sent"
    assert_still_serving(gw, sink)


def test_crash_just_after_and_just_before_250(gateway_factory, sink):
    gw = gateway_factory({"relay": {"next_hop": "smtp://127.0.0.1:9"}})  # nothing listens: mail stays queued
    reply = gw.send("a@ext.test", ["b@our.test"], b"Subject: acked\r\nMessage-ID: <acked@c>\r\n\r\nx\r\n")
    acked_id = reply.rsplit(" ", 1)[1]
    gw.kill()  # kill -9 right after the 250
    assert gw.queue_ids("active") == [acked_id]
    gw.start()
    with opened(gw) as c:
        c.command("MAIL FROM:<a@ext.test>")
        c.command("RCPT TO:<b@our.test>")
        c.command("DATA")
        c.send(b"Subject: never acked\r\nMessage-ID: <partial@c>\r\n\r\nhalf")
        time.sleep(0.3)
        gw.kill()  # kill -9 before the 250
    gw.settings["relay"]["next_hop"] = sink.next_hop
    gw.config.write_text(to_toml(gw.settings))
    gw.start()
    got = sink.wait_for_message("<acked@c>")
    assert len(got) == 1, "the acknowledged message is delivered once after the restart"
    time.sleep(1)
    assert not any(b"<partial@c>" in m[2] for m in sink.received()), "the unacknowledged one only by a retry"
    assert gw.queue_ids("incoming") == []


def test_disk_full(gateway_factory, sink, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {r.stderr.decode().strip()}")
    try:
        gw = gateway_factory({"data_dir": str(mnt / "data"), "relay": {"next_hop": "smtp://127.0.0.1:9"}})
        big = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 1500  # 1.5 MB on a 1 MB filesystem
        with opened(gw) as c:
            c.command("MAIL FROM:<a@ext.test>")
            c.command("RCPT TO:<b@our.test>")
            c.command("DATA")
            c.send(big)
            code, text = c.command(b".")
            assert text.startswith("452 4.3.1"), text
        assert gw.queue_ids("active") == [] and gw.queue_ids("incoming") == []
        small = gw.send("a@ext.test", ["b@our.test"], b"Subject: small\r\n\r\nfits\r\n")
        assert "queued as" in small, "after the failure the spool works again"
        assert child_processes(gw) == []
        gw.kill()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
