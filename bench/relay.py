#!/usr/bin/env python3
"""Relay throughput, side by side: smtp-source -> {Portcullis, Postfix} -> smtp-sink, same messages, sizes and
concurrency, durability on for both. Relay-only rows compare Portcullis with its verdict engine off against plain
Postfix; verdict-on rows compare Portcullis with its verdict engine on (offline checks: DNS-based ones off)
against Postfix with rspamd as its milter (bench/rspamd_private.py: a private instance, network modules off, one
milter process per core). With `--corpus DIR` (the SpamAssassin corpus, as bench/classifier.sh uses it), both
classifiers learn the classifier benchmark's training mail (spam-1, easy-ham-1, the older half of hard-ham-1)
before each verdict-on row, outside the timed load: Portcullis with `portcullis learn`, rspamd's Bayes through
its controller (`rspamc learn_spam`/`learn_ham`), so each side's classifier does its real work on every
message; without it both stay untrained (Portcullis's classifier then says nothing, rspamd's Bayes skips).
Prints delivered messages per second and the ratio Portcullis/peer, then Portcullis's resident memory with
500 concurrent sessions.

Run through bench/relay.sh (it installs Postfix's tools and builds Portcullis in release mode).
Every wait is bounded; a stuck run is reported, not waited on forever.
"""

from __future__ import annotations

import argparse
import atexit
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from classifier_bench import split_corpus
from rspamd_private import PrivateRspamd
from smtp_source import run_load

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


