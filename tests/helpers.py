"""Test harness: start the real `portcullis` binary, talk to it with real clients, receive with a real sink.

Everything runs on loopback. Every wait has a deadline, so a broken gateway fails a test instead of
hanging it.
"""

from __future__ import annotations

import email
import json
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as AioSMTP

REPO = Path(__file__).resolve().parent.parent
# The binary under test: GATEWAY_BIN (PORTCULLIS_BIN is still read, for older scripts).
BIN = os.environ.get("GATEWAY_BIN") or os.environ.get("PORTCULLIS_BIN") or str(REPO / "target" / "debug" / "portcullis")


def gateway_env() -> dict:
    """The environment for a gateway under test: PORTCULLIS_* variables are settings to the binary, so none
    leak in from the shell running the tests."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def to_toml(settings: dict) -> str:
    """Top-level scalars, then `[section]` tables, then `[[section.list]]` arrays of tables."""
    lines, tables = [], []
    for k, v in settings.items():
        if isinstance(v, dict):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {toml_value(v)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        arrays = []
        for k, v in table.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                arrays.append((k, v))
            else:
                lines.append(f"{k} = {toml_value(v)}")
        for k, items in arrays:
            for item in items:
                lines.append(f"\n[[{name}.{k}]]")
                lines.extend(f"{ik} = {toml_value(iv)}" for ik, iv in item.items())
    return "\n".join(lines) + "\n"


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


class Gateway:
    """One `portcullis serve` process with its own data directory and ports."""

    def __init__(self, workdir: Path, settings: dict | None = None, name: str = "gw"):
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.dir / "data"
        self.port = free_port()
        # The management plane (serve --role all runs it beside SMTP) on a port of its own.
        self.portal_port = free_port()
        base = {
            "data_dir": str(self.data_dir),
            "hostname": "mx.our.test",
            "smtp": {"listen": [f"127.0.0.1:{self.port}"], "accepted_domains": ["our.test"]},
            "portal": {"listen": f"127.0.0.1:{self.portal_port}"},
            "relay": {"retry_min": "200ms", "retry_max": "1s"},
            "log": {"level": "info"},
        }
        self.settings = merge(base, settings or {})
        self.config = self.dir / "portcullis.toml"
        self.config.write_text(to_toml(self.settings))
        self.log_path = self.dir / "gateway.log"
        self.proc: subprocess.Popen | None = None

    # -- process control --------------------------------------------------------------------------
    def start(self, wait: bool = True, role: str | None = None) -> "Gateway":
        """`serve` (`--role ROLE` when given; waiting for SMTP suits `all` and `mail`)."""
        log = open(self.log_path, "ab")
        roles = ["--role", role] if role else []
        self.proc = subprocess.Popen(
            [BIN, "--config", str(self.config), "serve", *roles], stdout=log, stderr=log,
            stdin=subprocess.DEVNULL, env=gateway_env(),
        )
        log.close()
        if wait:
            wait_until(self._accepting, timeout=30, what=f"gateway on port {self.port}\n{self.logs()}")
        return self

    def _accepting(self) -> bool:
        if self.proc and self.proc.poll() is not None:
            raise AssertionError(f"gateway exited with {self.proc.returncode}:\n{self.logs()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.settimeout(5)
                return s.recv(512).startswith(b"220")
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"gateway did not stop within {timeout}s:\n{self.logs()}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def signal(self, sig) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [BIN, "--config", str(self.config), *args], input=input, capture_output=True, timeout=timeout,
            env=gateway_env(),
        )

    # -- clients ------------------------------------------------------------------------------------
    def smtp(self, timeout: float = 30, source_ip: str | None = None) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=timeout,
                            source_address=(source_ip, 0) if source_ip else None)

    def raw(self, timeout: float = 10, source_ip: str | None = None) -> "RawClient":
        return RawClient("127.0.0.1", self.port, timeout=timeout, source_ip=source_ip)

    def send(self, sender: str, recipients: list[str], body: bytes | str, **kw) -> str:
        """Send one message with smtplib; return the final reply text (contains the queue id)."""
        with self.smtp() as s:
            s.ehlo("client.test")
            code, _ = s.mail(sender, kw.get("mail_options", []))
            assert code == 250, code
            for r in recipients:
                code, msg = s.rcpt(r)
                assert code == 250, (r, code, msg)
            code, msg = s.data(body)
            assert code == 250, (code, msg)
            return msg.decode()

    # -- what arrived -------------------------------------------------------------------------------
    def maildir(self, address: str) -> list[bytes]:
        new = self.data_dir / "mailboxes" / address / "new"
        if not new.is_dir():
            return []
        return [p.read_bytes() for p in sorted(new.iterdir())]

    def audit_lines(self) -> list[str]:
        """The audit log's complete lines. Another process may be mid-append (a record is one write, but a
        reader can see part of it), so a last line without its newline is not read yet."""
        text = (self.data_dir / "audit" / "audit.log").read_text()
        return text[: text.rfind("\n") + 1].splitlines()

    def audit_records(self) -> list[dict]:
        return [json.loads(line) for line in self.audit_lines() if line.strip()]

    def queue_ids(self, queue: str = "active") -> list[str]:
        d = self.data_dir / "spool" / queue
        return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


class RawClient:
    """A plain socket speaking SMTP byte for byte, for what smtplib will not send."""

    def __init__(self, host: str, port: int, timeout: float = 10, source_ip: str | None = None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source_ip, 0) if source_ip else None)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_reply(self) -> tuple[int, str]:
        """One complete (possibly multi-line) reply: (code, all lines)."""
        lines = []
        while True:
            line = self._read_line()
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), b"\n".join(lines).decode(errors="replace")

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed; unread: {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def command(self, line: bytes | str) -> tuple[int, str]:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.read_reply()

    def is_closed(self, timeout: float = 5) -> bool:
        """True once the server has closed the connection (after any replies still buffered)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def starttls(self) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname="mx.our.test")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _SinkHandler:
    def __init__(self, sink: "Sink"):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.sink.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.sink.data_reply:
            return self.sink.data_reply
        with self.sink.lock:
            self.sink.messages.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 OK delivered"


