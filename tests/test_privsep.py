"""Least privilege between the planes: `serve --role mail` and `serve --role portal` on one data directory
(the split `packaging/` ships). The portal has no spool: it shows, releases, deletes and learns held mail,
and an admin operates the delivery queue and sends digests, only through the mail plane's control socket,
which acts as the account the store knows, and says so plainly (503) when the mail plane is down. That the
portal's sandbox cannot read `spool/` is shown in `crates/portcullis/src/sandbox.rs`'s tests; here its start
record says what was enforced. Run as root (as CI is), the planes also run as two Unix users sharing a group,
as `packaging/` installs them, and the portal's user is shown to reach the store, audit trail and keys but not
the spool. A store at its old place in the data directory is moved into `store/` by the mail plane's start."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers import BIN, Gateway, free_port, gateway_env, merge, message_id, wait_until
from test_portal_support import GTUBE, Client, Portal, mail_text, portal_settings, spam, wait_for_item


@contextlib.contextmanager
def split_roles(gateway_factory, sink, settings: dict | None = None, portal_port: int | None = None):
    """`serve --role mail` and `serve --role portal` on one data directory; the portal, with accounts."""
    gw = gateway_factory(merge(portal_settings(sink), settings or {}), start=False)
    if portal_port:
        gw.portal_port = portal_port
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


@pytest.fixture
def split(gateway_factory, sink):
    with split_roles(gateway_factory, sink) as roles:
        yield roles


def held(portal: Portal, subject: str) -> dict:
    raw = spam(subject)
    portal.gw.send("spammer@ext.test", ["alice@our.test"], raw)
    item = wait_for_item(portal.client(), portal.tokens["alice"], subject)
    item["mid"] = message_id(raw)
    return item


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
    records = portal.gw.audit_records()
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


# -- two Unix users -----------------------------------------------------------------------------------

MAIL_USER, PORTAL_USER, GROUP = "pcl-test-mail", "pcl-test-portal", "pcl-test"


def ensure_users() -> tuple[int, int, int]:
    """The two system users sharing one group, made if missing (so a rerun finds them): their uids and the
    group's gid."""
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", GROUP], check=True)
    for user in (MAIL_USER, PORTAL_USER):
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "--system", "--gid", GROUP, "--no-create-home", "--home-dir",
                            "/nonexistent", "--shell", "/usr/sbin/nologin", user], check=True)
    return pwd.getpwnam(MAIL_USER).pw_uid, pwd.getpwnam(PORTAL_USER).pw_uid, grp.getgrnam(GROUP).gr_gid


def as_user(user: str) -> dict:
    """Popen arguments that run the child as `user` with the shared group and no other."""
    return {"user": user, "group": GROUP, "extra_groups": []}


class UserGateway(Gateway):
    """A gateway whose processes (serve and the command line) run as one Unix user, from a copy of the
    binary those users can execute."""

    def __init__(self, workdir: Path, settings: dict, binary: str, user: str):
        super().__init__(workdir, settings)
        self.binary, self.user = binary, user

    def start(self, wait: bool = True, role: str | None = None) -> "UserGateway":
        self.proc = self.spawn(role or "all", self.user)
        if wait:
            wait_until(self._accepting, timeout=30, what=f"gateway on port {self.port}\n{self.logs()}")
        return self

    def spawn(self, role: str, user: str) -> subprocess.Popen:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen([self.binary, "--config", str(self.config), "serve", "--role", role],
                                    stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=gateway_env(),
                                    **as_user(user))

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, "--config", str(self.config), *args], input=input,
                              capture_output=True, timeout=timeout, env=gateway_env(), **as_user(self.user))


