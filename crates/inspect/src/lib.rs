//! Content inspection: what an attachment really is, what is inside it, and where its links go.
//!
//! Owns: true file types from bytes ([`filetype`]), deceptive file names ([`name`]), archives opened
//! in memory under named [`Limits`] (zip, tar, gzip; 7z, rar, cab, bzip2 and xz are reported as
//! uninspectable), Office macros, Excel 4.0 macro sheets, DDE and external templates ([`office`],
//! [`xlm`], [`dde`]; RTF fields too), PDF actions ([`pdf`]), HTML smuggling ([`html`]), lookalike
//! and deceptive links ([`links`]), cutting a blocked attachment out of a message ([`strip`]), and
//! the clamd INSTREAM client ([`clamd`], the only I/O here). Must not
//! touch: scoring (checks turns [`Issue`]s into symbols), the spool, files on disk, logs.
//!
//! # Security
//! Every byte and every name is hostile. Nothing is ever written to disk: archives are read from
//! memory, a member name is only ever a string in a report (never a path, never a log format), and
//! display names are sanitised ([`name::display`]): bidi and invisible characters are shown as
//! `<U+202E>`, controls as `\xNN`, and length is bounded. Decompression is bounded by [`Limits`]:
//! nesting depth, entries, bytes per entry and in total, expansion ratio and wall time; reaching one
//! stops the attachment and reports `ARCHIVE_BOMB` or `ARCHIVE_LIMIT` (unscannable: the policy holds
//! it, never passes it as clean). A zip member that is neither an archive nor a document read whole
//! is inflated only as far as its type needs ([`LEAF_WINDOW`], which says what that leaves to
//! clamd). Parsers from other crates (zip, tar, cfb) run under `catch_unwind`, so a parser bug on
//! hostile input becomes "unscannable", not a dead worker. The work stack is explicit (no recursion
//! over content) and every scan is linear in its input.

#![forbid(unsafe_code)]

mod archive;
pub mod clamd;
pub mod dde;
pub mod filetype;
pub mod html;
pub mod html_parts;
mod inflate;
pub mod links;
pub mod name;
mod needles;
pub mod office;
pub mod pdf;
mod report;
pub mod strip;
mod walk;
pub mod xlm;

pub use filetype::{Class, FileType};
pub use report::{FileEntry, Issue, Kind, Report};
pub use walk::inspect;

use std::time::Duration;

/// Bounds on one attachment's inspection. Reaching one is a finding, never an error or a hang.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of archives inside archives (the attachment itself is depth 0).
    pub max_depth: usize,
    /// Most archive members looked at, over all archives in the attachment.
    pub max_entries: usize,
    /// Most bytes decompressed from one member.
    pub max_entry_bytes: u64,
    /// Most bytes decompressed over the whole attachment.
    pub max_total_bytes: u64,
    /// Largest expansion (decompressed / compressed) of one member before it is a bomb; only
    /// checked past [`RATIO_FLOOR`] bytes, so small, very compressible files are fine.
    pub max_ratio: u64,
    /// Wall time for one attachment.
    pub max_time: Duration,
    /// Longest file name (in characters) before it is deceptive.
    pub max_name_chars: usize,
}

/// Decompressed bytes below which the ratio limit is not applied.
pub const RATIO_FLOOR: u64 = 1 << 20;

/// How much of a *leaf* zip member is inflated: one that is neither an archive nor a document or
/// page whose analyzer reads it whole (see `walk::reads_whole`). Its type is told from these first
/// bytes ([`filetype::detect_start`]: the magic numbers, the ISO 9660 descriptors near 36 KiB, and
/// the script and HTML markers of the first [`filetype::TEXT_WINDOW`] bytes), so it is the typing
/// window, not a knob. The rest is not inflated: clamd receives the whole attachment and scans it
/// itself, and the gateway never holds more of such a member than this. What is therefore not
/// checked past the window: the CRC-32, the stream's integrity, and a real size larger than the
/// header declares (a header that declares the true size is still held to the ratio, per-member and
/// total limits as before, from that size). A member whose first bytes expand past
/// [`Limits::max_ratio`] is inflated whole, as every member was before, so zeros and other bomb
/// filler meet the same limits.
/// A tar member (stored, already in memory) is typed from all of its bytes and kept to this window
/// when it is a leaf, so nothing about it goes unchecked (`walk::Walk::stored_member`).
pub const LEAF_WINDOW: usize = filetype::TEXT_WINDOW;

// The typing window must cover the last fixed offset [`filetype::detect_start`] reads (the third
// ISO 9660 volume descriptor's identifier, at 0x9001..0x9006).
const _: () = assert!(LEAF_WINDOW >= 0x9006);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 5,
            max_entries: 1000,
            max_entry_bytes: 50 << 20,
            max_total_bytes: 200 << 20,
            max_ratio: 100,
            max_time: Duration::from_secs(10),
            max_name_chars: 255,
        }
    }
}

/// One attachment to inspect, as the MIME view holds it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The file name the message gave (decoded), if any.
    pub name: Option<&'a str>,
    /// The declared MIME type, lower-case.
    pub declared_type: &'a str,
    pub data: &'a [u8],
    /// `data` was cut by a message limit: what is missing was never looked at.
    pub truncated: bool,
}

/// A fixed pseudo-random sequence (xorshift32) for the unit tests that generate their inputs.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u32) -> impl FnMut() -> u32 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    }
}
