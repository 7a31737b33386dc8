"""Backups carry the store as data (`store.jsonl`), on PostgreSQL as on SQLite: a gateway on a PostgreSQL
schema is backed up while it runs, and the archive restores into a fresh SQLite data directory and into a
fresh PostgreSQL schema with every row there (accounts, quarantine items with their bodies, classifier,
tracking): the restored store, backed up again, is the same export byte for byte. A schema that already
holds data is refused and nothing is restored.

Uses fresh schemas in the test database (PORTCULLIS_TEST_POSTGRES_URL), dropped afterwards."""

import json
import sqlite3
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from helpers import Gateway, wait_until
from test_store_postgres import GTUBE, POSTGRES_URL, schema  # noqa: F401 (fixture: a fresh schema)


@pytest.fixture
def other_schema():
    name = f"pytest_{uuid.uuid4().hex[:16]}"
    yield name
    subprocess.run(["psql", POSTGRES_URL, "-qc", f"DROP SCHEMA IF EXISTS {name} CASCADE"],
                   capture_output=True, timeout=30, check=True)


def on_postgres(schema: str) -> dict:
    return {"store": {"backend": "postgres", "url": POSTGRES_URL, "schema": schema}}


def store_item(archive: Path) -> bytes:
    with tarfile.open(archive) as t:
        return t.extractfile("store.jsonl").read()


def rows(export: bytes) -> dict:
    return dict(json.loads(export.splitlines()[-1])["rows"])


def message(subject: str, body: str) -> str:
    return (f"From: Spammer <a@ext.test>\r\nTo: b@our.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@ext.test>\r\n\r\n{body}\r\n")


def test_a_postgres_gateway_backed_up_while_running_restores_onto_sqlite_and_postgres(
        gateway_factory, sink, schema, other_schema, tmp_path):
    gw = gateway_factory({"relay": {"next_hop": sink.next_hop}, **on_postgres(schema)})
    added = gw.cli("users", "add", "alice", "--role", "user", "--address", "b@our.test")
    assert added.returncode == 0, added.stderr
    gw.send("a@ext.test", ["b@our.test"], message("held-one", GTUBE))
    gw.send("a@ext.test", ["b@our.test"], message("passed-one", "hello"))
    sink.wait_for_message("passed-one@ext.test")
    spam = tmp_path / "spam.eml"
    spam.write_text(message("learned", "cheap pills now"))
    assert gw.cli("learn", "--spam", str(spam)).returncode == 0

    def held():
        r = gw.cli("quarantine", "list", "--json")
        return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]

    (item,) = wait_until(held, what="the held message indexed")
    archive = tmp_path / "pg.tar"
    r = gw.cli("backup", "--out", str(archive))  # the gateway keeps running
    assert r.returncode == 0, r.stderr
    exported = store_item(archive)
    counts = rows(exported)
    for table in ("accounts", "account_addresses", "quarantine_items", "quarantine_bodies", "classifier_learned",
                  "classifier_weights", "tracking_messages", "tracking_events"):
        assert counts[table] > 0, (table, counts)
    with tarfile.open(archive) as t:
        assert "portcullis.db" not in t.getnames()
    assert gw.cli("backup", "--verify", str(archive)).returncode == 0

    # A fresh SQLite data directory.
    lite = Gateway(tmp_path, {"relay": {"next_hop": sink.next_hop}}, name="lite")
    r = lite.cli("restore", str(archive))
    assert r.returncode == 0, r.stderr
    assert "rows restored" in r.stdout.decode(), r.stdout
    assert not (lite.data_dir / "store.jsonl").exists()
    with sqlite3.connect(lite.data_dir / "store" / "portcullis.db") as db:
        body, = db.execute("SELECT body FROM quarantine_bodies WHERE item_id = ?", (item["id"],)).fetchone()
        assert GTUBE.encode() in body
        assert not db.execute("SELECT name FROM sqlite_master WHERE type IN ('trigger', 'view')").fetchall()
    # A fresh PostgreSQL schema.
    pg = Gateway(tmp_path, {"relay": {"next_hop": sink.next_hop}, **on_postgres(other_schema)}, name="pg")
    r = pg.cli("restore", str(archive))
    assert r.returncode == 0, r.stderr
    assert other_schema in r.stdout.decode(), r.stdout
    # Every row of every table: each restored store, backed up again, is the same export.
    for restored in (lite, pg):
        again = tmp_path / f"{restored.dir.name}-again.tar"
        r = restored.cli("backup", "--out", str(again))
        assert r.returncode == 0, r.stderr
        assert store_item(again) == exported, restored.dir.name
        listed = json.loads(restored.cli("users", "list", "--json").stdout)
        assert "alice" in json.dumps(listed), listed
        shown = restored.cli("quarantine", "list", "--json").stdout.decode()
        assert item["id"] in shown, shown
    # Restoring again onto the schema that now holds data: refused, nothing restored.
    again = Gateway(tmp_path, {"relay": {"next_hop": sink.next_hop}, **on_postgres(other_schema)}, name="again")
    r = again.cli("restore", str(archive))
    assert r.returncode != 0 and "holds data" in r.stderr.decode(), r.stderr
    assert "nothing was restored" in r.stderr.decode()
    assert not again.data_dir.exists()
    # The restored PostgreSQL gateway serves what it got: new accounts get new ids past the imported ones.
    assert pg.cli("users", "add", "carol", "--role", "user").returncode == 0