@pytest.fixture
def two_users(request, sink):
    if os.geteuid() != 0:
        pytest.skip("needs root: makes two Unix users and runs the planes as them (CI runs as root)")
    if not shutil.which("useradd") or not shutil.which("groupadd"):
        pytest.skip("useradd and groupadd (passwd) are not installed")
    mail_uid, portal_uid, gid = ensure_users()
    # Under /tmp itself: pytest's own temporary directories are private to root. The binary is copied
    # there rather than opening up the build directory.
    work = Path(tempfile.mkdtemp(prefix="pcl-privsep-"))
    os.chmod(work, 0o755)
    binary = work / "portcullis"
    shutil.copyfile(BIN, binary)
    os.chmod(binary, 0o755)
    gw = UserGateway(work, portal_settings(sink), str(binary), MAIL_USER)
    os.chmod(gw.dir, 0o755)
    os.chmod(gw.config, 0o644)
    # The data directory as systemd's StateDirectory= makes it: the mail user's, 0710.
    gw.data_dir.mkdir()
    os.chown(gw.data_dir, mail_uid, gid)
    os.chmod(gw.data_dir, 0o710)
    request.node._gateways = [gw]
    gw.start(role="mail")
    portal_proc = gw.spawn("portal", PORTAL_USER)
    try:
        portal = Portal(gw)
        portal.tokens = portal.standard_accounts()
        portal.sink = sink
        yield portal, portal_proc, (mail_uid, portal_uid, gid)
    finally:
        for proc in (portal_proc, gw.proc):
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_portal_as_its_own_user_releases_held_mail_and_cannot_read_the_spool(two_users):
    portal, portal_proc, (mail_uid, portal_uid, gid) = two_users
    gw = portal.gw
    data = gw.data_dir

    # Held mail, found through the portal (it reads the store as its own user), released from a web
    # session (which it writes into the store), delivered by the mail plane.
    item = held(portal, "two users release")
    alice = portal.logged_in("alice")
    csrf = alice.csrf("/")
    page = alice.get(f"/quarantine/{item['id']}")
    assert page.status == 200 and "two users release" in page.text, page.status
    r = alice.post(f"/quarantine/{item['id']}/action", form={"op": "release", "csrf": csrf},
                   headers={"Origin": f"http://127.0.0.1:{portal.port}", "Sec-Fetch-Site": "same-origin"})
    assert r.status == 303, (r.status, r.text[:300])
    assert len(portal.sink.wait_for_message(item["mid"])) == 1
    assert portal_proc.poll() is None and gw.proc.poll() is None, gw.logs()

    # The portal's user cannot read, or even list, the spool; a message is held there now.
    kept = held(portal, "two users kept")
    ids = gw.queue_ids("quarantine")
    assert ids, "a held message in spool/quarantine"
    for cmd in (["cat", str(data / "spool" / "quarantine" / ids[0])], ["ls", str(data / "spool")]):
        r = subprocess.run(cmd, capture_output=True, **as_user(PORTAL_USER))
        assert r.returncode != 0 and b"Permission denied" in r.stderr, (cmd, r)
    assert alice.get(f"/api/v1/quarantine/{kept['id']}", token=portal.tokens["alice"]).status == 200

    # The layout: shared through the group where the portal needs it, the mail user's alone elsewhere.
    want = {"": 0o710, "store": 0o2770, "store/portcullis.db": 0o660, "audit": 0o2770,
            "audit/audit.log": 0o660, "keys": 0o2750, "keys/audit-signing.key": 0o640,
            "keys/digest.key": 0o640, "run": 0o2750, "spool": 0o700, "spool/quarantine": 0o700,
            f"spool/quarantine/{ids[0]}": 0o600}
    assert {p: mode_of(data / p) for p in want} == want
    for p in ("store", "store/portcullis.db", "audit/audit.log", "keys/audit-signing.key", "run/control.sock"):
        assert os.stat(data / p).st_gid == gid, p

    # Both planes wrote the one audit chain: the portal's start (as its user) and alice's release.
    records = gw.audit_records()
    assert {r["details"]["role"] for r in records if r["action"] == "gateway.start"} == {"mail", "portal"}
    releases = [r for r in records if r["action"] == "quarantine.release"]
    assert releases and releases[-1]["details"]["actor_name"] == "alice", releases
    verify = gw.cli("audit", "verify")
    assert verify.returncode == 0, verify

    # `doctor`, as the mail user, accepts this layout (the binary hash was never recorded: not a
    # permission matter).
    report = json.loads(gw.cli("doctor", "--json").stdout)
    loose = [f for f in report["findings"] if f["check"] in ("permissions", "foreign-file")
             and f["severity"] != "info"]
    assert loose == [], loose


# -- the store's old place --------------------------------------------------------------------------

