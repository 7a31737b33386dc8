"""Several gateway nodes acting as one: two `portcullis serve` nodes on their own loopback ports and data
directories, sharing one fresh PostgreSQL schema and one Redis key prefix.

A message quarantined through node A is released from node B's portal API and delivered once at the sink;
node A killed with -9 while its acknowledged messages wait for a next hop that is down, B keeps serving,
and A restarted delivers them; B's `/api/v1/nodes` lists both nodes and shows A stale after the kill; a
release made on a portal-only process (`serve --role portal`) is delivered by a mail node. The admin
console forgets a stale node with nothing queued, and refuses a live one or one with queued messages. Each
node mints queue ids with its own tag from the store, keeps it across a restart, and forgetting a node frees
its tag for the next new node; with every tag held, a new node name is refused at start.
Cross-node learning and rate limits are in test_cluster_cache.py (same shared setup).

Needs PostgreSQL (the `schema` fixture of test_store_postgres.py) and Redis at 127.0.0.1:6379.
"""

from __future__ import annotations

import email
import re
import socket
import sqlite3
import subprocess
import time
import uuid

from helpers import BIN, Sink, free_port, gateway_env, to_toml, wait_until
from test_cluster_cache import QUIET_DNS, cache_settings, redis_url  # noqa: F401 (fixture)
from test_portal_support import GTUBE, Client, Portal, wait_for_item
from test_store_postgres import POSTGRES_URL, schema  # noqa: F401 (fixture: a fresh schema, dropped after)

# Short enough that a killed node turns stale, and that releases and reconciles happen, within a test.
CLUSTER = {"heartbeat_interval": "200ms", "node_stale_after": "1s", "release_check_interval": "300ms"}


def shared_settings(schema: str, redis: str, next_hop: str) -> dict:
    return {"dns": QUIET_DNS, "relay": {"next_hop": next_hop, "retry_min": "200ms", "retry_max": "500ms"},
            "store": {"backend": "postgres", "url": POSTGRES_URL, "schema": schema},
            "cache": cache_settings(redis), "cluster": CLUSTER,
            "quarantine": {"expire_interval": "500ms"}}


def node(gateway_factory, settings: dict, name: str):
    return gateway_factory({**settings, "cluster": {**CLUSTER, "node_name": name}}, name=name)


def admin_token(gw) -> str:
    Portal(gw)  # the first-start admin exists
    r = gw.cli("users", "token", "admin", "--name", "tests")
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def held_message(subject: str) -> str:
    return f"From: s@ext.test\r\nTo: b@our.test\r\nSubject: {subject}\r\n\r\n{GTUBE}\r\n"


def subjects_at(sink: Sink, subject: str) -> int:
    return sum(1 for _, _, data in sink.received() if email.message_from_bytes(data)["Subject"] == subject)


def test_held_on_a_released_from_bs_portal_is_delivered_once(schema, gateway_factory, sink, redis_url):
    settings = shared_settings(schema, redis_url, sink.next_hop)
    a = node(gateway_factory, settings, "node-a")
    token = admin_token(a)
    b = node(gateway_factory, settings, "node-b")
    subject = f"held-{uuid.uuid4().hex[:8]}"
    a.send("spammer@ext.test", ["b@our.test"], held_message(subject))
    item = wait_for_item(Client(a.portal_port), token, subject)
    wait_until(lambda: a.queue_ids("quarantine"), what="the held file in node A's spool")
    # Node B shows the message A holds (from the store), then releases it.
    api_b = Client(b.portal_port)
    shown = api_b.get(f"/api/v1/quarantine/{item['id']}", token=token)
    assert shown.status == 200 and GTUBE in shown.text, (shown.status, shown.text[:300])
    r = api_b.post(f"/api/v1/quarantine/{item['id']}/release", token=token)
    assert r.status == 200, (r.status, r.text[:300])
    wait_until(lambda: subjects_at(sink, subject) >= 1, timeout=30, what="the released message at the sink")
    # Node A's reconcile drops its copy without delivering it: still exactly one at the sink.
    wait_until(lambda: not a.queue_ids("quarantine"), timeout=30, what="node A dropping its copy")
    assert a.queue_ids("active") == [], "node A never queued it"
    wait_until(lambda: not b.queue_ids("active"), timeout=30, what="node B's queue to drain")
    assert subjects_at(sink, subject) == 1
    assert "file missing" not in a.logs() + b.logs()
    again = api_b.post(f"/api/v1/quarantine/{item['id']}/release", token=token)
    assert again.status == 200 and "already" in again.text, again.text[:300]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def nodes(gw, token: str) -> dict:
    r = Client(gw.portal_port).get("/api/v1/nodes", token=token)
    assert r.status == 200, (r.status, r.text[:300])
    return {n["name"]: n for n in r.json()}


