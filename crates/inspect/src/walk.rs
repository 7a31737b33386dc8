//! The inspection of one attachment: an explicit stack of files (the attachment, then archive
//! members), each typed, named and looked into under one shared budget.

use crate::filetype::{self, Class, FileType};
use crate::inflate::{self, Inflater, Step};
use crate::report::{FileEntry, Kind, Report};
use crate::{Input, LEAF_WINDOW, Limits, RATIO_FLOOR, archive, html, name, office, pdf};
use std::borrow::Cow;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

/// One file to look at.
pub(crate) struct Item<'a> {
    /// Sanitised display path (`outer.zip > inner.exe`).
    pub file: String,
    /// The name as given (a member's path inside its archive), data only.
    pub name: Option<String>,
    pub data: Cow<'a, [u8]>,
    pub extent: Extent,
    pub depth: usize,
}

/// How much of a file an [`Item`]'s data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extent {
    Whole,
    /// Only the first [`LEAF_WINDOW`] bytes of a larger leaf member, whose type was told when it
    /// was cut: from those bytes for a zip member ([`filetype::detect_start`], see
    /// [`Walk::cut_leaf`]), from all of it for a tar member ([`Walk::stored_member`]).
    Start(Option<FileType>),
    /// The whole file, whose type was already told from all of it ([`Walk::stored_member`]), so it
    /// is not typed twice.
    Typed(Option<FileType>),
}

/// The walk's state: what is left of the budget, and what was found.
pub(crate) struct Walk<'l, 'a> {
    pub limits: &'l Limits,
    started: Instant,
    pub entries: usize,
    total: u64,
    pub stopped: bool,
    pub stack: Vec<Item<'a>>,
    pub report: Report,
}

/// Inspect one attachment. Never fails and never panics: what could not be read is an issue.
pub fn inspect(input: &Input<'_>, limits: &Limits) -> Report {
    let file = input.name.map_or_else(|| "(unnamed attachment)".to_string(), name::display);
    let mut w = Walk::new(limits);
    if input.truncated {
        w.report.add(Kind::Unscannable, &file, "cut at a message size limit: the rest was never read");
    }
    w.stack.push(Item {
        file,
        name: input.name.map(str::to_string),
        data: Cow::Borrowed(input.data),
        extent: Extent::Whole,
        depth: 0,
    });
    while let Some(item) = w.stack.pop() {
        if w.stopped || w.out_of_time(&item.file) {
            break;
        }
        let file = item.file.clone();
        if catch_unwind(AssertUnwindSafe(|| w.item(item))).is_err() {
            w.report.add(Kind::Unscannable, &file, "a parser failed on this file");
            w.stopped = true;
        }
    }
    w.report
}

/// Run a third-party parser so that a panic on hostile input is an error, not a dead worker.
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err("the parser failed on this file".into()))
}

impl<'l, 'a> Walk<'l, 'a> {
    /// A walk with its whole budget ahead of it, its clock started now.
    fn new(limits: &'l Limits) -> Walk<'l, 'a> {
        Walk {
            limits,
            started: Instant::now(),
            entries: 0,
            total: 0,
            stopped: false,
            stack: Vec::new(),
            report: Report::default(),
        }
    }