def test_the_mail_plane_moves_a_store_at_its_old_place_and_refuses_two(gateway_factory, sink):
    gw = gateway_factory(portal_settings(sink), start=False)
    gw.start(role="mail")
    assert gw.cli("users", "add", "olduser", "--role", "user", "--password-stdin",
                  input=b"olduser-password-1234\n").returncode == 0
    assert gw.stop() == 0
    store_dir = gw.data_dir / "store"

    def to_old_place():
        """A data directory from before `store/`: the database beside the spool."""
        for f in store_dir.iterdir():
            f.rename(gw.data_dir / f.name)
        store_dir.rmdir()

    # `portcullis migrate` moves it (and records it, as the command line's user).
    to_old_place()
    doctor = json.loads(gw.cli("doctor", "--json").stdout)
    assert any(f["check"] == "store" and "old place" in f["message"] for f in doctor["findings"]), doctor
    migrated = gw.cli("migrate")
    assert migrated.returncode == 0 and b"moved into" in migrated.stdout, migrated
    assert (store_dir / "portcullis.db").is_file() and not list(gw.data_dir.glob("portcullis.db*"))

    # So does the mail plane's start.
    to_old_place()
    gw.start(role="mail")
    assert (store_dir / "portcullis.db").is_file() and not (gw.data_dir / "portcullis.db").exists()
    assert not list(gw.data_dir.glob("portcullis.db*")), "nothing of the store left at the old place"
    assert "moved the store from its old place" in gw.logs()
    listed = json.loads(gw.cli("users", "list", "--json").stdout)
    assert "olduser" in {u["name"] for u in listed}, listed
    records = gw.audit_records()
    moves = [r for r in records if r["action"] == "store.move"]
    assert len(moves) == 2 and all(m["target"].endswith("store/portcullis.db") for m in moves), moves
    assert {m["details"]["from"] for m in moves} == {str(gw.data_dir / "portcullis.db")}
    assert moves[0]["actor"].startswith("cli:") and moves[1]["actor"] == "system", moves
    assert gw.stop() == 0

    # A database at both places: refused at start, naming both, nothing moved.
    shutil.copyfile(store_dir / "portcullis.db", gw.data_dir / "portcullis.db")
    gw.start(role="mail", wait=False)
    assert gw.proc.wait(timeout=30) != 0
    assert "will not choose" in gw.logs() and str(gw.data_dir / "portcullis.db") in gw.logs()
    assert (store_dir / "portcullis.db").is_file() and (gw.data_dir / "portcullis.db").is_file()


# -- the admin's queue and digests through the socket -------------------------------------------------

def socket_group() -> grp.struct_group | None:
    """A group other than ours to give the socket: only root may give any group."""
    if os.geteuid() != 0:
        return None
    return next((g for g in grp.getgrall() if g.gr_gid != os.getegid() and g.gr_name == "mail"), None)


@pytest.fixture
def split_admin(gateway_factory, sink):
    """Split roles with digests linking to the portal, deferrals retried only when asked (an hour
    apart), and, as root, the socket given the group `mail` by name."""
    port = free_port()
    settings = {"portal": {"listen": f"127.0.0.1:{port}"},
                "digest": {"enabled": True, "portal_url": f"http://127.0.0.1:{port}", "token_lifetime": "1h"},
                "relay": {"retry_min": "1h", "retry_max": "2h"}}
    group = socket_group()
    if group:
        settings["control"] = {"socket_group": group.gr_name}
    with split_roles(gateway_factory, sink, settings, portal_port=port) as (portal, proc):
        portal.group = group
        yield portal, proc


def queue_page_ids(admin: Client) -> list[str]:
    page = admin.get("/admin/queue")
    assert page.status == 200, page.text[:500]
    return re.findall(r'name="id" value="([^"]+)"', page.text)


def deferred(portal: Portal, rcpt: str, subject: str) -> str:
    """Send a clean message the sink defers; its queue id once the console lists it."""
    portal.sink.rcpt_replies[rcpt] = "451 4.3.0 try again later"
    mid = f"<{subject.replace(' ', '.')}@ext.test>"
    raw = f"From: a@ext.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n\r\nhello\r\n"
    reply = portal.gw.send("a@ext.test", [rcpt], raw)
    qid = re.search(r"queued as (\S+)", reply).group(1)

    def tried():
        listed = Client(portal.port).get("/api/v1/queue", token=portal.tokens["admin"]).json()
        return any(m["id"] == qid and m["attempts"] >= 1 for m in listed)
    wait_until(tried, timeout=30, what=f"{qid} deferred")
    page = portal.logged_in("admin").get("/admin/queue")
    assert qid in page.text and rcpt in page.text, page.text[:1000]
    return qid


def records(portal: Portal, action: str) -> list[dict]:
    return [r for r in portal.gw.audit_records() if r["action"] == action]