def test_a_killed_node_delivers_what_it_acknowledged_when_it_returns(schema, gateway_factory, redis_url):
    hop_port = free_port()
    settings = shared_settings(schema, redis_url, f"smtp://127.0.0.1:{hop_port}")  # nothing listens yet
    a = node(gateway_factory, settings, "node-a")
    token, admin_password = admin_token(a), Portal(a).admin_password
    b = node(gateway_factory, settings, "node-b")
    listed = wait_until(lambda: (n := nodes(b, token)).keys() >= {"node-a", "node-b"} and n,
                        what="both nodes in B's node list")
    assert all(n["state"] == "live" and n["version"] for n in listed.values()), listed
    ids = [f"kept-{i}-{uuid.uuid4().hex[:8]}" for i in range(3)]
    for mid in ids:
        a.send("x@ext.test", ["b@our.test"],
               f"From: x@ext.test\r\nTo: b@our.test\r\nMessage-ID: <{mid}@ext.test>\r\nSubject: {mid}\r\n\r\nhello\r\n")
    assert len(a.queue_ids("active")) == 3, "acknowledged and waiting for the next hop"
    wait_until(lambda: nodes(b, token)["node-a"]["queue_depth"] == 3, what="A's heartbeat with its queue")
    a.kill()  # SIGKILL
    wait_until(lambda: nodes(b, token)["node-a"]["state"] == "stale", timeout=15, what="node A shown stale")
    # Stale, but its queued messages are still its own: B's console will not forget it.
    admin_b = Client(b.portal_port)
    assert admin_b.login("admin", admin_password).status == 303
    assert 'action="/admin/nodes/forget"' not in admin_b.get("/admin/nodes").text
    r = admin_b.post("/admin/nodes/forget", form={"csrf": admin_b.csrf("/admin/nodes"), "name": "node-a"})
    assert r.status == 400 and "queued" in r.text, (r.status, r.text[:300])
    # Node B keeps serving.
    b.send("x@ext.test", ["b@our.test"], "From: x@ext.test\r\nTo: b@our.test\r\nSubject: from-b\r\n\r\nhi\r\n")
    sink = Sink(port=hop_port).start()
    try:
        a.start()
        for mid in ids:
            sink.wait_for_message(f"{mid}@ext.test", timeout=30)
        wait_until(lambda: not a.queue_ids("active"), timeout=30, what="node A's queue to drain")
        assert len(sink.received()) == 4, [m[2][:80] for m in sink.received()]
        wait_until(lambda: nodes(b, token)["node-a"]["state"] == "live", timeout=15, what="node A live again")
    finally:
        sink.stop()


def test_a_release_from_a_portal_only_process_is_delivered_by_a_mail_node(schema, gateway_factory, sink,
                                                                          redis_url):
    settings = shared_settings(schema, redis_url, sink.next_hop)
    a = node(gateway_factory, settings, "node-a")
    token = admin_token(a)
    # `serve --role portal`: no SMTP, no relay; its own data directory, the same schema.
    portal = gateway_factory({**settings, "cluster": {**CLUSTER, "node_name": "portal-1"}}, name="portal-1",
                             start=False)
    log = open(portal.log_path, "ab")
    portal.proc = subprocess.Popen([BIN, "--config", str(portal.config), "serve", "--role", "portal"],
                                   stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=gateway_env())
    log.close()
    subject = f"via-portal-{uuid.uuid4().hex[:8]}"
    a.send("spammer@ext.test", ["b@our.test"], held_message(subject))
    item = wait_for_item(Client(a.portal_port), token, subject)
    api = Client(portal.portal_port)
    wait_until(lambda: listening(portal.portal_port), timeout=30, what=f"the portal-only process\n{portal.logs()}")
    r = api.post(f"/api/v1/quarantine/{item['id']}/release", token=token)
    assert r.status == 200, (r.status, r.text[:300])
    wait_until(lambda: subjects_at(sink, subject) >= 1, timeout=30, what="node A delivering the release")
    wait_until(lambda: not a.queue_ids("quarantine") and not a.queue_ids("active"), timeout=30,
               what="node A's queues to empty")
    assert subjects_at(sink, subject) == 1
    assert "portal-1" not in nodes(a, token), "a portal-only process sends no mail-plane heartbeat"


