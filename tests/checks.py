"""Assertions every attack test ends with (THREATS.md): still serving, nothing run, nothing written."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from helpers import Gateway, Sink, strip_received


def child_processes(gw: Gateway) -> list[str]:
    """Children of the gateway process, from /proc (all threads)."""
    assert gw.proc is not None
    kids = []
    for task in Path(f"/proc/{gw.proc.pid}/task").iterdir():
        try:
            kids += (task / "children").read_text().split()
        except FileNotFoundError:
            pass
    return kids


def assert_still_serving(gw: Gateway, sink: Sink | None = None) -> None:
    """A normal message right after gets 250 and is delivered exactly once; no child process appeared."""
    marker = f"<{uuid.uuid4()}@client.test>"
    body = f"From: a@ext.test\r\nTo: b@our.test\r\nMessage-ID: {marker}\r\nSubject: check\r\n\r\nstill here\r\n"
    reply = gw.send("a@ext.test", ["b@our.test"], body)
    assert "queued as" in reply, reply
    if sink is not None:
        got = [m for m in sink.wait_for_message(marker)]
        assert len(got) == 1, f"delivered {len(got)} times"
        assert strip_received(got[0][2]) == body.encode()
    assert child_processes(gw) == [], "the gateway started a process"


def marker_path(tmp_path: Path) -> Path:
    """A file an injected command would create; it must never exist."""
    return tmp_path / f"pwned-{uuid.uuid4().hex}"


def assert_not_created(path: Path) -> None:
    assert not os.path.exists(path), f"{path} was created: a command ran"
