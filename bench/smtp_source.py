"""Postfix's smtp-source as a load driver, shared by bench/relay.py and bench/cluster.py."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Protocol


class Counter(Protocol):
    """A sink that counts the messages it has received (bench/relay.py's Sink)."""

    count: int


def run_load(ports: list[int], sink: Counter, count: int, sessions: int, size: int, timeout: float) -> float:
    """Delivered messages per second, from the first connection to the last message at the sink: `count`
    messages of `size` bytes split evenly over `ports`, each fed by its own smtp-source with an even share of
    `sessions` (at least one). Waits at most `timeout` seconds; a shortfall is reported on standard error."""
    start_count = sink.count
    t0 = time.monotonic()
    share = count // len(ports)
    sources = [subprocess.Popen(["smtp-source", "-s", str(max(1, sessions // len(ports))), "-m", str(share),
                                 "-l", str(size), "-f", "sender@source.test", "-t", "rcpt@bench.test",
                                 f"127.0.0.1:{p}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for p in ports]
    want = share * len(ports)
    deadline = t0 + timeout
    while sink.count - start_count < want and time.monotonic() < deadline:
        time.sleep(0.01)
    elapsed = time.monotonic() - t0
    for s in sources:
        s.wait(timeout=max(1, deadline - time.monotonic()))
    delivered = sink.count - start_count
    if delivered < want:
        print(f"    only {delivered}/{want} delivered within {timeout}s", file=sys.stderr)
    return delivered / elapsed