    fn item(&mut self, it: Item<'a>) {
        if let Some(n) = &it.name {
            self.check_name(n, &it.file);
        }
        let extension = it.name.as_deref().and_then(name::final_extension);
        let mut detected = match it.extent {
            Extent::Whole => filetype::detect(&it.data),
            Extent::Start(t) | Extent::Typed(t) => t,
        };
        if detected == Some(FileType::Ole) && office::check_ole(&it.data, &it.file, &mut self.report).msi {
            detected = Some(FileType::Msi);
        }
        self.classify(&it.file, detected, extension.as_deref());
        self.report.files.push(FileEntry {
            file: it.file.clone(),
            extension: extension.clone(),
            detected,
            depth: it.depth,
        });
        let html_named = is_html_named(extension.as_deref());
        match detected {
            Some(t @ (FileType::Zip | FileType::Ooxml | FileType::Jar)) => archive::zip(self, &it, t),
            Some(FileType::Tar) => archive::tar(self, &it),
            Some(FileType::Gzip) => archive::gzip(self, &it),
            Some(
                t @ (FileType::SevenZip | FileType::Rar | FileType::Cab | FileType::Bzip2 | FileType::Xz),
            ) => archive::uninspectable(self, &it, t),
            Some(FileType::Pdf) => self.pdf(&it),
            Some(FileType::Rtf) => self.rtf(&it),
            Some(FileType::Html | FileType::Hta) => self.html(&it),
            _ if html_named => self.html(&it),
            _ => {}
        }
    }

    /// Whether [`Walk::item`] reads a file of this type (or with this extension) past its first
    /// [`LEAF_WINDOW`] bytes: archives are opened, documents and pages parsed whole, a 7z's trailing
    /// header read. Everything else is a leaf, typed from its first bytes only.
    pub fn reads_whole(detected: Option<FileType>, extension: Option<&str>) -> bool {
        use FileType::*;
        is_html_named(extension)
            || matches!(
                detected,
                Some(Zip | Ooxml | Jar | Tar | Gzip | SevenZip | Pdf | Rtf | Html | Hta | Ole)
            )
    }

    fn check_name(&mut self, n: &str, file: &str) {
        let f = name::facts(n, self.limits.max_name_chars);
        if f.bidi {
            self.report.add(
                Kind::BidiName,
                file,
                "bidirectional control characters reorder how the name reads",
            );
        }
        if !f.deceptive.is_empty() {
            self.report.add(Kind::DeceptiveName, file, f.deceptive.join(", "));
        }
        if let Some((inner, outer)) = f.double_extension {
            self.report.add(Kind::DoubleExtension, file, format!(".{inner} before .{outer}"));
        }
    }

    /// Executable, script and disk image by bytes or by name, and names that lie about the bytes.
    fn classify(&mut self, file: &str, detected: Option<FileType>, ext: Option<&str>) {
        let by_bytes = detected.map(FileType::class);
        let by_name = ext.and_then(filetype::class_of_extension);
        for (class, kind) in [
            (Class::Executable, Kind::Executable),
            (Class::Script, Kind::Script),
            (Class::DiskImage, Kind::DiskImage),
        ] {
            if by_bytes == Some(class) {
                let t = detected.map_or("", FileType::name);
                self.report.add(kind, file, format!("the content is {}", describe(t)));
            } else if by_name == Some(class) {
                self.report.add(kind, file, format!("named .{}", ext.unwrap_or("")));
            }
        }
        let (Some(t), Some(e)) = (detected, ext) else { return };
        let lenient = matches!(t, FileType::Ooxml | FileType::Jar) && e == "zip";
        if filetype::is_known_extension(e) && !t.extensions().contains(&e) && !lenient {
            self.report.add(
                Kind::TypeMismatch,
                file,
                format!("named .{e} but the content is {}", describe(t.name())),
            );
        }
    }

    fn pdf(&mut self, it: &Item<'_>) {
        let f = pdf::scan(&it.data);
        let how = if f.obfuscated { " (name written with #xx escapes)" } else { "" };
        if f.javascript {
            self.report.add(Kind::PdfJavascript, &it.file, format!("/JavaScript action{how}"));
        }
        if f.launch {
            self.report.add(Kind::PdfLaunch, &it.file, format!("/Launch action runs a program{how}"));
        }
        if f.auto_action {
            self.report.add(Kind::PdfAutoAction, &it.file, format!("/OpenAction or /AA runs on open{how}"));
        }
        if f.embedded_file {
            self.report.add(Kind::PdfEmbeddedFile, &it.file, format!("embedded file{how}"));
        }
    }