class _SinkSMTP(AioSMTP):
    """aiosmtpd that can refuse at connect time, like a next hop in trouble."""

    def __init__(self, *args, sink: "Sink", **kw):
        super().__init__(*args, **kw)
        self._sink = sink

    def connection_made(self, transport):
        if self._sink.greeting_reply:
            transport.write(self._sink.greeting_reply.encode() + b"\r\n")
            transport.close()
            return
        super().connection_made(transport)


class Sink:
    """The next hop: a real SMTP server (aiosmtpd) on loopback that records what it receives."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.lock = threading.Lock()
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply: str | None = None
        self.greeting_reply: str | None = None
        self.controller: Controller | None = None

    def start(self) -> "Sink":
        sink = self

        class _Controller(Controller):
            def factory(self):
                return _SinkSMTP(self.handler, sink=sink, decode_data=False, data_size_limit=None,
                                 enable_SMTPUTF8=True, hostname="sink.test")

        self.controller = _Controller(_SinkHandler(self), hostname="127.0.0.1", port=self.port)
        # aiosmtpd's start() checks the server by connecting; a refusing sink fails that check.
        refusing, self.greeting_reply = self.greeting_reply, None
        self.controller.start()
        self.greeting_reply = refusing
        return self

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    @property
    def next_hop(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def received(self) -> list[tuple[str, list[str], bytes]]:
        with self.lock:
            return list(self.messages)

    def wait_for_message(self, message_id: str, timeout: float = 30) -> list[tuple[str, list[str], bytes]]:
        """Every delivery of the message with this Message-ID, once at least one has arrived."""
        def found():
            return [m for m in self.received() if (message_id.encode() in m[2])]
        wait_until(found, timeout=timeout, what=f"message {message_id} at the sink")
        time.sleep(0.3)  # a duplicate would follow quickly
        return found()

    def wait_for(self, count: int, timeout: float = 30) -> list[tuple[str, list[str], bytes]]:
        wait_until(lambda: len(self.received()) >= count, timeout=timeout,
                   what=f"{count} messages at the sink (have {len(self.received())})")
        return self.received()


# Header fields the gateway itself adds above a message: its Received: and the verdict's fields.
ADDED_FIELDS = (b"received:", b"x-spam-", b"x-portcullis-", b"authentication-results:")


def strip_received(message: bytes) -> bytes:
    """The message as the client sent it: without the header fields the gateway added on top (its
    `Received:` first, then verdict and authentication fields), continuation lines included."""
    lines = message.split(b"\r\n")
    assert lines[0].startswith(b"Received: "), lines[0]
    i = 0
    while i < len(lines) and (lines[i].lower().startswith(ADDED_FIELDS) or (i > 0 and lines[i][:1] in (b" ", b"\t"))):
        if i > 0 and lines[i].lower().startswith(b"received:"):
            break  # a second Received: is the client's own
        i += 1
    return b"\r\n".join(lines[i:])


def message_id(message: bytes) -> str | None:
    return email.message_from_bytes(message).get("Message-ID")
