"""One audit trail for a cluster: two `portcullis serve` nodes on their own loopback ports and data
directories, sharing one fresh PostgreSQL schema and one Redis key prefix (the setup of test_cluster.py).

An admin logs in on node A's portal and a quarantined message is released through node B's API; both
records are in the admin API and the console of either node (with the node that wrote each, newest first),
each node's chain verifies in the store, and `portcullis audit verify --store` passes on both nodes. A
row changed in the store is then named by node and seq, by the CLI and on the console.

Needs PostgreSQL (the `schema` fixture of test_store_postgres.py) and Redis at 127.0.0.1:6379.
"""

from __future__ import annotations

import json
import subprocess
import uuid

from test_cluster import admin_token, held_message, node, shared_settings
from test_cluster_cache import redis_url  # noqa: F401 (fixture)
from test_portal_support import Client, Portal, wait_for_item
from test_store_postgres import POSTGRES_URL, schema  # noqa: F401 (fixture: a fresh schema, dropped after)

from helpers import wait_until


def audit_api(gw, token: str) -> dict:
    r = Client(gw.portal_port).get("/api/v1/audit", token=token)
    assert r.status == 200, (r.status, r.text[:300])
    return r.json()


def has(records: list[dict], node_name: str, action: str, target: str | None = None) -> bool:
    return any(r["node"] == node_name and r["action"] == action and (target is None or r["target"] == target)
               for r in records)


def verify_store(gw) -> tuple[int, dict]:
    r = gw.cli("audit", "verify", "--store", "--json")
    return r.returncode, json.loads(r.stdout or b"{}")


def test_one_trail_for_two_nodes(schema, gateway_factory, sink, redis_url):
    # The console re-verifies at most once a second (default: once a minute), so a change shows soon.
    settings = {**shared_settings(schema, redis_url, sink.next_hop), "audit": {"console_verify_interval": "1s"}}
    a = node(gateway_factory, settings, "node-a")
    token = admin_token(a)
    b = node(gateway_factory, settings, "node-b")
    # A login on A's portal (the first-start admin A made is in the shared store).
    portal_a = Portal(a)
    portal_a.logged_in("admin")
    # A quarantine action on B's: the message A holds, released through B's API.
    subject = f"audited-{uuid.uuid4().hex[:8]}"
    a.send("spammer@ext.test", ["b@our.test"], held_message(subject))
    item = wait_for_item(Client(a.portal_port), token, subject)
    r = Client(b.portal_port).post(f"/api/v1/quarantine/{item['id']}/release", token=token)
    assert r.status == 200, (r.status, r.text[:300])

    def both_seen(gw):
        trail = audit_api(gw, token)
        recs = trail["records"]
        return (has(recs, "node-a", "auth.login") and has(recs, "node-b", "quarantine.release", item["id"])
                and trail)

    for gw in (a, b):
        trail = wait_until(lambda gw=gw: both_seen(gw), timeout=30,
                           what=f"both nodes' records in {gw.dir.name}'s audit API")
        times = [r["time"] for r in trail["records"]]
        assert times == sorted(times, reverse=True), "newest first across nodes"
        wait_until(lambda gw=gw: (t := audit_api(gw, token))["intact"] and
                   {n["node"] for n in t["nodes"] if n["intact"]} >= {"node-a", "node-b"},
                   timeout=30, what=f"every chain intact in {gw.dir.name}'s audit API")
    # B's console shows them too, with the node column.
    console_b = Client(b.portal_port)
    assert console_b.login("admin", portal_a.admin_password).status == 303
    page = console_b.get("/admin/audit").text
    assert "node-a" in page and "node-b" in page and "auth.login" in page and "quarantine.release" in page
    for gw in (a, b):
        code, report = wait_until(lambda gw=gw: (v := verify_store(gw))[0] == 0 and v, timeout=30,
                                  what=f"audit verify --store on {gw.dir.name}")
        assert report["ok"] and report["store"]["local"]["node"] == gw.dir.name, report

    # Someone with the store's credentials edits B's release record: named by node and seq.
    tampered = subprocess.run(
        ["psql", POSTGRES_URL, "-Atc",
         f"UPDATE {schema}.audit_records SET line = replace(line, '\"quarantine.release\"', '\"quarantine.view\"') "
         f"WHERE node = 'node-b' AND seq = (SELECT min(seq) FROM {schema}.audit_records "
         f"WHERE node = 'node-b' AND line LIKE '%\"quarantine.release\"%') RETURNING seq"],
        capture_output=True, check=True)
    seq = int(tampered.stdout.decode().split()[0])
    code, report = verify_store(a)
    assert code == 1 and not report["ok"], report
    broken = {n["node"]: n["problem"] for n in report["store"]["nodes"] if not n["ok"]}
    assert list(broken) == ["node-b"] and broken["node-b"]["seq"] == seq, broken
    trail = wait_until(lambda: not (t := audit_api(a, token))["intact"] and t, timeout=30,
                       what="the tampered chain shown as broken once the last verification has aged")
    assert [n["node"] for n in trail["nodes"] if not n["intact"]] == ["node-b"], trail
    assert "Verified 20" in trail["state"], trail["state"]
