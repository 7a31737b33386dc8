"""Operating the gateway: configuration errors, reloads, graceful stops, one instance per data directory,
and the verdict end to end."""

import email
import email.header
import json
import signal
import socket
import subprocess
import threading
import time

from helpers import BIN, Gateway, gateway_env, strip_received, to_toml, wait_until

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def run_cli(*args, env=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30, env=env or gateway_env())


def test_bad_configuration_names_key_and_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[smtp]\nmax_recipients = 5\nmax_recipents = 6\n')
    r = run_cli("--config", str(cfg), "config", "check")
    assert r.returncode == 2
    assert "bad.toml" in r.stderr and "line 3" in r.stderr and "max_recipents" in r.stderr, r.stderr
    cfg.write_text('[relay]\nnext_hop = "ftp://x"\n')
    r = run_cli("--config", str(cfg), "serve")
    assert r.returncode == 2 and "line 2" in r.stderr and "smtp://" in r.stderr, r.stderr
    r = run_cli("config", "check", env={"PORTCULLIS_SMTP__MAX_ERRORS": "lots", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and "PORTCULLIS_SMTP__MAX_ERRORS" in r.stderr, r.stderr
    r = run_cli("--config", str(tmp_path / "missing.toml"), "config", "check")
    assert r.returncode == 2 and "missing.toml" in r.stderr


def test_config_show_is_the_effective_configuration(tmp_path):
    r = run_cli("--set", "smtp.max_recipients=42", "config", "show",
                env={"PORTCULLIS_RELAY__NEXT_HOP": "smtp://127.0.0.1:2626", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "max_recipients = 42" in r.stdout
    assert 'next_hop = "smtp://127.0.0.1:2626"' in r.stdout


def test_one_gateway_per_data_directory(gateway_factory):
    gw = gateway_factory()
    other = Gateway(gw.dir.parent, {"data_dir": str(gw.data_dir)}, name="second")
    r = subprocess.run([BIN, "--config", str(other.config), "serve"], capture_output=True, text=True, timeout=30,
                       env=gateway_env())
    assert r.returncode == 2 and "already running" in r.stderr, r.stderr


def test_sighup_reloads_and_keeps_running_on_a_bad_file(gateway_factory, sink):
    gw = gateway_factory({"smtp": {"max_recipients": 2}, "relay": {"next_hop": sink.next_hop}})

    def rcpt_codes(n):
        with gw.smtp() as s:
            s.ehlo("c")
            s.mail("a@ext.test")
            return [s.rcpt(f"r{i}@our.test")[0] for i in range(n)]

    assert rcpt_codes(3) == [250, 250, 452]
    gw.settings["smtp"]["max_recipients"] = 3
    gw.config.write_text(to_toml(gw.settings))
    gw.signal(signal.SIGHUP)
    wait_until(lambda: "configuration reloaded" in gw.logs(), what="reload")
    assert rcpt_codes(4) == [250, 250, 250, 452]
    gw.config.write_text("[smtp]\nmax_recipients = 0\n")
    gw.signal(signal.SIGHUP)
    wait_until(lambda: "reload failed" in gw.logs(), what="reload failure logged")
    assert rcpt_codes(4) == [250, 250, 250, 452], "the running configuration stays"


def test_sigterm_drains_the_message_in_progress(gateway_factory, sink):
    gw = gateway_factory({"relay": {"next_hop": sink.next_hop}})
    with gw.raw() as c:
        c.read_reply()
        c.command("EHLO c")
        c.command("MAIL FROM:<a@ext.test>")
        c.command("RCPT TO:<b@our.test>")
        c.command("DATA")
        c.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
        gw.signal(signal.SIGTERM)
        time.sleep(0.5)
        c.send(b"second half\r\n.\r\n")
        assert "queued as" in c.read_reply()[1], "the message being received is finished, not dropped"
        assert c.read_reply()[1].startswith("421 4.3.2"), "then the session is closed politely"
    assert gw.proc.wait(timeout=30) == 0
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", gw.port)) != 0, "no longer listening"


def test_gtube_is_quarantined_and_ham_is_delivered_with_verdict_headers(gateway_factory, sink):
    gw = gateway_factory({"relay": {"next_hop": sink.next_hop}})
    spam = f"From: a@ext.test\r\nTo: b@our.test\r\nSubject: test\r\n\r\n{GTUBE}\r\n"
    reply = gw.send("a@ext.test", ["b@our.test"], spam)
    qid = reply.rsplit(" ", 1)[1]
    assert gw.queue_ids("quarantine") == [qid]
    ham = ("From: Alice <alice@ext.test>\r\nTo: b@our.test\r\nSubject: lunch on friday\r\n"
           "Date: Fri, 27 Nov 2026 08:00:00 +0000\r\nMessage-ID: <lunch@ext.test>\r\n\r\nSee you at noon.\r\n")
    gw.send("alice@ext.test", ["b@our.test"], ham)
    (_, _, data), = sink.wait_for(1)
    headers = data.split(b"\r\n\r\n")[0]
    assert b"\r\nX-Portcullis-Verdict: accept" in headers and b"\r\nX-Spam-Score:" in headers
    assert strip_received(data).endswith(ham.encode())
    time.sleep(0.5)
    assert len(sink.received()) == 1, "the GTUBE message was not delivered"


TAG_RULE = """[[rule]]
name = "TEST_TAG_BAND"
type = "body"
pattern = 'TAGME-5F0C'
weight = 5.0
description = "puts a test message in the tag band"
"""


def tagging_gateway(gateway_factory, sink):
    """A gateway relaying to `sink` that tags (subject prefix "[SPAM]") mail carrying TAGME-5F0C."""
    gw = gateway_factory({"relay": {"next_hop": sink.next_hop}, "actions": {"tag_subject_prefix": "[SPAM]"}},
                         start=False)
    rules = gw.data_dir / "rules" / "local"
    rules.mkdir(parents=True)
    (rules / "tag.toml").write_text(TAG_RULE)
    gw.start()
    return gw


def test_tagged_mail_gets_the_subject_prefix_once_and_nothing_else_changes(gateway_factory, sink):
    gw = tagging_gateway(gateway_factory, sink)
    head = "From: Alice <alice@ext.test>\r\nTo: b@our.test\r\nDate: Fri, 27 Nov 2026 08:00:00 +0000\r\n"
    body = "\r\nSubject: a body line, not a field\r\nTAGME-5F0C\r\n"
    encoded = "Subject: =?utf-8?B?w6lsw6lwaGFudCByb3Nl?=\r\n =?utf-8?Q?_en_r=C3=A9union?=\r\n"
    sent = {
        "encoded": (head + encoded + "Message-ID: <enc@ext.test>\r\n" + body,
                    head + encoded.replace("Subject: ", "Subject: [SPAM] ") + "Message-ID: <enc@ext.test>\r\n" + body),
        "missing": (head + "Message-ID: <none@ext.test>\r\n" + body,
                    head + "Message-ID: <none@ext.test>\r\nSubject: [SPAM]\r\n" + body),
        "already": (head + "Subject: [SPAM] again\r\nMessage-ID: <again@ext.test>\r\n" + body, None),
        "ham": (head + "Subject: lunch\r\nMessage-ID: <ham@ext.test>\r\n" + body.replace("TAGME-5F0C", "noon"),
                None),
    }
    for original, _ in sent.values():
        gw.send("alice@ext.test", ["b@our.test"], original)
    arrived = {email.message_from_bytes(d)["Message-ID"]: d for _, _, d in sink.wait_for(len(sent))}
    for (original, expected), mid in zip(sent.values(), ["<enc@ext.test>", "<none@ext.test>", "<again@ext.test>",
                                                        "<ham@ext.test>"]):
        data = arrived[mid]
        tagged = mid != "<ham@ext.test>"
        assert (b"\r\nX-Spam-Flag: YES\r\n" in data) == tagged, data[:600]
        assert strip_received(data) == (expected or original).encode(), data
    subject = email.message_from_bytes(arrived["<enc@ext.test>"])["Subject"]
    assert str(email.header.make_header(email.header.decode_header(subject))) == "[SPAM] éléphant rose en réunion"
    assert len(gw.queue_ids("quarantine")) == 0, "tagged mail is rewritten, not held"


def test_tracking_shows_the_subject_as_delivered_and_finds_tagged_mail_by_either_subject(gateway_factory, sink):
    gw = tagging_gateway(gateway_factory, sink)
    head = "From: Alice <alice@ext.test>\r\nTo: b@our.test\r\nDate: Fri, 27 Nov 2026 08:00:00 +0000\r\n"
    gw.send("alice@ext.test", ["b@our.test"],
            head + "Subject: invoice 4471 overdue\r\nMessage-ID: <tagged@ext.test>\r\n\r\nTAGME-5F0C\r\n")
    gw.send("alice@ext.test", ["b@our.test"],
            head + "Subject: invoice 4471 paid\r\nMessage-ID: <plain@ext.test>\r\n\r\nthanks\r\n")
    sink.wait_for(2)

    def search(*args):
        r = gw.cli("tracking", "search", "--json", *args)
        assert r.returncode == 0, r.stderr
        return {t["message_id"]: t for t in map(json.loads, r.stdout.decode().splitlines())}

    found = wait_until(lambda: (f := search("--subject", "invoice 4471")) and len(f) == 2 and f, what="both tracked")
    tagged, plain = found["tagged@ext.test"], found["plain@ext.test"]
    assert (tagged["verdict"], tagged["subject"]) == ("tag", "[SPAM] invoice 4471 overdue"), tagged
    received = next(e for e in tagged["events"] if e["kind"] == "received")
    assert received["details"]["original_subject"] == "invoice 4471 overdue", received
    assert plain["subject"] == "invoice 4471 paid"
    assert "original_subject" not in next(e for e in plain["events"] if e["kind"] == "received")["details"]
    # Found by the subject the recipient sees, and by the one the sender wrote.
    assert list(search("--subject", "[spam] invoice")) == ["tagged@ext.test"]
    assert list(search("--subject", "invoice 4471 overdue")) == ["tagged@ext.test"]


def test_scan_cli_json(tmp_path):
    eml = tmp_path / "gtube.eml"
    eml.write_text(f"From: a@ext.test\r\nSubject: t\r\n\r\n{GTUBE}\r\n")
    r = run_cli("scan", "--json", "--offline", str(tmp_path))
    assert r.returncode == 0, r.stderr
    import json
    (line,) = [json.loads(l) for l in r.stdout.splitlines()]
    assert line["action"] == "quarantine" and line["path"] == str(eml) and line["offline"] is True
    assert any(s["name"] == "GTUBE" for s in line["symbols"])