def test_a_second_node_under_a_live_nodes_name_says_so(schema, gateway_factory, sink, redis_url):
    settings = shared_settings(schema, redis_url, sink.next_hop)
    a = node(gateway_factory, settings, "twin")
    token = admin_token(a)
    wait_until(lambda: "twin" in nodes(a, token), what="node A's heartbeat")
    b = gateway_factory({**settings, "cluster": {**CLUSTER, "node_name": "twin"}}, name="twin-b")
    wait_until(lambda: "give each node its own cluster.node_name" in b.logs(), what="the warning in B's log")
    assert "give each node its own" not in a.logs()


def test_a_stale_node_with_nothing_queued_is_forgotten_from_the_admin_console(schema, gateway_factory, sink,
                                                                             redis_url):
    settings = shared_settings(schema, redis_url, sink.next_hop)
    a = node(gateway_factory, settings, "node-a")
    portal = Portal(a)
    token = admin_token(a)
    b = node(gateway_factory, settings, "node-b")
    wait_until(lambda: nodes(a, token).keys() >= {"node-a", "node-b"}, what="both nodes in A's node list")
    admin = portal.logged_in("admin")
    csrf = admin.csrf("/admin/nodes")
    assert 'action="/admin/nodes/forget"' not in admin.get("/admin/nodes").text, "no button for live nodes"
    # A live node is refused (it would be back at its next heartbeat), and stays.
    r = admin.post("/admin/nodes/forget", form={"csrf": csrf, "name": "node-b"})
    assert r.status == 400 and "live" in r.text, (r.status, r.text[:300])
    b.kill()  # SIGKILL, nothing queued
    wait_until(lambda: nodes(a, token)["node-b"]["state"] == "stale", timeout=15, what="node B shown stale")
    page = admin.get("/admin/nodes").text
    assert page.count('action="/admin/nodes/forget"') == 1 and 'value="node-b"' in page, page[-1500:]
    # Without the form's CSRF token: refused, nothing changes.
    assert admin.post("/admin/nodes/forget", form={"csrf": "A" * 43, "name": "node-b"}).status == 403
    assert "node-b" in nodes(a, token)
    r = admin.post("/admin/nodes/forget", form={"csrf": csrf, "name": "node-b"})
    assert r.status == 200 and "Node forgotten." in r.text, (r.status, r.text[:300])
    assert nodes(a, token).keys() == {"node-a"}
    assert admin.post("/admin/nodes/forget", form={"csrf": csrf, "name": "node-b"}).status == 404
    audit = Client(a.portal_port).get("/api/v1/audit", token=token)
    forgets = [e for e in audit.json()["records"] if e.get("action") == "node.forget"]
    assert [(e["target"], e["actor"]) for e in forgets] == [("node-b", "user:admin")], forgets


def minted_tag(gw) -> int:
    """The queue-id tag of the next id `gw` mints: the top 10 of an id's last 20 bits."""
    reply = gw.send("x@ext.test", ["b@our.test"], "From: x@ext.test\r\nSubject: tag\r\n\r\nhello\r\n")
    qid = re.search(r"queued as ([0-9a-f]{16})", reply).group(1)
    return int(qid[11:], 16) >> 10


def test_each_node_mints_ids_with_its_own_tag_kept_across_restarts_and_freed_by_forget(
        schema, gateway_factory, sink, redis_url):
    settings = shared_settings(schema, redis_url, sink.next_hop)
    a = node(gateway_factory, settings, "node-a")
    portal, token = Portal(a), admin_token(a)
    b = node(gateway_factory, settings, "node-b")
    assert (minted_tag(a), minted_tag(b)) == (0, 1), "the lowest free tags, one each"
    assert {name: n["tag"] for name, n in nodes(a, token).items()} == {"node-a": 0, "node-b": 1}, "shown by the API"
    a.stop()
    a.start()
    assert minted_tag(a) == 0, "a restart keeps its tag"
    wait_until(lambda: not b.queue_ids("active"), timeout=30, what="node B's queue to drain")
    b.kill()
    wait_until(lambda: nodes(a, token)["node-b"]["state"] == "stale", timeout=15, what="node B shown stale")
    admin = portal.logged_in("admin")
    r = admin.post("/admin/nodes/forget", form={"csrf": admin.csrf("/admin/nodes"), "name": "node-b"})
    assert r.status == 200 and "Node forgotten." in r.text, (r.status, r.text[:300])
    c = node(gateway_factory, settings, "node-c")
    assert minted_tag(c) == 1, "node B's tag, freed by forgetting it"


