"""Gateway nodes sharing one Redis (`[cache]`): a sender-group rate limit counts across nodes; with Redis
unreachable mail is still accepted under per-node limits (or tempfailed, as configured) and the log says
so; `portcullis learn` changes a running gateway's verdict without a restart; with a shared PostgreSQL
store (a fresh schema per test), learning on one node changes another's verdict.

Needs the Redis at 127.0.0.1:6379 (`PORTCULLIS_TEST_REDIS=skip` skips the tests that need it). Every test
uses a key prefix of its own, so runs never see each other's counters.
"""

from __future__ import annotations

import email
import os
import re
import socket
import threading
import time
import uuid

import pytest

from helpers import free_port, wait_until
from test_portal_support import GTUBE, Client, Portal, wait_for_item
from test_store_postgres import POSTGRES_URL, schema  # noqa: F401 (the fixture: a fresh schema, dropped after)

REDIS = ("127.0.0.1", 6379)
THROTTLED_IP = "127.0.0.3"  # in the throttled group
OTHER_IP = "127.0.0.4"  # in no group


def reachable(addr) -> bool:
    try:
        with socket.create_connection(addr, timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    if os.environ.get("PORTCULLIS_TEST_REDIS") == "skip":
        pytest.skip("PORTCULLIS_TEST_REDIS=skip")
    assert reachable(REDIS), "no Redis at 127.0.0.1:6379: start redis-server or set PORTCULLIS_TEST_REDIS=skip"
    return "redis://127.0.0.1:6379"


def unique_prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


def cache_settings(url: str, **more) -> dict:
    return {"redis_url": url, "key_prefix": unique_prefix(), **more}


def throttled(max_messages: int) -> dict:
    group = {"name": "busy", "ips": [THROTTLED_IP], "policy": "throttle", "max_messages": max_messages,
             "window": "1h"}
    return {"sender_group": [group]}


# No resolver on loopback answers: lookups fail at once instead of waiting on the system's.
QUIET_DNS = {"nameservers": [f"127.0.0.1:{free_port()}"], "timeout": "200ms", "attempts": 1}


METRICS_TOKEN = "metrics-token-for-tests"


def metrics(gw) -> str:
    r = Client(gw.portal_port).get("/metrics", token=METRICS_TOKEN)
    assert r.status == 200, r.status
    return r.text


def mail_from(gw, ip: str) -> tuple[int, str]:
    """One `MAIL FROM` from `ip` in a session of its own: (code, text)."""
    with gw.raw(source_ip=ip) as c:
        assert c.read_reply()[0] == 220
        c.command("EHLO client.test")
        return c.command("MAIL FROM:<a@client.test>")


# -- rate limits ------------------------------------------------------------------------------------

def test_a_rate_limit_counts_across_nodes(gateway_factory, redis_url):
    settings = {"dns": QUIET_DNS, "reputation": throttled(3), "cache": cache_settings(redis_url),
                "portal": {"metrics_token": METRICS_TOKEN}}
    a = gateway_factory(settings, name="a")
    b = gateway_factory(settings, name="b")
    assert mail_from(a, THROTTLED_IP)[0] == 250
    assert mail_from(a, THROTTLED_IP)[0] == 250
    assert mail_from(b, THROTTLED_IP)[0] == 250, "the third of three, on the other node"
    for gw in (a, b):
        code, text = mail_from(gw, THROTTLED_IP)
        assert code == 451 and "4.7.1" in text, (gw.dir.name, code, text)
    assert mail_from(b, OTHER_IP)[0] == 250, "clients outside the group are not counted"
    assert "Redis reachable" in a.logs() and "Redis reachable" in b.logs()
    assert "portcullis_cache_up 1" in metrics(a)


def test_login_throttling_counts_across_nodes(gateway_factory, redis_url):
    limits = {"login_max_failures_per_account": 3, "login_max_failures_per_address": 100}
    settings = {"dns": QUIET_DNS, "portal": limits, "cache": cache_settings(redis_url)}
    a = gateway_factory(settings, name="a")
    b = gateway_factory(settings, name="b")
    at = lambda gw: Client(gw.portal_port, source_ip="127.0.0.2")  # noqa: E731
    assert [at(a).login("alice", "guess-1").status, at(a).login("alice", "guess-2").status,
            at(b).login("alice", "guess-3").status] == [401, 401, 401]
    assert at(a).login("alice", "guess-4").status == 429
    assert at(b).login("alice", "guess-5").status == 429, "the other node counted the same failures"
    assert at(b).login("bob", "guess").status == 401, "other names are counted apart"


def test_login_throttling_falls_back_to_the_store_while_redis_is_down(gateway_factory):
    limits = {"login_max_failures_per_account": 3, "login_max_failures_per_address": 100}
    closed = f"redis://127.0.0.1:{free_port()}"
    gw = gateway_factory({"dns": QUIET_DNS, "portal": limits,
                          "cache": cache_settings(closed, command_timeout="200ms")})
    client = Client(gw.portal_port, source_ip="127.0.0.2")
    assert [client.login("alice", f"guess-{i}").status for i in range(5)] == [401, 401, 401, 429, 429]


def test_redis_down_keeps_accepting_with_per_node_limits(gateway_factory, sink):
    closed = f"redis://127.0.0.1:{free_port()}"
    gw = gateway_factory({"dns": QUIET_DNS, "reputation": throttled(2), "relay": {"next_hop": sink.next_hop},
                          "portal": {"metrics_token": METRICS_TOKEN},
                          "cache": cache_settings(closed, command_timeout="200ms", retry_after="1s")})
    with gw.smtp(source_ip=THROTTLED_IP) as s:
        s.ehlo("client.test")
        assert s.mail("a@client.test")[0] == 250
        assert s.rcpt("b@our.test")[0] == 250
        code, msg = s.data(b"From: a@client.test\r\nTo: b@our.test\r\nSubject: hi\r\n\r\nstill flowing\r\n")
        assert code == 250 and b"queued as" in msg, (code, msg)
    assert mail_from(gw, THROTTLED_IP)[0] == 250
    code, text = mail_from(gw, THROTTLED_IP)
    assert code == 451 and "4.7.1" in text, "the node's own limit still holds: " + text
    wait_until(lambda: "Redis unreachable" in gw.logs(), what="the fallback in the log")
    assert gw.logs().count("Redis unreachable") == 1, "said once, not per call"
    assert "redis://127.0.0.1" in gw.logs()
    exported = metrics(gw)
    assert "portcullis_cache_up 0" in exported and "portcullis_cache_fallbacks_total" in exported, exported


class Forwarder:
    """A TCP listener on `port` that forwards every connection to Redis: Redis "coming back" there."""

    def __init__(self, port: int):
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                client, _ = self.server.accept()
            except socket.timeout:
                continue
            upstream = socket.create_connection(REDIS, timeout=5)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        src.settimeout(None)
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.server.close()


def test_a_node_recovers_by_itself_when_redis_comes_back(gateway_factory, redis_url):
    port = free_port()
    cache = cache_settings(f"redis://127.0.0.1:{port}", command_timeout="200ms", retry_after="500ms")
    settings = {"dns": QUIET_DNS, "reputation": throttled(3), "cache": cache}
    a = gateway_factory(settings, name="a")
    assert mail_from(a, THROTTLED_IP)[0] == 250, "counted on the node alone"
    wait_until(lambda: "Redis unreachable" in a.logs(), what="the fallback in the log")
    forwarder = Forwarder(port)
    try:
        b = gateway_factory(settings, name="b")
        # Redis is tried again after retry_after (by the next call, here the classifier-change
        # subscriber's); from then on both nodes share one count.
        wait_until(lambda: "Redis reachable again" in a.logs(), timeout=15, what="the node to find Redis again")
        assert [mail_from(gw, THROTTLED_IP)[0] for gw in (a, b, a)] == [250, 250, 250]
        code, text = mail_from(b, THROTTLED_IP)
        assert code == 451 and "4.7.1" in text, text
    finally:
        forwarder.stop()


def test_redis_down_can_tempfail_throttled_groups(gateway_factory):
    closed = f"redis://127.0.0.1:{free_port()}"
    gw = gateway_factory({"dns": QUIET_DNS, "reputation": throttled(5),
                          "cache": cache_settings(closed, on_unavailable="tempfail", command_timeout="200ms")})
    code, text = mail_from(gw, THROTTLED_IP)
    assert code == 451 and "4.3.0" in text, text
    assert mail_from(gw, OTHER_IP)[0] == 250, "clients of no throttled group are not affected"


def test_the_redis_password_is_never_logged(gateway_factory):
    closed = f"redis://gw:s3cret-pass@127.0.0.1:{free_port()}"
    gw = gateway_factory({"dns": QUIET_DNS, "reputation": throttled(5),
                          "cache": cache_settings(closed, command_timeout="200ms")})
    mail_from(gw, THROTTLED_IP)
    wait_until(lambda: "Redis unreachable" in gw.logs(), what="the fallback in the log")
    assert "s3cret-pass" not in gw.logs()
    shown = gw.cli("config", "show")
    assert shown.returncode == 0, shown.stderr
    assert b"s3cret-pass" not in shown.stdout and b"gw:***@127.0.0.1" in shown.stdout, shown.stdout
    doctor = gw.cli("doctor").stdout.decode()
    assert "does not answer" in doctor and "s3cret-pass" not in doctor, doctor


# -- the classifier ---------------------------------------------------------------------------------

SPAM = ("From: Deals <deals@offers.example>\r\nTo: b@our.test\r\nSubject: cheap pills best prices\r\n"
        "Date: Fri, 27 Nov 2026 08:00:00 +0000\r\nMessage-ID: <{mid}@offers.example>\r\n\r\n"
        "Buy cheap pills now at the best prices, limited offer, click here to order today.\r\n")
HAM = ("From: Alice <alice@ext.test>\r\nTo: b@our.test\r\nSubject: lunch on friday\r\n"
       "Date: Fri, 27 Nov 2026 08:00:00 +0000\r\nMessage-ID: <lunch@ext.test>\r\n\r\n"
       "See you at noon in the usual place, I will bring the minutes of the meeting.\r\n")


def classifier_settings(sink, cache: dict | None) -> dict:
    s = {"dns": QUIET_DNS, "relay": {"next_hop": sink.next_hop},
         "classifier": {"min_learned_spam": 1, "min_learned_ham": 1},
         # Everything is delivered, so every verdict can be read at the sink.
         "actions": {"quarantine": False, "reject": False}}
    if cache is not None:
        s["cache"] = cache
    return s


def verdict_at_sink(gw, sink, n: int) -> str:
    """Send the spam message (number `n`) through `gw` and return its X-Portcullis-Verdict."""
    mid = f"spam{n}.{uuid.uuid4().hex}"
    gw.send("deals@offers.example", ["b@our.test"], SPAM.format(mid=mid))
    (_, _, data), = sink.wait_for_message(mid)
    return " ".join(email.message_from_bytes(data)["X-Portcullis-Verdict"].split())


def learn(gw, tmp_path, cls: str, text: str):
    path = tmp_path / f"{gw.dir.name}-{cls}.eml"
    path.write_text(text)
    r = gw.cli("learn", f"--{cls}", str(path))
    assert r.returncode == 0, r.stderr


def wait_for_bayes(sender, sink, start: int) -> str:
    """Send the spam message until its verdict carries a BAYES_ symbol (bounded)."""
    n = start
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        verdict = verdict_at_sink(sender, sink, n)
        if "BAYES_" in verdict:
            return verdict
        n += 1
        time.sleep(0.3)
    raise AssertionError(f"the running gateway never judged with the learned model: {verdict}")


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis-notice", "store-poll"])
def test_learning_changes_the_running_gateways_verdict(gateway_factory, sink, tmp_path, with_redis, request):
    cache = None
    if with_redis:
        cache = cache_settings(request.getfixturevalue("redis_url"), model_check_interval="30s")
    else:
        cache = {"model_check_interval": "500ms"}
    gw = gateway_factory(classifier_settings(sink, cache))
    assert "BAYES_" not in verdict_at_sink(gw, sink, 0), "nothing learned yet"
    learn(gw, tmp_path, "spam", SPAM.format(mid="learned"))
    learn(gw, tmp_path, "ham", HAM)
    started = time.monotonic()
    verdict = wait_for_bayes(gw, sink, 1)
    assert any(band in verdict for band in ("BAYES_80", "BAYES_95", "BAYES_99", "BAYES_999")), verdict
    if with_redis:
        # The notice, not the 30 s poll, brought the change.
        assert time.monotonic() - started < 15
    assert "classifier reloaded from the store" in gw.logs()


def test_learning_on_one_node_changes_anothers_verdict(schema, gateway_factory, sink, tmp_path, redis_url):
    shared = classifier_settings(sink, cache_settings(redis_url, model_check_interval="30s"))
    shared["store"] = {"backend": "postgres", "url": POSTGRES_URL, "schema": schema}
    a = gateway_factory(shared, name="a")
    b = gateway_factory(shared, name="b")
    assert "BAYES_" not in verdict_at_sink(b, sink, 0)
    learn(a, tmp_path, "spam", SPAM.format(mid="learned"))
    learn(a, tmp_path, "ham", HAM)
    started = time.monotonic()
    verdict = wait_for_bayes(b, sink, 1)
    assert any(band in verdict for band in ("BAYES_80", "BAYES_95", "BAYES_99", "BAYES_999")), verdict
    assert time.monotonic() - started < 15, "the notice, not the 30 s poll, brought the change"


def plain(log: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", log)


def test_a_quarantine_action_on_one_node_reaches_the_other_at_once(schema, gateway_factory, sink, tmp_path,
                                                                  redis_url):
    shared = {"dns": QUIET_DNS, "relay": {"next_hop": sink.next_hop},
              "classifier": {"min_learned_spam": 1, "min_learned_ham": 1},
              "store": {"backend": "postgres", "url": POSTGRES_URL, "schema": schema},
              "cache": cache_settings(redis_url, model_check_interval="30s")}
    a = gateway_factory(shared, name="a")
    Portal(a)  # the first-start admin exists
    admin = a.cli("users", "token", "admin", "--name", "tests")
    assert admin.returncode == 0, admin.stderr
    b = gateway_factory(shared, name="b")
    token = admin.stdout.decode().strip()
    learn(a, tmp_path, "ham", HAM)
    a.send("spammer@ext.test", ["b@our.test"], f"From: s@ext.test\r\nTo: b@our.test\r\nSubject: held-one\r\n\r\n{GTUBE}\r\n")
    api = Client(a.portal_port)
    item = wait_for_item(api, token, "held-one")
    r = api.post(f"/api/v1/quarantine/{item['id']}/learn-spam", token=token)
    assert r.status in (200, 204), (r.status, r.text[:300])
    # Node a learned in-process; node b hears it at once (its own poll is 30 s away).
    wait_until(lambda: "spam=1 ham=1" in plain(b.logs()), timeout=10, what="node b reloading the learned model")
    assert "other nodes told" in plain(a.logs())
