"""Delivery: load, crashes, next-hop outages, bounces and the queue CLI, against a real SMTP sink."""

import concurrent.futures
import email
import json
import signal
import threading
import time
import uuid

from helpers import Sink, message_id, strip_received, to_toml, wait_until


def make_message(i: int, tag: str) -> bytes:
    return (f"From: sender{i}@ext.test\r\nTo: r{i % 7}@our.test\r\nSubject: {tag} {i}\r\n"
            f"Message-ID: <{tag}-{i}@load.test>\r\n\r\n" + f"line {i}\r\n.dot line\r\n" * 20).encode()


def send_many(gw, count: int, sessions: int, tag: str, per_session: int | None = None):
    """Send `count` messages over `sessions` concurrent SMTP sessions; return {message-id: body} acknowledged."""
    acked, lock = {}, threading.Lock()
    per = per_session or (count + sessions - 1) // sessions

    def worker(w):
        sent = {}
        indices = range(w * per, min(count, (w + 1) * per))
        try:
            with gw.smtp(timeout=60) as s:
                s.ehlo("load.test")
                for i in indices:
                    msg = make_message(i, tag)
                    s.sendmail(f"sender{i}@ext.test", [f"r{i % 7}@our.test"], msg)
                    sent[f"<{tag}-{i}@load.test>"] = msg
        except Exception:
            pass  # a crash test kills the gateway mid-session: only what got 250 counts
        with lock:
            acked.update(sent)

    with concurrent.futures.ThreadPoolExecutor(sessions) as pool:
        list(pool.map(worker, range(sessions)))
    return acked


def by_message_id(received):
    out = {}
    for _, _, data in received:
        out.setdefault(message_id(data), []).append(data)
    return out


def test_load_2000_messages_50_sessions_exactly_once(gateway, sink):
    acked = send_many(gateway, 2000, 50, "load")
    assert len(acked) == 2000
    sink.wait_for(2000, timeout=180)
    time.sleep(1)
    got = by_message_id(sink.received())
    assert len(sink.received()) == 2000, "no duplicates"
    for mid, msg in acked.items():
        (data,) = got[mid]
        assert strip_received(data) == msg, mid
    wait_until(lambda: gateway.queue_ids() == [], timeout=30, what="the queue to drain")


def test_kill_9_during_load_loses_nothing_acknowledged(gateway_factory, sink):
    gw = gateway_factory({"relay": {"next_hop": sink.next_hop}})
    acked = {}
    for round_ in range(4):
        killer = threading.Timer(0.6, gw.kill)
        killer.start()
        acked.update(send_many(gw, 400, 20, f"crash{round_}"))
        killer.join()
        gw.kill()
        assert gw.queue_ids("incoming") != None  # noqa: E711 (the directory survives)
        gw.start()
    wait_until(lambda: set(acked) <= set(by_message_id(sink.received())), timeout=120,
               what="every acknowledged message at the sink")
    got = by_message_id(sink.received())
    duplicates = sum(len(v) - 1 for k, v in got.items() if k in acked)
    print(f"crash test: {len(acked)} acknowledged, all delivered, {duplicates} delivered twice")
    for mid, msg in acked.items():
        assert strip_received(got[mid][0]) == msg
    assert gw.queue_ids("incoming") == []


def test_next_hop_outage_then_recovery(gateway_factory, tmp_path):
    sink = Sink()
    sink.greeting_reply = "421 4.3.2 down for maintenance"
    sink.start()
    try:
        gw = gateway_factory({"relay": {"next_hop": sink.next_hop}})
        acked = send_many(gw, 30, 3, "outage")
        time.sleep(1.5)  # several attempts meet the 421 greeting
        assert sink.received() == []
        sink.stop()  # now connection refused
        time.sleep(1.5)
        assert len(gw.queue_ids()) == 30, "still queued, nothing lost"
        sink.greeting_reply = None
        sink.start()
        sink.wait_for(30, timeout=60)
        wait_until(lambda: gw.queue_ids() == [], timeout=30, what="the queue to drain")
        time.sleep(1)
        got = by_message_id(sink.received())
        assert set(got) == set(acked) and all(len(v) == 1 for v in got.values())
    finally:
        sink.stop()


