"""The store on PostgreSQL, end to end: `portcullis migrate` applies and reports the migrations (and says
"up to date" the second time), fails non-zero naming the database without its password when the server
cannot be reached, and a gateway on a PostgreSQL schema holds, lists and releases a GTUBE message.

Each test uses a fresh schema in the test database (PORTCULLIS_TEST_POSTGRES_URL, default
postgres://postgres@127.0.0.1:5432/test), dropped afterwards."""

import json
import os
import subprocess
import uuid

import pytest

from helpers import BIN, gateway_env, wait_until

POSTGRES_URL = os.environ.get("PORTCULLIS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture
def schema():
    name = f"pytest_{uuid.uuid4().hex[:16]}"
    yield name
    subprocess.run(["psql", POSTGRES_URL, "-qc", f"DROP SCHEMA IF EXISTS {name} CASCADE"],
                   capture_output=True, timeout=30, check=True)


def run_cli(*args, extra_env=None):
    env = gateway_env()
    env.update(extra_env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60, env=env)


def postgres_env(schema, url=POSTGRES_URL):
    return {"PORTCULLIS_STORE__BACKEND": "postgres", "PORTCULLIS_STORE__URL": url,
            "PORTCULLIS_STORE__SCHEMA": schema}


def test_migrate_reports_what_it_applied_then_up_to_date(tmp_path, schema):
    env = postgres_env(schema)
    first = run_cli("--set", f"data_dir={tmp_path}", "migrate", extra_env=env)
    assert first.returncode == 0, first.stderr
    applied = [line.split(": applied ", 1)[1] for line in first.stdout.splitlines()]
    assert applied[0] == "1 classifier" and "200 accounts" in applied, first.stdout
    assert f"schema {schema}" in first.stdout
    again = run_cli("--set", f"data_dir={tmp_path}", "migrate", extra_env=env)
    assert again.returncode == 0 and again.stdout.strip().endswith(": up to date"), again.stdout
    tables = subprocess.run(["psql", POSTGRES_URL, "-Atc",
                             f"SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}'"],
                            capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    assert int(tables) >= 15, tables
    # SQLite: the same versions.
    sqlite = run_cli("--set", f"data_dir={tmp_path / 'lite'}", "migrate")
    assert sqlite.returncode == 0, sqlite.stderr
    assert [line.split(": applied ", 1)[1] for line in sqlite.stdout.splitlines()] == applied


def test_an_unreachable_database_fails_clearly_without_the_password(tmp_path):
    env = postgres_env("public", "postgres://gw:s3cret-pw@127.0.0.1:1/test")
    r = run_cli("--set", f"data_dir={tmp_path}", "migrate", extra_env=env)
    assert r.returncode != 0
    assert "postgres://gw:***@127.0.0.1:1/test" in r.stderr, r.stderr
    assert "s3cret-pw" not in r.stderr + r.stdout
    shown = run_cli("config", "show", extra_env=env)
    assert shown.returncode == 0 and "s3cret-pw" not in shown.stdout and "gw:***@" in shown.stdout
    bad = run_cli("config", "check", extra_env={"PORTCULLIS_STORE__BACKEND": "postgres"})
    assert bad.returncode != 0 and "store.url" in bad.stderr, bad.stderr


def test_a_gateway_on_postgres_holds_lists_and_releases(gateway_factory, sink, schema):
    gw = gateway_factory({"relay": {"next_hop": sink.next_hop},
                          "store": {"backend": "postgres", "url": POSTGRES_URL, "schema": schema}})
    body = ("From: Spammer <a@ext.test>\r\nTo: b@our.test\r\nSubject: pg hold\r\n"
            f"Message-ID: <pg-1@ext.test>\r\n\r\n{GTUBE}\r\n")
    gw.send("a@ext.test", ["b@our.test"], body)

    def held():
        r = gw.cli("quarantine", "list", "--json")
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]

    (item,) = wait_until(held, what="the held message indexed in PostgreSQL")
    assert item["subject"] == "pg hold" and item["status"] == "held"
    r = gw.cli("quarantine", "release", item["id"], "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"outcome": "done"}, (r.stdout, r.stderr)
    assert len(sink.wait_for_message("pg-1@ext.test")) == 1
    assert not (gw.data_dir / "store").exists(), "nothing went to SQLite"