    fn rtf(&mut self, it: &Item<'_>) {
        if let Some(instr) = crate::dde::rtf_fields(&it.data) {
            self.report.add(Kind::OfficeDde, &it.file, format!("DDE field runs {instr}"));
        }
    }

    fn html(&mut self, it: &Item<'_>) {
        let f = html::scan(&it.data);
        if let Some(why) = f.smuggling {
            self.report.add(Kind::HtmlSmuggling, &it.file, why);
        } else if f.script {
            self.report.add(Kind::HtmlScript, &it.file, "script in an HTML attachment");
        }
    }

    /// Whether the time budget is spent (and if so, say so once and stop).
    pub fn out_of_time(&mut self, file: &str) -> bool {
        if self.started.elapsed() <= self.limits.max_time {
            return false;
        }
        let detail = format!("inspection took longer than {} ms", self.limits.max_time.as_millis());
        self.stop(Kind::ArchiveLimit, file, detail);
        true
    }

    pub fn stop(&mut self, kind: Kind, file: &str, detail: String) {
        self.report.add(kind, file, detail);
        self.stopped = true;
    }

    /// Whether a member at `depth` may be an archive that is opened (nesting limit).
    pub fn deep_enough(&mut self, it: &Item<'_>) -> bool {
        if it.depth < self.limits.max_depth {
            return false;
        }
        let detail = format!("archives nested deeper than {}", self.limits.max_depth);
        self.stop(Kind::ArchiveBomb, &it.file, detail);
        true
    }

