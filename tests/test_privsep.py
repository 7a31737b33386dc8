"""Least privilege between the planes: `serve --role mail` and `serve --role portal` on one data directory
(the split `packaging/` ships, here as one user). The portal has no spool: it shows, releases, deletes and
learns held mail only through the mail plane's control socket, which acts as the account the store knows,
and says so plainly (503) when the mail plane is down. That the portal's sandbox cannot read `spool/` is
shown in `crates/portcullis/src/sandbox.rs`'s tests; here its start record says what was enforced."""

from __future__ import annotations

import json
import signal
import socket
import subprocess

import pytest

from helpers import BIN, gateway_env, message_id, wait_until
from test_portal_support import GTUBE, Client, Portal, portal_settings, spam, wait_for_item


@pytest.fixture
def split(gateway_factory, sink):
    gw = gateway_factory(portal_settings(sink), start=False)
    gw.start(role="mail")
    log = open(gw.log_path, "ab")
    proc = subprocess.Popen([BIN, "--config", str(gw.config), "serve", "--role", "portal"], stdout=log,
                            stderr=log, stdin=subprocess.DEVNULL, env=gateway_env())
    log.close()
    try:
        portal = Portal(gw)
        portal.tokens = portal.standard_accounts()
        portal.sink = sink
        yield portal, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def held(portal: Portal, subject: str) -> dict:
    raw = spam(subject)
    portal.gw.send("spammer@ext.test", ["alice@our.test"], raw)
    item = wait_for_item(portal.client(), portal.tokens["alice"], subject)
    item["mid"] = message_id(raw)
    return item


def audit_records(portal: Portal) -> list[dict]:
    lines = (portal.gw.data_dir / "audit" / "audit.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_the_portal_acts_on_held_mail_only_through_the_mail_plane(split):
    portal, proc = split
    gw, alice, t_alice, t_bob = portal.gw, portal.client(), portal.tokens["alice"], portal.tokens["bob"]
    assert not (gw.data_dir / "portcullis.db").exists() and (gw.data_dir / "store" / "portcullis.db").exists()
    assert (gw.data_dir / "run" / "control.sock").is_socket()
    released, deleted, learned = held(portal, "split release"), held(portal, "split delete"), held(portal, "split learn")

    # Show (the body comes from the mail plane), download, the page with the message.
    shown = alice.get(f"/api/v1/quarantine/{released['id']}", token=t_alice)
    assert shown.status == 200 and shown.json()["checksum_ok"] and "Hello." in shown.json()["text"], shown.text
    raw = alice.get(f"/api/v1/quarantine/{released['id']}/raw", token=t_alice)
    assert raw.status == 200 and GTUBE.encode() in raw.body
    page = portal.logged_in("alice").get(f"/quarantine/{released['id']}")
    assert page.status == 200 and "split release" in page.text
    # Someone else's item is still nobody's business.
    assert alice.get(f"/api/v1/quarantine/{released['id']}", token=t_bob).status == 404
    assert alice.post(f"/api/v1/quarantine/{released['id']}/release", token=t_bob).status == 404

    # Release (delivered by the mail plane), delete, learn.
    r = alice.post(f"/api/v1/quarantine/{released['id']}/release", token=t_alice)
    assert r.status == 200 and r.json()["outcome"] == "done", r.text
    assert len(portal.sink.wait_for_message(released["mid"])) == 1
    r = alice.post(f"/api/v1/quarantine/{deleted['id']}/delete", token=t_alice)
    assert r.status == 200 and r.json()["outcome"] == "done", r.text
    r = alice.post(f"/api/v1/quarantine/{learned['id']}/learn-spam", token=t_alice)
    assert r.status == 200 and r.json()["outcome"] == "done", r.text
    statuses = {i["id"]: i["status"] for i in alice.get("/api/v1/quarantine?status=any", token=t_alice).json()}
    assert (statuses[released["id"]], statuses[deleted["id"]], statuses[learned["id"]]) == \
        ("released", "deleted", "held")
    wait_until(lambda: len(gw.queue_ids("quarantine")) == 1, what="the deleted and released files gone")

    # The audit trail names alice for each action, written by the mail plane; the portal's start record
    # says it ran as the portal, confined.
    records = audit_records(portal)
    for action in ("quarantine.release", "quarantine.delete", "quarantine.learn"):
        mine = [r for r in records if r["action"] == action]
        assert mine and mine[-1]["details"]["actor_name"] == "alice", (action, mine)
    starts = [r for r in records if r["action"] == "gateway.start"]
    assert {s["details"]["role"] for s in starts} == {"mail", "portal"}, starts
    portal_start = next(s for s in starts if s["details"]["role"] == "portal")
    assert portal_start["details"]["sandbox"].startswith("landlock="), portal_start

    # The mail plane stops: held mail cannot be shown or changed, and the portal says so (503), still
    # serving everything else.
    assert gw.stop() == 0
    down = alice.get(f"/api/v1/quarantine/{learned['id']}", token=t_alice)
    assert down.status == 503 and down.json()["error"] == "unavailable", down.text
    assert "not answering" in down.json()["message"]
    assert alice.post(f"/api/v1/quarantine/{learned['id']}/delete", token=t_alice).status == 503
    page = portal.logged_in("alice").get(f"/quarantine/{learned['id']}")
    assert page.status == 503 and "not answering" in page.text
    assert alice.get("/api/v1/quarantine", token=t_alice).status == 200, "search is the store's"
    assert Client(portal.port).get("/healthz").status == 200
    assert proc.poll() is None


def test_the_control_socket_answers_only_what_it_should(split):
    portal, _ = split
    item = held(portal, "socket probe")
    path = str(portal.gw.data_dir / "run" / "control.sock")

    def ask(line: bytes) -> dict:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(path)
            s.sendall(line)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        assert answer.count(b"\n") == 1 and answer.endswith(b"\n"), answer
        return json.loads(answer)

    def request(name: str, op: str = "release") -> bytes:
        caller = {"account": {"name": name, "token_id": None}}
        return json.dumps({"op": op, "caller": caller, "item": item["id"]}).encode() + b"\n"

    assert ask(request("bob"))["kind"] == "not_found"
    assert ask(request("mallory"))["kind"] == "forbidden"
    assert ask(request("bob", "show"))["kind"] == "not_found"
    # A role claimed by the caller is not a field at all.
    claimed = json.loads(request("bob"))
    claimed["caller"]["account"]["role"] = "admin"
    assert ask(json.dumps(claimed).encode() + b"\n")["kind"] == "bad_request"
    assert ask(b"x" * 20_000 + b"\n")["kind"] == "bad_request"
    assert ask(b"\x00\xff{{{\n")["kind"] == "bad_request"
    # Nothing happened to the item, and its owner can still act.
    assert ask(request("alice", "show"))["outcome"] == "message"
    assert ask(request("alice"))["outcome"] == "done"
    assert len(portal.sink.wait_for_message(item["mid"])) == 1
    assert portal.gw.proc.poll() is None