def test_the_admin_console_runs_the_queue_and_digests_through_the_mail_plane(split_admin):
    portal, proc = split_admin
    gw, sink, c, t = portal.gw, portal.sink, Client(portal.port), portal.tokens
    run = gw.data_dir / "run"
    if portal.group:
        # Given the group at bind (by name, looked up before the sandbox), the socket and its directory.
        assert (run / "control.sock").stat().st_gid == portal.group.gr_gid
        assert run.stat().st_gid == portal.group.gr_gid
    admin = portal.logged_in("admin")

    # The queue page lists a deferred message (the mail plane's spool, over the socket); so does the API.
    later = deferred(portal, "later@our.test", "queued later")
    listed = c.get("/api/v1/queue", token=t["admin"])
    assert listed.status == 200 and [m["id"] for m in listed.json()] == [later], listed.text
    assert listed.json()[0]["pending_recipients"] == "later@our.test" and listed.json()[0]["attempts"] >= 1
    # Only admins: the portal refuses the others, and the mail plane would too (see the socket test).
    for name in ("alice", "helen"):
        assert portal.logged_in(name).get("/admin/queue").status == 403, name
        assert c.get("/api/v1/queue", token=t[name]).status == 403, name
        assert c.post("/api/v1/queue/retry", token=t[name]).status == 403, name
        assert c.post(f"/api/v1/queue/{later}/delete", token=t[name]).status == 403, name
        assert c.post("/api/v1/digests/send", token=t[name]).status == 403, name

    # Retry now: the next hop is back, and the message goes at once rather than in an hour.
    del sink.rcpt_replies["later@our.test"]
    r = admin.post("/admin/queue/retry", form={"csrf": admin.csrf("/admin/queue")})
    assert r.status == 303, r.text[:300]
    assert len(sink.wait_for_message("<queued.later@ext.test>")) == 1
    wait_until(lambda: later not in queue_page_ids(admin), what="the delivered message off the queue page")

    # Delete one: gone from the spool; again, or an id that is none, is 404.
    never = deferred(portal, "never@our.test", "never delivered")
    r = admin.post("/admin/queue/delete", form={"csrf": admin.csrf("/admin/queue"), "id": never})
    assert r.status == 303, r.text[:300]
    assert never not in gw.queue_ids("active") and never not in queue_page_ids(admin)
    assert c.post(f"/api/v1/queue/{never}/delete", token=t["admin"]).status == 404
    r = admin.post("/admin/queue/delete", form={"csrf": admin.csrf("/admin/queue"), "id": "../../etc/passwd"})
    assert r.status == 404

    # Digests now, from the console: alice's digest arrives with links to this portal.
    item = held(portal, "digest me")
    r = admin.post("/admin/digests", form={"csrf": admin.csrf("/admin")})
    assert r.status == 303 and r.header("location") == "/admin?digests=sent", (r.status, r.text[:300])

    def digest_links():
        for _, rcpts, data in sink.received():
            if "alice@our.test" in rcpts and b"Quarantine digest" in data:
                return re.findall(rf"http://127\.0\.0\.1:{portal.port}/digest/[A-Za-z0-9_\-]+", mail_text(data))
        return None
    links = list(dict.fromkeys(wait_until(digest_links, timeout=30, what="alice's digest")))
    again = c.post("/api/v1/digests/send", token=t["admin"])
    assert again.status == 200 and again.json() == {"sent": 0, "items": 0}, again.text

    # Its release link: the page names the message (as in one process); the release goes through the socket.
    release = links[0].rsplit("/", 1)[1]
    confirm = c.get(f"/digest/{release}")
    assert confirm.status == 200 and "digest me" in confirm.text and 'id="do"' in confirm.text, confirm.text[:500]
    assert c.post(f"/digest/{release}").status == 200
    assert len(sink.wait_for_message(item["mid"])) == 1
    assert c.get(f"/digest/{release}").status == 410

    # The mail plane wrote each record, as the admin who asked.
    for action, target in (("queue.flush", ""), ("queue.delete", never), ("quarantine.digests_send", "")):
        first = records(portal, action)[0]
        assert (first["actor"], first["details"]["actor_name"], first["target"]) == ("user:admin", "admin", target), \
            first
    assert records(portal, "quarantine.digests_send")[0]["details"]["sent"] == "1"

    # The mail plane stops: the queue pages and digests say so (503), the rest of the console still works.
    assert gw.stop() == 0
    down = admin.get("/admin/queue")
    assert down.status == 503 and "not answering" in down.text
    assert c.get("/api/v1/queue", token=t["admin"]).status == 503
    assert c.post("/api/v1/digests/send", token=t["admin"]).status == 503
    assert admin.get("/admin/users").status == 200
    assert proc.poll() is None


@pytest.mark.parametrize("control, says", [
    ({"socket_group": "no-such-group-pc"}, "no group `no-such-group-pc`"),
    ({"max_response_size": "48MiB"}, "removed: the longest answer the portal reads is derived from smtp.max_message_size"),
])
def test_a_wrong_or_removed_control_setting_stops_the_mail_plane_with_the_reason(gateway_factory, sink, control, says):
    gw = gateway_factory(merge(portal_settings(sink), {"control": control}), start=False)
    gw.start(role="mail", wait=False)
    assert gw.proc.wait(timeout=30) != 0
    assert says in gw.logs(), gw.logs()[-2000:]
    assert not (gw.data_dir / "run" / "control.sock").exists()