    /// Count one member against the entry limit; false (and stopped) when it is spent.
    pub fn take_entry(&mut self, file: &str) -> bool {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            let detail = format!("more than {} archive members", self.limits.max_entries);
            self.stop(Kind::ArchiveLimit, file, detail);
            return false;
        }
        true
    }

    /// Decompress one member under the per-entry, total, ratio and time limits. `compressed` is
    /// its stored size (for the ratio), `declared` the size its header gives (only a hint for the
    /// first allocation: it is never trusted). `None` when a limit stopped it or decompression failed.
    pub fn read_member(
        &mut self,
        r: impl Read,
        compressed: u64,
        declared: u64,
        file: &str,
    ) -> Option<Vec<u8>> {
        let bounds = self.bounds(compressed);
        // Decompressed straight into the output, a chunk at a time, so the limits are checked as
        // it grows; one more byte than allowed is enough to know a limit is passed.
        let hint = declared.saturating_add(1).min(bounds.most);
        let mut out = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
        let mut r = r.take(bounds.most);
        loop {
            let before = out.len();
            match (&mut r).take(READ_CHUNK).read_to_end(&mut out) {
                Ok(_) if out.len() == before => break,
                Ok(_) => {}
                Err(e) => {
                    self.report.add(Kind::ArchiveUninspectable, file, format!("cannot decompress: {e}"));
                    return None;
                }
            }
            if self.over_limit(out.len() as u64, &bounds, compressed, file) {
                return None;
            }
        }
        self.total += out.len() as u64;
        Some(out)
    }

    /// A zip member stored with Deflate, inflated from the archive's bytes straight into its
    /// buffer (no zero fill, no copies through the zip reader's buffers), under the same limits as
    /// [`Walk::read_member`] and checked as the zip crate's reader checks it, with its words:
    /// output past the declared size, a corrupt or cut stream, a wrong CRC-32. Which of those a
    /// member hits, and which limit, does not depend on how the output is stepped: a limit can
    /// only be passed at its one-byte-over bound, where both readers stop. One check more than the
    /// zip crate's reader allows: at the stream's end, the expansion ratio from the bytes the
    /// stream really took (see [`ZipMember::compressed`]).
    ///
    /// A member larger than [`LEAF_WINDOW`] is inflated past it when its first [`LEAF_WINDOW`]
    /// bytes came from so few compressed ones that they expand past the ratio limit (bomb filler
    /// is then inflated, and judged, as before), or when `extent` (given those bytes) says it is
    /// read whole. Otherwise it is cut there and judged by its declared size ([`Walk::cut_leaf`]).
    pub fn inflate_zip_member(
        &mut self,
        member: &ZipMember<'_>,
        declared: u64,
        file: &str,
        extent: impl FnOnce(&[u8]) -> Extent,
    ) -> Option<Member> {
        let compressed = member.compressed;
        let bounds = self.bounds(compressed);
        let most = usize::try_from(bounds.most).unwrap_or(usize::MAX);
        // One byte past the window at first: with it, the member is known to be larger.
        let mut limit = most.min(LEAF_WINDOW + 1);
        let mut extent = Some(extent);
        let hint = declared.saturating_add(1).min(bounds.most);
        let mut out = Vec::with_capacity(usize::try_from(hint).unwrap_or(0).min(limit));
        let mut z = Inflater::raw(member.data);
        let mut sum = flate2::Crc::new();
        loop {
            let before = out.len();
            let step = z.step(&mut out, limit);
            sum.update(&out[before..]);
            let fault = if out.len() as u64 > declared {
                Some(LARGER_THAN_DECLARED)
            } else {
                match step {
                    Step::Corrupt => Some(CORRUPT_DEFLATE),
                    Step::Truncated => Some(TRUNCATED_DEFLATE),
                    // Past the bound the zip reader stops asking, so never sees the end or the CRC.
                    Step::End if out.len() < most && sum.sum() != member.crc => Some(BAD_CRC),
                    Step::End | Step::Full => None,
                }
            };
            if let Some(fault) = fault {
                self.report.add(Kind::ArchiveUninspectable, file, format!("cannot decompress: {fault}"));
                return None;
            }
            if self.over_limit(out.len() as u64, &bounds, compressed, file) {
                return None;
            }
            if step == Step::End {
                // The stream's real length, not the size its header declares: bytes after the
                // stream's end that the header counts (padding before the next member or the
                // central directory) must not dilute the ratio.
                let stream = z.consumed();
                if out.len() as u64 > self.ratio_cap(stream) {
                    self.stop(Kind::ArchiveBomb, file, self.bomb(out.len() as u64, stream));
                    return None;
                }
                break;
            }
            if out.len() == limit
                && limit < most
                && let Some(extent) = extent.take()
            {
                let filler = out.len() as u64 > self.limits.max_ratio.saturating_mul(z.consumed());
                if !filler && let Extent::Start(t) = extent(&out[..LEAF_WINDOW]) {
                    return self.cut_leaf(out, t, declared, &bounds, compressed, file);
                }
                limit = most;
                out.reserve_exact(usize::try_from(hint).unwrap_or(0).saturating_sub(out.len()));
            }
        }
        self.total += out.len() as u64;
        Some(Member { data: out, extent: Extent::Whole })
    }

    /// A gzip file's content (every member, concatenated, as gzip readers give it), inflated from
    /// its bytes under the same limits as [`Walk::read_member`] with the whole file as the
    /// compressed size. Each member's CRC-32 and size (ISIZE) are checked against its trailer, and
    /// the data must end where a member does. `declared` (the last ISIZE) only sizes the first
    /// allocation. `None` when a limit stopped it or the data is not valid gzip (reported).
    pub fn inflate_gzip(&mut self, data: &[u8], declared: u64, file: &str) -> Option<Vec<u8>> {
        let compressed = data.len() as u64;
        let bounds = self.bounds(compressed);
        let most = usize::try_from(bounds.most).unwrap_or(usize::MAX);
        let hint = usize::try_from(declared.saturating_add(1).min(bounds.most)).unwrap_or(0);
        let mut out = Vec::with_capacity(hint);
        let mut at = 0;
        while at == 0 || at < data.len() {
            let fault = match inflate::gzip_header(&data[at..]) {
                Ok(header) => {
                    let member = &data[at + header.len..];
                    let start = out.len();
                    let mut z = Inflater::raw(member);
                    let step = loop {
                        let step = z.step(&mut out, most);
                        if self.over_limit(out.len() as u64, &bounds, compressed, file) {
                            return None;
                        }
                        if step != Step::Full || out.len() >= most {
                            break step;
                        }
                    };
                    let end = usize::try_from(z.consumed()).unwrap_or(usize::MAX);
                    at += header.len + end + 8;
                    match step {
                        Step::Corrupt => Some(CORRUPT_DEFLATE),
                        Step::Truncated | Step::Full => Some(TRUNCATED_DEFLATE),
                        Step::End => gzip_trailer(member.get(end..end + 8), &out[start..]),
                    }
                }
                Err(e) => Some(e),
            };
            if let Some(fault) = fault {
                self.report.add(Kind::ArchiveUninspectable, file, format!("cannot decompress: {fault}"));
                return None;
            }
        }
        self.total += out.len() as u64;
        Some(out)
    }

    /// A leaf member known to be larger than [`LEAF_WINDOW`], kept as its first bytes. Its header's
    /// size stands for what it would inflate to: a member declaring more than the ratio limit allows
    /// is a bomb, and the declared size counts against the per-member and total limits, as the
    /// inflated size of a whole member does (an honest header meets every limit it met when the
    /// member was inflated whole; `declared` is at least the window here, or inflating the window
    /// would have been a fault).
    fn cut_leaf(
        &mut self,
        mut out: Vec<u8>,
        detected: Option<FileType>,
        declared: u64,
        bounds: &MemberBounds,
        compressed: u64,
        file: &str,
    ) -> Option<Member> {
        if declared > bounds.ratio_cap {
            let detail =
                format!("declares {declared} bytes from {compressed}: more than {}x", self.limits.max_ratio);
            self.stop(Kind::ArchiveBomb, file, detail);
            return None;
        }
        if self.over_limit(declared, bounds, compressed, file) {
            return None;
        }
        self.total += declared;
        out.truncate(LEAF_WINDOW);
        Some(Member { data: out, extent: Extent::Start(detected) })
    }

    /// A member stored uncompressed (a tar member's data, `body`, already in memory), held to the
    /// per-member and total limits by its whole size as [`Walk::read_member`] holds it (stored
    /// bytes cannot pass the ratio). It is typed here from all of it, as a whole file is
    /// ([`filetype::detect`], trailers included); a leaf larger than [`LEAF_WINDOW`] then keeps only
    /// its first [`LEAF_WINDOW`] bytes: nothing past them is read for a leaf ([`Walk::reads_whole`]).
    pub fn stored_member(&mut self, body: &[u8], extension: Option<&str>, file: &str) -> Option<Member> {
        let len = body.len() as u64;
        if self.over_limit(len, &self.bounds(len), len, file) {
            return None;
        }
        self.total += len;
        let detected = filetype::detect(body);
        if body.len() > LEAF_WINDOW && !Walk::reads_whole(detected, extension) {
            let data = body[..LEAF_WINDOW].to_vec();
            return Some(Member { data, extent: Extent::Start(detected) });
        }
        Some(Member { data: body.to_vec(), extent: Extent::Typed(detected) })
    }

    /// How far a member with `compressed` stored bytes may be decompressed.
    fn bounds(&self, compressed: u64) -> MemberBounds {
        let cap = self.limits.max_entry_bytes.min(self.limits.max_total_bytes.saturating_sub(self.total));
        let ratio_cap = self.ratio_cap(compressed);
        MemberBounds { cap, ratio_cap, most: cap.min(ratio_cap).saturating_add(1) }
    }

    /// Most bytes `compressed` bytes may expand to before they are a bomb.
    fn ratio_cap(&self, compressed: u64) -> u64 {
        compressed.max(1).saturating_mul(self.limits.max_ratio).max(RATIO_FLOOR)
    }

    /// Why a member that expanded past [`Walk::ratio_cap`] is a bomb.
    fn bomb(&self, len: u64, compressed: u64) -> String {
        format!("expands more than {}x (past {len} bytes from {compressed})", self.limits.max_ratio)
    }

    /// Whether a member decompressed to `len` bytes so far is stopped by a limit (the expansion
    /// ratio, then its size or the total, then the time); if so it is reported and the walk stops.
    fn over_limit(&mut self, len: u64, bounds: &MemberBounds, compressed: u64, file: &str) -> bool {
        if len > bounds.ratio_cap {
            self.stop(Kind::ArchiveBomb, file, self.bomb(len, compressed));
            return true;
        }
        if len > bounds.cap {
            let detail = if bounds.cap == self.limits.max_entry_bytes {
                format!("a member larger than {} bytes", self.limits.max_entry_bytes)
            } else {
                format!("more than {} bytes decompressed in total", self.limits.max_total_bytes)
            };
            self.stop(Kind::ArchiveLimit, file, detail);
            return true;
        }
        self.out_of_time(file)
    }
}

