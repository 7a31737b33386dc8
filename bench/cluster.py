#!/usr/bin/env python3
"""Several nodes, side by side in one run (bench/cluster.sh):

1. Messages per second, Postfix's smtp-source -> Portcullis -> smtp-sink, with the verdict engine on
   (offline checks, the classifier, tracking; a throttled sender group covering every client, so each
   message also counts a rate limit): one node on SQLite; one node on PostgreSQL + Redis; two nodes
   sharing them, each fed half of the messages and sessions by its own smtp-source.
2. Quarantine search latency at N quarantined items (default 1,000,000) on SQLite and on PostgreSQL:
   the store filled through its own insert method, then p50/p99 of the searches the portal issues
   (crates/store/examples/quarantine_scale.rs).

Every wait is bounded. PostgreSQL schemas and Redis keys are fresh per run and dropped after.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from relay import Sink, free_port, load_config, wait_port
from smtp_source import run_load

POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379"


def node_config(work: Path, name: str, port: int, sink_port: int, shared: dict | None) -> Path:
    store = ""
    cache = ""
    if shared:
        store = f'[store]\nbackend = "postgres"\nurl = "{POSTGRES_URL}"\nschema = "{shared["schema"]}"\n'
        cache = f'[cache]\nredis_url = "{REDIS_URL}"\nkey_prefix = "{shared["prefix"]}"\n'
    cfg = work / f"{name}.toml"
    cfg.write_text(load_config(f"{work}/{name}-data", name, port, sink_port, f"""
[[reputation.sender_group]]
name = "everyone"
ips = ["127.0.0.0/8"]
policy = "throttle"
max_messages = 100000000
window = "1h"
[portal]
listen = "127.0.0.1:{free_port()}"
[cluster]
node_name = "{name}"
{store}{cache}"""))
    return cfg


def start(binary: str, cfg: Path, port: int, work: Path) -> subprocess.Popen:
    proc = subprocess.Popen([binary, "--config", str(cfg), "serve"], stdout=subprocess.DEVNULL,
                            stderr=open(work / f"{cfg.stem}.log", "ab"))
    wait_port(port, timeout=60)
    return proc


def drop_schema(schema: str) -> None:
    subprocess.run(["psql", POSTGRES_URL, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"],
                   capture_output=True, timeout=300)


def drop_keys(prefix: str) -> None:
    keys = subprocess.run(["redis-cli", "--scan", "--pattern", f"{prefix}*"], capture_output=True, text=True,
                          timeout=60).stdout.split()
    for i in range(0, len(keys), 500):
        subprocess.run(["redis-cli", "DEL", *keys[i:i + 500]], capture_output=True, timeout=60)


def throughput(binary: str, count: int, sessions: int, size: int, timeout: float) -> dict[str, float]:
    rates = {}
    setups = [("one node, SQLite", 1, False), ("one node, PostgreSQL + Redis", 1, True),
              ("two nodes, PostgreSQL + Redis", 2, True)]
    for label, nodes, shared_backends in setups:
        work = Path(tempfile.mkdtemp(prefix="pcl-cluster-"))
        shared = {"schema": f"bench_{uuid.uuid4().hex[:12]}", "prefix": f"bench:{uuid.uuid4().hex}:"} \
            if shared_backends else None
        sink = Sink(free_port())
        procs = []
        try:
            ports = [free_port() for _ in range(nodes)]
            for i, port in enumerate(ports):
                cfg = node_config(work, f"node{i}", port, sink.port, shared)
                procs.append(start(binary, cfg, port, work))
            run_load(ports, sink, max(100, count // 10), sessions, size, timeout)  # warm up
            rates[label] = run_load(ports, sink, count, sessions, size, timeout)
            print(f"  {label}: {rates[label]:,.0f} messages/s", flush=True)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
            sink.stop()
            if shared:
                drop_schema(shared["schema"])
                drop_keys(shared["prefix"])
            shutil.rmtree(work, ignore_errors=True)
    return rates


def search_latency(example: str, items: int, searches: int) -> dict[str, list[str]]:
    results = {}
    for backend in ("sqlite", "postgres"):
        work = Path(tempfile.mkdtemp(prefix="pcl-search-"))
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        args = [example, "--backend", backend, "--items", str(items), "--searches", str(searches)]
        args += ["--dir", str(work)] if backend == "sqlite" else ["--url", POSTGRES_URL, "--schema", schema]
        print(f"  {backend}: filling {items:,} quarantined items, then {searches} searches per shape", flush=True)
        try:
            out = subprocess.run(args, stdout=subprocess.PIPE, text=True, timeout=4 * 3600, check=True).stdout
        finally:
            if backend == "postgres":
                drop_schema(schema)
            shutil.rmtree(work, ignore_errors=True)
        results[backend] = [line.removeprefix("RESULT ") for line in out.splitlines() if line.startswith("RESULT ")]
        for line in results[backend]:
            print(f"    {line}", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--search-example", required=True)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=5, help="message size in KB")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--searches", type=int, default=300)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--only", choices=["throughput", "search"])
    a = ap.parse_args()
    if a.only != "search":
        print(f"throughput: {a.count} messages of {a.size} KB over {a.sessions} sessions, verdict engine on",
              flush=True)
        rates = throughput(a.binary, a.count, a.sessions, a.size * 1024, a.timeout)
        base = rates["one node, SQLite"]
        for label, rate in rates.items():
            print(f"| {label} | {rate:,.0f}/s | {rate / base:.2f}x |")
        cost = 1 - rates["one node, PostgreSQL + Redis"] / base
        print(f"shared backends cost {cost:.0%} of one node's SQLite throughput (goal: under 20%)")
    if a.only != "throughput":
        print("quarantine search latency", flush=True)
        search_latency(a.search_example, a.items, a.searches)


if __name__ == "__main__":
    main()
