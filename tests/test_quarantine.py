"""The quarantine end to end: a GTUBE message is held and indexed, the command line lists and shows it
(symbols with reasons), releases it once (it reaches the next hop exactly once), tracking shows its whole
life, and digests arrive as multipart text + HTML whose signed links work once."""

import email
import json
import re
import time
from email import policy

from helpers import wait_until

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def spam(rcpt: str, subject: str, msgid: str) -> str:
    return (f"From: Spammer <a@ext.test>\r\nTo: {rcpt}\r\nSubject: {subject}\r\nMessage-ID: <{msgid}>\r\n\r\n"
            f"{GTUBE}\r\n")


def cli_json(gw, *args, ok=True):
    r = gw.cli(*args)
    if ok:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()], r.returncode


def held(gw):
    return cli_json(gw, "quarantine", "list", "--json")[0]


def test_gtube_is_held_listed_released_once_and_tracked(gateway_factory, sink):
    gw = gateway_factory({"relay": {"next_hop": sink.next_hop}})
    subject = "cheap x' UNION SELECT id FROM quarantine_items --"
    qid = gw.send("a@ext.test", ["B@our.test"], spam("b@our.test", subject, "gtube-1@ext.test")).rsplit(" ", 1)[1]
    (item,) = wait_until(lambda: held(gw), what="the held message indexed")
    assert item["queue_id"] == qid and item["kind"] == "spam" and item["status"] == "held"
    assert item["recipients"] == ["b@our.test"] and item["sender"] == "a@ext.test"
    assert item["subject"] == subject, "stored text comes back literally"
    assert len(item["id"]) == 22 and item["id"] != qid, "the item id is opaque"
    assert any(s["name"] == "GTUBE" and s["reason"] for s in item["symbols"]), item["symbols"]

    (detail,), _ = cli_json(gw, "quarantine", "show", item["id"], "--json")
    assert detail["checksum_ok"] and GTUBE in detail["text"]
    assert ["Subject", subject] in detail["headers"]
    _, code = cli_json(gw, "quarantine", "show", "../../etc/passwd", "--json", ok=False)
    assert code != 0

    (out,), _ = cli_json(gw, "quarantine", "release", item["id"], "--json")
    assert out == {"outcome": "done"}
    (again,), _ = cli_json(gw, "quarantine", "release", item["id"], "--json")
    assert again["outcome"] == "already_done" and again["status"] == "released" and again["by"].startswith("cli:")
    assert len(sink.wait_for_message("gtube-1@ext.test")) == 1
    time.sleep(1.5)
    assert len([m for m in sink.received() if b"gtube-1@ext.test" in m[2]]) == 1, "delivered exactly once"
    assert gw.queue_ids("quarantine") == []

    def timeline():
        found, _ = cli_json(gw, "tracking", "search", "--message-id", "gtube-1@ext.test", "--json")
        kinds = [e["kind"] for e in found[0]["events"]] if found else []
        return kinds if "delivered" in kinds else None

    kinds = wait_until(timeline, what="the delivery in tracking")
    assert kinds[:4] == ["received", "verdict", "quarantined", "released"], kinds
    assert kinds.index("delivered") > kinds.index("released")
    audit = (gw.data_dir / "audit" / "audit.log").read_text()
    assert '"quarantine.release"' in audit and '"quarantine.view"' in audit


def digest_at_sink(sink, rcpt):
    for _, rcpts, data in sink.received():
        if rcpt in rcpts and b"Quarantine digest" in data:
            return data
    return None


def test_digest_is_multipart_and_its_links_work_once(gateway_factory, sink):
    gw = gateway_factory({
        "relay": {"next_hop": sink.next_hop},
        "digest": {"enabled": True, "interval": "2s", "at": "", "portal_url": "https://portal.test/"},
    })
    hostile = "<script>window.__pwned=1</script> x' UNION SELECT 1 --"
    gw.send("a@ext.test", ["c@our.test"], spam("c@our.test", hostile, "gtube-2@ext.test"))
    data = wait_until(lambda: digest_at_sink(sink, "c@our.test"), timeout=30, what="a digest at the sink")
    msg = email.message_from_bytes(data, policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Auto-Submitted"] == "auto-generated"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert hostile in text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt; x&#39; UNION SELECT 1 --" in html
    assert "<script>" not in html
    links = re.findall(r"^\s*(Release|Release and safelist sender|Delete): https://portal\.test/digest/([A-Za-z0-9_-]+)", text, re.M)
    assert [label for label, _ in links] == ["Release", "Release and safelist sender", "Delete"], text
    for _, token in links:
        assert token in html

    release, safelist, delete = (token for _, token in links)
    (done,), _ = cli_json(gw, "quarantine", "redeem", release, "--json")
    assert done["outcome"]["outcome"] == "done" and done["claims"]["action"] == "release"
    (used,), code = cli_json(gw, "quarantine", "redeem", release, "--json", ok=False)
    assert code == 1 and used["error"] == "already_used"
    (bad,), code = cli_json(gw, "quarantine", "redeem", release[:-3], "--json", ok=False)
    assert code == 1 and bad["error"] == "invalid"
    (bad,), code = cli_json(gw, "quarantine", "redeem", release + "AAAA", "--json", ok=False)
    assert code == 1 and bad["error"] == "invalid"
    (late,), _ = cli_json(gw, "quarantine", "redeem", delete, "--json")
    assert late["outcome"]["outcome"] == "already_done" and late["outcome"]["status"] == "released"
    assert len(sink.wait_for_message("gtube-2@ext.test")) == 1
    time.sleep(1.5)
    assert len([m for m in sink.received() if b"gtube-2@ext.test" in m[2]]) == 1, "released exactly once"
    (item,) = cli_json(gw, "quarantine", "list", "--json", "--status", "released")[0]
    assert item["status_by"] == "digest:c@our.test"