/// What [`Walk::inflate_zip_member`] read of a member.
pub(crate) struct Member {
    pub data: Vec<u8>,
    pub extent: Extent,
}

/// A Deflate zip member's data as the zip crate would read it (see [`Walk::inflate_zip_member`]).
pub(crate) struct ZipMember<'d> {
    /// The compressed bytes: from the data's start for the compressed size, cut at the archive's end.
    pub data: &'d [u8],
    /// The compressed size the member's header declares. It bounds the output while inflating,
    /// as for every reader of [`Walk::read_member`]; it cannot reach past the central directory
    /// (the zip crate reports that as overlapping members), but it may count padding after the
    /// stream, so at the stream's end the ratio is checked again from the bytes really consumed.
    pub compressed: u64,
    /// The CRC-32 the header declares.
    pub crc: u32,
}

/// What is wrong with a gzip member's trailer (its CRC-32 and ISIZE, little-endian) for the `data`
/// it inflated to, if anything.
fn gzip_trailer(trailer: Option<&[u8]>, data: &[u8]) -> Option<&'static str> {
    let Some(t) = trailer else { return Some("gzip trailer cut short") };
    let mut sum = flate2::Crc::new();
    sum.update(data);
    let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    let size = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
    if crc != sum.sum() {
        Some(BAD_CRC)
    } else if size != data.len() as u32 {
        Some("gzip member size does not match its trailer")
    } else {
        None
    }
}