def test_a_new_node_name_is_refused_at_start_when_every_tag_is_held(gateway_factory):
    """On a single gateway's own SQLite store, filled with 1,023 other nodes: its restart keeps its tag, a new
    name is refused with what to do, and forgetting one node lets the new name in with the freed tag."""
    gw = gateway_factory({"cluster": {"node_name": "mx-old"}}, name="full")
    gw.stop()
    db = sqlite3.connect(gw.data_dir / "store" / "portcullis.db")
    with db:
        db.executemany("INSERT INTO nodes (name, version, started_at_ms, heartbeat_ms, queue_depth, smtp_listen, "
                       "portal_listen, tag) VALUES (?, 'x', 0, 0, 0, '', '', ?)",
                       [(f"other-{t}", t) for t in range(1, 1024)])
    gw.start()
    assert minted_tag(gw) == 0, "a restart keeps its tag"
    gw.stop()
    gw.settings["cluster"]["node_name"] = "mx-new"
    gw.config.write_text(to_toml(gw.settings))
    gw.start(wait=False)
    assert gw.proc.wait(timeout=60) != 0
    said = gw.logs()
    assert "all 1024 queue-id tags are held by other nodes" in said and "Forget" in said, said[-2000:]
    with db:
        db.execute("DELETE FROM nodes WHERE name = 'other-7'")  # what the admin console's Forget does
    db.close()
    gw.start()
    assert minted_tag(gw) == 7


def test_a_live_node_without_a_tag_is_warned_about_at_start(gateway_factory):
    """A node of a version from before store-given tags (its row has no tag) that sent a heartbeat moments ago
    is named in a warning when another node starts; one silent for longer is not."""
    gw = gateway_factory({"cluster": {"node_name": "mx-new"}}, name="untagged")
    gw.stop()
    now_ms = int(time.time() * 1000)
    db = sqlite3.connect(gw.data_dir / "store" / "portcullis.db")
    with db:
        db.executemany("INSERT INTO nodes (name, version, started_at_ms, heartbeat_ms, queue_depth, smtp_listen, "
                       "portal_listen) VALUES (?, '0.0.9', 0, ?, 0, '', '')",
                       [("mx-old-live", now_ms), ("mx-old-gone", now_ms - 24 * 3600 * 1000)])
    db.close()
    gw.start()
    said = gw.logs()
    warned = [line for line in said.splitlines() if "has no queue-id tag" in line]
    assert len(warned) == 1 and "mx-old-live" in warned[0] and "0.0.9" in warned[0], said[-2000:]
    assert minted_tag(gw) == 0


def test_a_node_whose_tag_was_taken_while_it_ran_stops(gateway_factory):
    """A node forgotten while it ran (cut off from the store past node_stale_after) whose freed tag a new node
    claimed: its next heartbeat finds the tag taken, and it stops (draining, exit status 2) rather than mint
    queue ids the new node mints too; started again, it claims a free tag and serves."""
    gw = gateway_factory({"cluster": {"node_name": "mx-old", "heartbeat_interval": "200ms",
                                      "node_stale_after": "1s"}}, name="tag-taken")
    assert minted_tag(gw) == 0
    db = sqlite3.connect(gw.data_dir / "store" / "portcullis.db", timeout=10)
    with db:
        db.execute("DELETE FROM nodes WHERE name = 'mx-old'")  # what the admin console's Forget does
        db.execute("INSERT INTO nodes (name, version, started_at_ms, heartbeat_ms, queue_depth, smtp_listen, "
                   "portal_listen, tag) VALUES ('mx-new', 'x', 0, 0, 0, '', '', 0)")
    db.close()
    assert gw.proc.wait(timeout=30) == 2
    said = gw.logs()
    assert "queue-id tag 0 is now held by another node" in said and "Start it again" in said, said[-2000:]
    gw.start()
    assert minted_tag(gw) == 1, "a free tag, not the taken one"