def test_one_recipient_refused_gets_one_bounce(gateway, sink):
    sink.rcpt_replies["bad@our.test"] = "550 5.1.1 no such user here"
    msg = b"From: a@ext.test\r\nSubject: partly\r\nMessage-ID: <partly@c>\r\n\r\nhello\r\n"
    gateway.send("a@ext.test", ["good1@our.test", "bad@our.test", "good2@our.test"], msg)
    got = sink.wait_for(2, timeout=30)
    time.sleep(1)
    got = sink.received()
    delivered = [m for m in got if m[0] == "a@ext.test"]
    bounces = [m for m in got if m[0] in ("", "<>")]
    assert len(delivered) == 1 and sorted(delivered[0][1]) == ["good1@our.test", "good2@our.test"]
    assert len(bounces) == 1, got
    sender, rcpts, dsn = bounces[0]
    assert rcpts == ["a@ext.test"]
    report = email.message_from_bytes(dsn)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    status = next(p for p in report.walk() if p.get_content_type() == "message/delivery-status")
    text = status.as_string()
    assert "Final-Recipient: rfc822; bad@our.test" in text
    assert "Status: 5.1.1" in text and "no such user here" in text
    assert "good1" not in text
    wait_until(lambda: gateway.queue_ids() == [], timeout=30, what="the queue to drain")


def test_no_bounce_to_the_null_sender(gateway, sink):
    sink.rcpt_replies["bad@our.test"] = "550 5.1.1 no such user"
    gateway.send("", ["bad@our.test"], b"Subject: bounce of a bounce\r\n\r\nx\r\n")
    wait_until(lambda: gateway.queue_ids() == [], timeout=30, what="the message to be dropped")
    time.sleep(1)
    assert sink.received() == []


def test_queue_cli(gateway_factory):
    gw = gateway_factory({"relay": {"next_hop": "smtp://127.0.0.1:9", "retry_min": "1h", "retry_max": "2h"}})
    ids = [gw.send("a@ext.test", ["b@our.test"], f"Subject: q{i}\r\n\r\nx\r\n").rsplit(" ", 1)[1] for i in range(3)]
    time.sleep(1)
    r = gw.cli("queue", "list", "--json")
    assert r.returncode == 0, r.stderr
    listed = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [m["id"] for m in listed] == sorted(ids)
    assert all(m["recipients"] == [{"address": "b@our.test", "status": "pending"}] for m in listed)
    assert listed[0]["attempts"] >= 1
    r = gw.cli("queue", "show", ids[0])
    assert r.returncode == 0 and b"Subject: q0" in r.stdout
    r = gw.cli("queue", "delete", ids[1])
    assert r.returncode == 0
    assert ids[1] not in gw.queue_ids()
    r = gw.cli("queue", "show", "../../etc/passwd")
    assert r.returncode != 0 and b"not a queue id" in r.stderr
    # Flush: point the gateway at a working sink and ask for an immediate retry.
    sink = Sink().start()
    try:
        gw.settings["relay"]["next_hop"] = sink.next_hop
        gw.config.write_text(to_toml(gw.settings))
        gw.signal(signal.SIGHUP)
        time.sleep(0.5)
        assert gw.cli("queue", "flush").returncode == 0
        sink.wait_for(2, timeout=20)
        wait_until(lambda: gw.queue_ids() == [], timeout=20, what="flushed queue")
    finally:
        sink.stop()


def test_flow_control_slows_intake_while_delivery_is_behind(gateway_factory):
    """smtp.in_flow_delay: with a message handed to delivery and its attempt stuck (a next hop that
    accepts and never greets), the next MAIL waits out the delay, then goes on: slowed, not refused."""
    import socket
    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def hold():
        try:
            while True:
                held.append(listener.accept()[0])
        except OSError:
            pass  # the listener closed at the end of the test

    threading.Thread(target=hold, daemon=True).start()
    try:
        gw = gateway_factory({
            "relay": {"next_hop": f"smtp://127.0.0.1:{listener.getsockname()[1]}", "connect_timeout": "30s"},
            "smtp": {"in_flow_limit": 1, "in_flow_delay": "1500ms"},
        })
        with gw.raw() as c:
            c.read_reply()
            c.command("EHLO flow.test")
            t = time.monotonic()
            assert c.command("MAIL FROM:<a@ext.test>")[0] == 250
            assert time.monotonic() - t < 1.0, "nothing behind yet: no wait"
            assert c.command("RCPT TO:<r@our.test>")[0] == 250
            assert c.command("DATA")[0] == 354
            c.send(b"Subject: first\r\n\r\nbody\r\n.\r\n")
            assert c.read_reply()[0] == 250
            wait_until(lambda: held, what="the relay's connection to the silent next hop")
            t = time.monotonic()
            assert c.command("MAIL FROM:<a@ext.test>")[0] == 250
            waited = time.monotonic() - t
            assert 1.3 <= waited < 10, f"waited {waited:.2f}s"
            assert c.command("RCPT TO:<r@our.test>")[0] == 250
            assert c.command("DATA")[0] == 354
            c.send(b"Subject: second\r\n\r\nbody\r\n.\r\n")
            assert c.read_reply()[0] == 250
        assert len(gw.queue_ids()) == 2, "both queued"
    finally:
        listener.close()
        for conn in held:
            conn.close()