/// How far one member may be decompressed (see [`Walk::bounds`]).
struct MemberBounds {
    /// What is left of the per-member and total byte limits.
    cap: u64,
    /// The expansion ratio limit for this member's compressed size.
    ratio_cap: u64,
    /// One byte past the lower of the two: reading stops there, and a limit is then passed.
    most: u64,
}

/// The zip crate's words for faults in a member, used by [`Walk::inflate_zip_member`] so a member
/// is reported the same whichever reader read it.
const CORRUPT_DEFLATE: &str = "corrupt deflate stream";
const TRUNCATED_DEFLATE: &str = "incomplete deflate stream";
const LARGER_THAN_DECLARED: &str = "File is larger than its declared uncompressed size";
const BAD_CRC: &str = "Invalid checksum";

/// Bytes decompressed between two checks of the limits and the clock.
const READ_CHUNK: u64 = 256 * 1024;

/// Extensions read as HTML whatever the bytes say.
fn is_html_named(extension: Option<&str>) -> bool {
    matches!(extension, Some("html" | "htm" | "shtml" | "xhtml" | "svg" | "hta"))
}

fn describe(t: &str) -> String {
    match t {
        "exe" => "a Windows program (PE/MZ)".into(),
        "elf" => "a Linux program (ELF)".into(),
        "macho" => "a macOS program (Mach-O)".into(),
        "msi" => "a Windows Installer package".into(),
        "lnk" => "a Windows shortcut (LNK)".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn walk(limits: &Limits) -> Walk<'_, 'static> {
        Walk::new(limits)
    }

    /// A one-member zip of `data`, deflated.
    fn zip_of(data: &[u8]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        w.start_file("m.bin", options).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap().into_inner()
    }

    /// What reading a member gave: the data, the issues, the bytes counted, whether it stopped.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        issues: Vec<(Kind, String)>,
        data: Option<Vec<u8>>,
        total: u64,
        stopped: bool,
    }

    impl Outcome {
        fn of(w: Walk<'_, '_>, data: Option<Vec<u8>>) -> Outcome {
            let issues = w.report.issues.iter().map(|i| (i.kind, i.detail.clone())).collect();
            Outcome { issues, data, total: w.total, stopped: w.stopped }
        }
    }

    /// Member 0 read through the zip crate's reader and through [`Walk::inflate_zip_member`].
    fn both_readers(zip: &[u8], limits: &Limits) -> [Outcome; 2] {
        let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
        let raw = archive.by_index_raw(0).unwrap();
        let (packed, size, crc) = (raw.compressed_size(), raw.size(), raw.crc32());
        let start = usize::try_from(raw.data_start().unwrap()).unwrap().min(zip.len());
        let end = start.saturating_add(usize::try_from(packed).unwrap()).min(zip.len());
        drop(raw);
        let mut old = walk(limits);
        let data = old.read_member(archive.by_index(0).unwrap(), packed, size, "m");
        // The one check the zip crate's reader lacks: a whole member past the ratio of the bytes
        // its stream really took (its header may claim more) is a bomb.
        let stream = {
            let mut z = Inflater::raw(&zip[start..end]);
            while z.step(&mut Vec::with_capacity(1 << 16), 1 << 16) == Step::Full {}
            z.consumed()
        };
        let data = match data {
            Some(d) if d.len() as u64 > old.ratio_cap(stream) => {
                let detail = old.bomb(d.len() as u64, stream);
                old.total -= d.len() as u64;
                old.stop(Kind::ArchiveBomb, "m", detail);
                None
            }
            other => other,
        };
        let old = Outcome::of(old, data);
        let mut new = walk(limits);
        let member = ZipMember { data: &zip[start..end], compressed: packed, crc };
        let data = new.inflate_zip_member(&member, size, "m", |_| Extent::Whole).map(|m| m.data);
        [old, Outcome::of(new, data)]
    }

    /// Offsets of the CRC-32, compressed and uncompressed sizes in the central directory record.
    fn central(zip: &[u8]) -> usize {
        zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap()
    }

    fn set_u32(zip: &mut [u8], at: usize, v: u32) {
        zip[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// A gzip member of `data`, with a name, a comment and an extra field, and a header CRC.
    fn gzip_member(data: &[u8], header_crc: bool) -> Vec<u8> {
        let mut e = flate2::GzBuilder::new()
            .filename("inner.tar")
            .comment("c")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        let mut gz = e.finish().unwrap();
        if header_crc {
            let at = inflate::gzip_header(&gz).unwrap().len;
            gz[3] |= 2;
            let mut crc = flate2::Crc::new();
            crc.update(&gz[..at]);
            gz.splice(at..at, (crc.sum() as u16).to_le_bytes());
        }
        gz
    }

    #[test]
    fn gzip_reads_as_flate2_multi_member_reader_does() {
        let text: Vec<u8> = (0..30_000u32).flat_map(|i| format!("{i} line\n").into_bytes()).collect();
        let one = gzip_member(&text, false);
        let two = [gzip_member(b"first ", true), gzip_member(&text, false)].concat();
        let mut cases = Vec::new();
        for good in [one, two, gzip_member(b"", true)] {
            let n = good.len();
            cases.push(good.clone());
            cases.push([&good[..], b"junk"].concat());
            cases.push([&good[..], &[0u8; 16]].concat());
            for cut in [n - 1, n - 8, n / 2, 12, 3] {
                cases.push(good[..cut].to_vec());
            }
            for at in [n - 8, n - 3, n / 2, 3, 12] {
                let mut z = good.clone();
                z[at] ^= 0x10;
                cases.push(z);
            }
        }
        for (i, gz) in cases.iter().enumerate() {
            let mut expected = Vec::new();
            let oracle = flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut expected);
            let limits = Limits::default();
            let mut w = walk(&limits);
            let got = w.inflate_gzip(gz, 0, "g");
            assert_eq!(got.is_some(), oracle.is_ok(), "case {i}: {:?} vs {oracle:?}", w.report.issues);
            if let Some(got) = got {
                assert!(got == expected, "case {i}");
                assert_eq!(w.total, got.len() as u64);
            } else {
                assert!(w.report.issues.iter().all(|i| i.kind == Kind::ArchiveUninspectable));
            }
        }
        assert_eq!(inflate::gzip_header(&gzip_member(b"x", true)).unwrap().name, Some(&b"inner.tar"[..]));
        // The limits stop it as they stop any member: 8 MiB of zeros is past the ratio.
        let zeros = gzip_member(&vec![0u8; 8 << 20], false);
        let limits = Limits::default();
        let mut w = walk(&limits);
        assert!(w.inflate_gzip(&zeros, 0, "g").is_none() && w.stopped);
        assert_eq!(w.report.issues[0].kind, Kind::ArchiveBomb);
    }

    #[test]
    fn deflate_members_read_the_same_as_through_the_zip_crate() {
        let text: Vec<u8> = (0..40_000u32).flat_map(|i| format!("{i} log line\n").into_bytes()).collect();
        let zeros = vec![0u8; 2 << 20];
        let mut rng = crate::xorshift(0x1357_9bdf);
        let mut next = move || rng() as usize;
        let noise: Vec<u8> = (0..300_000).map(|_| next() as u8).collect();
        let small = Limits { max_entry_bytes: 200_000, max_total_bytes: 300_000, ..Limits::default() };
        for limits in [Limits::default(), small] {
            for data in [&text[..], &zeros, &noise, b""] {
                let good = zip_of(data);
                let cd = central(&good);
                let real = u32::try_from(data.len()).unwrap();
                let packed = u32::from_le_bytes(good[cd + 20..cd + 24].try_into().unwrap());
                let mut cases = vec![good.clone()];
                // A wrong CRC; a declared size under and over the real one; a cut stream.
                let mut z = good.clone();
                z[cd + 16] ^= 1;
                cases.push(z);
                for declared in [real.saturating_sub(1000), real / 2, real + 1000, 0] {
                    let mut z = good.clone();
                    set_u32(&mut z, cd + 24, declared);
                    cases.push(z);
                }
                for cut in [packed / 2, packed.saturating_sub(1), 0] {
                    let mut z = good.clone();
                    set_u32(&mut z, cd + 20, cut);
                    cases.push(z);
                }
                // Flipped bytes anywhere in the compressed data.
                for _ in 0..24 {
                    let mut z = good.clone();
                    let at = 40 + next() % (packed as usize).max(1);
                    if at < cd {
                        z[at] ^= 1 << (next() % 8);
                    }
                    cases.push(z);
                }
                for (n, z) in cases.iter().enumerate() {
                    let [old, new] = both_readers(z, &limits);
                    let cd_fields = &z[cd + 16..cd + 28];
                    assert_eq!(
                        old.issues,
                        new.issues,
                        "case {n}, {} bytes, crc/sizes {cd_fields:?}",
                        data.len()
                    );
                    assert!(old == new, "case {n}: {:?}", old.issues);
                }
            }
        }
    }
}