class Sink:
    """Postfix's smtp-sink, counting messages from its -c output."""

    def __init__(self, port: int):
        self.port = port
        self.count = 0
        self.proc = subprocess.Popen(["smtp-sink", "-u", "postfix", "-c", f"127.0.0.1:{port}", "1024"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        threading.Thread(target=self._read, daemon=True).start()
        wait_port(port)

    def _read(self) -> None:
        buf = b""
        while chunk := self.proc.stdout.read1(65536):
            buf = (buf + chunk)[-200:]
            m = re.findall(rb"mesg=(\d+)", buf)
            if m:
                self.count = int(m[-1])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def postfix_start(work: Path, port: int, sink_port: int, milter: int | None = None) -> Path:
    """A private Postfix on `port` relaying to the sink; with `milter`, every message goes through the milter
    listening on that port first (a milter failure defers the message, so failures show as undelivered)."""
    conf = work / "postfix"
    conf.mkdir()
    milter_conf = (f"smtpd_milters = inet:127.0.0.1:{milter}\nmilter_default_action = tempfail\n"
                   "milter_protocol = 6\n") if milter else ""
    (conf / "main.cf").write_text(milter_conf + f"""
compatibility_level = 3.6
queue_directory = {work}/pfqueue
data_directory = {work}/pfdata
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.bench.test
mydestination =
alias_maps =
local_recipient_maps =
relay_domains = bench.test
relayhost = [127.0.0.1]:{sink_port}
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtp_tls_security_level = none
smtpd_tls_security_level = none
default_process_limit = 400
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
default_destination_concurrency_limit = 20
maillog_file_prefixes = /tmp, /var
maillog_file = {work}/postfix.log
""")
    master = (Path("/etc/postfix/master.cf")).read_text().splitlines()
    lines = [l for l in master if not re.match(r"^smtp\s+inet\s", l) and not l.startswith("postlog")]
    lines.append(f"127.0.0.1:{port} inet n - n - - smtpd")
    lines.append("postlog   unix-dgram n  -       n       -       1       postlogd")
    (conf / "master.cf").write_text("\n".join(lines) + "\n")
    for d in ("pfqueue", "pfdata"):
        (work / d).mkdir()
    subprocess.run(["chown", "postfix", str(work / "pfdata")], check=True)
    r = subprocess.run(["postfix", "-c", str(conf), "start"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"postfix did not start: {r.stderr}")
    wait_port(port)
    return conf


def postfix_stop(conf: Path) -> None:
    subprocess.run(["postfix", "-c", str(conf), "stop"], capture_output=True)
    time.sleep(1)


def load_config(data_dir: str, name: str, port: int, sink_port: int, extra: str = "") -> str:
    """A gateway's configuration for the load benchmarks (here and bench/cluster.py): SMTP on `port` for
    bench.test with connection limits above the load, relaying to `sink_port`, offline checks only, quiet
    logs; `extra` adds tables."""
    return f"""
data_dir = "{data_dir}"
hostname = "{name}.bench.test"
[smtp]
listen = ["127.0.0.1:{port}"]
accepted_domains = ["bench.test"]
max_connections = 2000
max_connections_per_ip = 1000
starttls = false
[relay]
next_hop = "smtp://127.0.0.1:{sink_port}"
tls = "none"
max_concurrency = 200
max_concurrency_per_destination = 20
[auth]
# Offline checks only: this machine has no reachable DNS, and each lookup would wait for its timeout.
enabled = false
[log]
level = "warn"
{extra}"""


def portcullis_start(work: Path, binary: str, port: int, sink_port: int, verdict: bool,
                     train: dict[str, str] | None = None) -> subprocess.Popen:
    """`serve` on `port`, relaying to `sink_port`; with `train` ({"spam": DIR, "ham": DIR}) its classifier first
    learns those messages."""
    cfg = work / "portcullis.toml"
    cfg.write_text(load_config(f"{work}/portcullis-data", "portcullis", port, sink_port,
                               f"[verdict]\nenabled = {'true' if verdict else 'false'}\n"))
    for cls, d in (train or {}).items():
        subprocess.run([binary, "--config", str(cfg), "learn", f"--{cls}", d], check=True, stdout=subprocess.DEVNULL,
                       timeout=1800)
    proc = subprocess.Popen([binary, "--config", str(cfg), "serve"], stdout=subprocess.DEVNULL,
                            stderr=open(work / "portcullis.log", "ab"))
    wait_port(port)
    return proc


def rss_with_sessions(binary: str, work: Path, train: dict[str, str] | None, n: int = 500) -> tuple[int, int]:
    sink = Sink(free_port())
    port = free_port()
    proc = portcullis_start(work, binary, port, sink.port, verdict=True, train=train)
    socks = []
    try:
        idle = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{proc.pid}/status").read_text()).group(1))
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.recv(512)
            s.sendall(b"EHLO bench.test\r\nMAIL FROM:<a@source.test>\r\nRCPT TO:<b@bench.test>\r\n")
            socks.append(s)
        for s in socks:
            s.recv(4096)
        time.sleep(1)
        busy = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{proc.pid}/status").read_text()).group(1))
        return idle, busy
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(timeout=60)
        sink.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(REPO / "target" / "release" / "portcullis"))
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--sizes", default="5,50", help="message sizes in KB")
    ap.add_argument("--sessions", default="1,20,200")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--only", choices=["relay", "verdict"], help="run only the relay-only or verdict-on rows")
    ap.add_argument("--corpus", help="the SpamAssassin corpus (corpus.sh): both classifiers learn its training "
                                     "split before each verdict-on row; without it both stay untrained")
    args = ap.parse_args()

    train = None
    if args.corpus:
        split_dir = tempfile.mkdtemp(prefix="pcbench-train-")
        atexit.register(shutil.rmtree, split_dir, True)
        os.chmod(split_dir, 0o755)
        split, sets = split_corpus(args.corpus, split_dir)
        train = {cls: os.path.join(split, "train", cls) for cls in ("spam", "ham")}
        print(f"verdict-on rows: both classifiers learn {len(sets[('train', 'spam')])} spam and "
              f"{len(sets[('train', 'ham')])} ham first", flush=True)
    else:
        print("verdict-on rows: both classifiers untrained", flush=True)

    rows = []
    modes = {"relay": (False,), "verdict": (True,)}.get(args.only, (False, True))
    for verdict in modes:
        for size_kb in [int(s) for s in args.sizes.split(",")]:
            for sessions in [int(s) for s in args.sessions.split(",")]:
                count = args.count if sessions > 1 else max(500, args.count // 10)
                result = {}
                for name in ("portcullis", "postfix"):
                    work = Path(tempfile.mkdtemp(prefix=f"pcbench-{name}-"))
                    os.chmod(work, 0o755)
                    sink = Sink(free_port())
                    port = free_port()
                    try:
                        if name == "portcullis":
                            proc = portcullis_start(work, args.binary, port, sink.port, verdict,
                                                    train if verdict else None)
                            try:
                                result[name] = run_load([port], sink, count, sessions, size_kb * 1024, args.timeout)
                            finally:
                                proc.terminate()
                                proc.wait(timeout=60)
                        elif verdict:
                            # The peer with a verdict engine: Postfix with rspamd as its milter, one
                            # rspamd milter process per core, the same offline checks.
                            with PrivateRspamd(str(work / "rspamd"), workers=os.cpu_count() or 1, milter=True) as r:
                                for cls, d in (train or {}).items():
                                    r.learn(cls, d)
                                conf = postfix_start(work, port, sink.port, milter=r.ports["proxy"])
                                try:
                                    result[name] = run_load([port], sink, count, sessions, size_kb * 1024,
                                                            args.timeout)
                                    if r.scanned() < count:
                                        raise RuntimeError(f"rspamd scanned {r.scanned()} of {count} messages")
                                finally:
                                    postfix_stop(conf)
                        else:
                            conf = postfix_start(work, port, sink.port)
                            try:
                                result[name] = run_load([port], sink, count, sessions, size_kb * 1024, args.timeout)
                            finally:
                                postfix_stop(conf)
                    finally:
                        sink.stop()
                        shutil.rmtree(work, ignore_errors=True)
                rows.append({"verdict": verdict, "size": size_kb, "sessions": sessions, "count": count, **result})
                print(f"  {'verdict on ' if verdict else 'verdict off'} {size_kb:>3} KB {sessions:>4} sessions: "
                      f"portcullis {result['portcullis']:.0f}/s"
                      + (f", postfix {result['postfix']:.0f}/s" if result.get("postfix") else ""), flush=True)

    print("\n| engine | size | sessions | messages | Portcullis msg/s | peer | peer msg/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        pf = r.get("postfix")
        ratio = f"{r['portcullis'] / pf:.2f}x" if pf else "-"
        pf_text = f"{pf:.0f}" if pf else "-"
        peer = "Postfix + rspamd milter" if r["verdict"] else "Postfix"
        print(f"| {'verdict on' if r['verdict'] else 'relay only'} | {r['size']} KB | {r['sessions']} | {r['count']} "
              f"| {r['portcullis']:.0f} | {peer} | {pf_text} | {ratio} |")

    work = Path(tempfile.mkdtemp(prefix="pcbench-mem-"))
    try:
        idle, busy = rss_with_sessions(args.binary, work, train)
        print(f"\nPortcullis resident memory{' (classifier trained)' if train else ''}: {idle / 1024:.1f} MiB idle, "
              f"{busy / 1024:.1f} MiB with 500 sessions open")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
