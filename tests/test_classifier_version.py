"""The classifier's feature version: a stored model learned with other features than this build extracts
is not judged with (no BAYES_* symbols; one warning in `scan`'s output and in the gateway's log), `learn`
refuses to add to it naming both versions and the way out, `doctor` reports it, and `learn --reset`
clears it (audited) so that learning starts again, which a running gateway picks up without a restart.

A model from before versions were recorded is made here as the store's migration makes one: a learned
model whose `classifier_totals.feature_version` is 0.
"""

from __future__ import annotations

import email
import json
import sqlite3
import time
import uuid

from helpers import wait_until
from test_cluster_cache import HAM, QUIET_DNS, SPAM

CURRENT = 1  # classifier::FEATURE_VERSION


def settings(next_hop: str | None = None) -> dict:
    s = {"dns": QUIET_DNS, "classifier": {"min_learned_spam": 1, "min_learned_ham": 1},
         "cache": {"model_check_interval": "300ms"},
         # Everything is delivered, so every verdict can be read at the sink.
         "actions": {"quarantine": False, "reject": False}}
    if next_hop:
        s["relay"] = {"next_hop": next_hop}
    return s


def learn(gw, tmp_path, cls: str, text: str):
    path = tmp_path / f"{cls}-{uuid.uuid4().hex}.eml"
    path.write_text(text)
    return gw.cli("learn", f"--{cls}", str(path))


def learn_both(gw, tmp_path):
    for cls, text in (("spam", SPAM.format(mid="learned")), ("ham", HAM)):
        r = learn(gw, tmp_path, cls, text)
        assert r.returncode == 0, r.stderr


def make_stale(gw):
    """What migration 0304 makes of a model learned before feature versions: version 0."""
    with sqlite3.connect(gw.data_dir / "store" / "portcullis.db") as db:
        db.execute("UPDATE classifier_totals SET feature_version = 0 WHERE id = 1")


def scan(gw, tmp_path):
    eml = tmp_path / "scan.eml"
    eml.write_text(SPAM.format(mid="scanned"))
    r = gw.cli("scan", "--json", "--offline", str(eml))
    assert r.returncode == 0, r.stderr
    (line,) = [json.loads(x) for x in r.stdout.decode().splitlines()]
    return r.stderr.decode(), [s["name"] for s in line["symbols"]]


def says_stale(text: str) -> bool:
    return ("feature version 0" in text and f"version {CURRENT}" in text
            and "portcullis learn --reset" in text)


def test_a_model_of_another_feature_version_is_refused_until_it_is_reset(gateway_factory, tmp_path):
    gw = gateway_factory(settings(), start=False)
    learn_both(gw, tmp_path)
    warning, symbols = scan(gw, tmp_path)
    assert warning == "" and any(s.startswith("BAYES_") for s in symbols), (warning, symbols)

    make_stale(gw)
    warning, symbols = scan(gw, tmp_path)
    assert says_stale(warning) and "BAYES_" in warning, warning
    assert warning.count("\n") == 1, f"one warning: {warning!r}"
    assert not any(s.startswith("BAYES_") for s in symbols), symbols

    refused = learn(gw, tmp_path, "spam", SPAM.format(mid="more"))
    assert refused.returncode == 2 and says_stale(refused.stderr.decode()), refused.stderr

    doctor = gw.cli("doctor", "--json")
    findings = json.loads(doctor.stdout)["findings"]
    (stale,) = [f for f in findings if f["check"] == "classifier"]
    assert stale["severity"] == "warning" and says_stale(stale["message"]), stale
    assert doctor.returncode == 1

    reset = gw.cli("learn", "--reset")
    assert reset.returncode == 0, reset.stderr
    out = reset.stdout.decode()
    assert "1 spam and 1 ham learned, 2 learned messages forgotten" in out, out
    assert "feature version 0 (unknown" in out and f"now records feature version {CURRENT}" in out, out
    (record,) = [r for r in gw.audit_records() if r["action"] == "classifier.reset"]
    assert record["actor"].startswith("cli"), record
    details = record["details"]
    assert (details["feature_version_before"], details["feature_version"]) == ("0", str(CURRENT)), details
    assert (details["spam"], details["ham"], details["learned_messages"]) == ("1", "1", "2"), details
    assert gw.cli("audit", "verify").returncode == 0

    warning, symbols = scan(gw, tmp_path)
    assert warning == "" and not any(s.startswith("BAYES_") for s in symbols), "cleared: nothing learned"
    assert not [f for f in json.loads(gw.cli("doctor", "--json").stdout)["findings"] if f["check"] == "classifier"]
    learn_both(gw, tmp_path)
    warning, symbols = scan(gw, tmp_path)
    assert warning == "" and any(s.startswith("BAYES_") for s in symbols), (warning, symbols)
    with sqlite3.connect(gw.data_dir / "store" / "portcullis.db") as db:
        assert db.execute("SELECT feature_version FROM classifier_totals").fetchone() == (CURRENT,)


def verdict_of(gw, sink) -> str:
    mid = f"spam.{uuid.uuid4().hex}"
    gw.send("deals@offers.example", ["b@our.test"], SPAM.format(mid=mid))
    (_, _, data), = sink.wait_for_message(mid)
    return " ".join(email.message_from_bytes(data)["X-Portcullis-Verdict"].split())


def test_a_running_gateway_ignores_a_stale_model_and_takes_up_the_reset_one(gateway_factory, sink, tmp_path):
    gw = gateway_factory(settings(sink.next_hop), start=False)
    learn_both(gw, tmp_path)
    make_stale(gw)
    gw.start()
    assert "BAYES_" not in verdict_of(gw, sink)
    logs = gw.logs()
    assert logs.count("feature version 0") == 1 and says_stale(logs), logs[-3000:]

    assert gw.cli("learn", "--reset").returncode == 0
    wait_until(lambda: "fits this build's features again" in gw.logs(), timeout=10, what="the reset model loaded")
    learn_both(gw, tmp_path)
    deadline = time.monotonic() + 20
    while "BAYES_" not in (verdict := verdict_of(gw, sink)):
        assert time.monotonic() < deadline, f"the relearned model was never used: {verdict}"
        time.sleep(0.3)
    assert gw.logs().count("feature version 0") == 1, "warned once"
