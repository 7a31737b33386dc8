//! Archives opened in memory: zip (and Office and Java packages, which are zips), tar, gzip. Others
//! are reported as uninspectable. Members become new items on the walk's stack; nothing is written
//! anywhere, and a member's path is only ever a string.

use crate::filetype::{self, FileType};
use crate::report::Kind;
use crate::walk::{Extent, Item, Member, Walk, ZipMember, guarded};
use crate::{name, office};
use memchr::memmem;
use std::borrow::Cow;
use std::io::Cursor;

/// The display path of a member.
fn member_path(parent: &str, member: &str) -> String {
    format!("{parent} > {}", name::display(member))
}

/// A path that climbs out of where it would be unpacked, is absolute, or names a drive.
fn suspicious_path(p: &str) -> Option<&'static str> {
    let p = p.replace('\\', "/");
    if p.starts_with('/') || p.as_bytes().get(1) == Some(&b':') {
        Some("an absolute path")
    } else if p.split('/').any(|c| c == "..") {
        Some("a path that climbs out with ../")
    } else {
        None
    }
}

/// Put a member on the walk's stack.
fn push(w: &mut Walk<'_, '_>, parent: &Item<'_>, member: String, data: Vec<u8>, extent: Extent) {
    let file = member_path(&parent.file, &member);
    let data = Cow::Owned(data);
    w.stack.push(Item { file, name: Some(member), data, extent, depth: parent.depth + 1 });
}

pub(crate) fn zip(w: &mut Walk<'_, '_>, it: &Item<'_>, kind: FileType) {
    if w.deep_enough(it) {
        return;
    }
    // Count central directory records before parsing them: a million tiny entries must not cost
    // a million allocations.
    let listed = memmem::find_iter(&it.data, b"PK\x01\x02").count();
    if w.entries + listed > w.limits.max_entries {
        let detail = format!("{listed} members: more than {} archive members", w.limits.max_entries);
        w.stop(Kind::ArchiveLimit, &it.file, detail);
        return;
    }
    let opened = guarded(|| zip::ZipArchive::new(Cursor::new(&it.data[..])).map_err(|e| e.to_string()));
    let mut archive = match opened {
        Ok(a) => a,
        Err(e) => return w.report.add(Kind::ArchiveUninspectable, &it.file, format!("unreadable zip: {e}")),
    };
    if !matches!(archive.has_overlapping_files(), Ok(false)) {
        w.stop(Kind::ArchiveBomb, &it.file, "members share or overlap their compressed data".into());
        return;
    }
    // An Office package by the member list the zip reader parsed, whatever the bytes' type said.
    let kind = match archive.index_for_name_raw(b"[Content_Types].xml") {
        Some(_) => FileType::Ooxml,
        None => kind,
    };
    let mut package = office::Package::default();
    for i in 0..archive.len() {
        if w.stopped || !w.take_entry(&it.file) {
            break;
        }
        zip_member(w, it, kind, &mut archive, i, &mut package);
    }
    package.finish(&it.file, &mut w.report);
}

fn zip_member(
    w: &mut Walk<'_, '_>,
    it: &Item<'_>,
    kind: FileType,
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    i: usize,
    package: &mut office::Package,
) {
    let (member, encrypted, packed, size, is_dir, is_link, deflated) = match archive.by_index_raw(i) {
        Ok(f) => (
            String::from_utf8_lossy(f.name_raw()).into_owned(),
            f.encrypted(),
            f.compressed_size(),
            f.size(),
            f.is_dir(),
            f.is_symlink(),
            deflated_data(&f, &it.data),
        ),
        Err(e) => {
            return w.report.add(Kind::ArchiveUninspectable, &it.file, format!("unreadable member: {e}"));
        }
    };
    let file = member_path(&it.file, &member);
    if let Some(why) = suspicious_path(&member) {
        w.report.add(Kind::ArchiveSuspiciousPath, &file, why);
    }
    if is_link {
        w.report.add(Kind::ArchiveSuspiciousPath, &file, "a symbolic link");
    }
    if is_dir {
        return;
    }
    if encrypted {
        return w.report.add(Kind::ArchiveEncrypted, &file, "password-protected member");
    }
    if size > w.limits.max_entry_bytes {
        let detail = format!("a member declaring {size} bytes (limit {})", w.limits.max_entry_bytes);
        return w.stop(Kind::ArchiveLimit, &file, detail);
    }
    let in_package = kind == FileType::Ooxml;
    let data = match deflated {
        // Almost every member: inflated from the archive's bytes directly, and a leaf only as far
        // as its type needs (see `LEAF_WINDOW`).
        Some(data) => {
            let extension = name::final_extension(&member);
            let extent = |start: &[u8]| {
                if in_package && office::reads_whole_member(&member) {
                    return Extent::Whole;
                }
                let t = filetype::detect_start(start);
                if Walk::reads_whole(t, extension.as_deref()) { Extent::Whole } else { Extent::Start(t) }
            };
            w.inflate_zip_member(&data, size, &file, extent)
        }
        None => match archive.by_index(i) {
            Ok(reader) => {
                w.read_member(reader, packed, size, &file).map(|data| Member { data, extent: Extent::Whole })
            }
            Err(e) => {
                return w.report.add(Kind::ArchiveUninspectable, &file, format!("cannot open member: {e}"));
            }
        },
    };
    let Some(Member { data, extent }) = data else { return };
    if in_package {
        office::check_ooxml_member(&member, &data, &it.file, package, &mut w.report);
    }
    push(w, it, member, data, extent);
}

/// A Deflate member's compressed bytes (exactly what the zip crate's reader would read: from its
/// data's start for its compressed size, cut at the end of the archive) and what its header says;
/// `None` for other methods and encrypted members, which go through the zip crate's reader.
fn deflated_data<'d>(f: &zip::read::ZipFile<'_, Cursor<&[u8]>>, archive: &'d [u8]) -> Option<ZipMember<'d>> {
    if f.compression() != zip::CompressionMethod::Deflated || f.encrypted() {
        return None;
    }
    let start = usize::try_from(f.data_start()?).unwrap_or(usize::MAX).min(archive.len());
    let length = usize::try_from(f.compressed_size()).unwrap_or(usize::MAX);
    let end = start.saturating_add(length).min(archive.len());
    Some(ZipMember { data: &archive[start..end], compressed: f.compressed_size(), crc: f.crc32() })
}

pub(crate) fn tar(w: &mut Walk<'_, '_>, it: &Item<'_>) {
    if w.deep_enough(it) {
        return;
    }
    let mut archive = tar::Archive::new(Cursor::new(&it.data[..]));
    // Entries skipped by seeking (not read through): each member's data is taken from the
    // archive's bytes where its header puts it.
    let entries = match archive.entries_with_seek() {
        Ok(e) => e,
        Err(e) => return w.report.add(Kind::ArchiveUninspectable, &it.file, format!("unreadable tar: {e}")),
    };
    for entry in entries {
        if w.stopped || !w.take_entry(&it.file) {
            return;
        }
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                return w.report.add(
                    Kind::ArchiveUninspectable,
                    &it.file,
                    format!("unreadable tar member: {e}"),
                );
            }
        };
        tar_member(w, it, entry);
    }
}

fn tar_member(w: &mut Walk<'_, '_>, it: &Item<'_>, entry: tar::Entry<'_, Cursor<&[u8]>>) {
    let member = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let file = member_path(&it.file, &member);
    if let Some(why) = suspicious_path(&member) {
        w.report.add(Kind::ArchiveSuspiciousPath, &file, why);
    }
    let kind = entry.header().entry_type();
    if kind.is_symlink() || kind.is_hard_link() {
        let target =
            entry.link_name_bytes().map(|t| String::from_utf8_lossy(&t).into_owned()).unwrap_or_default();
        let detail = format!("a link to {}", name::display(&target));
        return w.report.add(Kind::ArchiveSuspiciousPath, &file, detail);
    }
    if !kind.is_file() {
        return;
    }
    let size = entry.size();
    if size > w.limits.max_entry_bytes {
        let detail = format!("a member declaring {size} bytes (limit {})", w.limits.max_entry_bytes);
        return w.stop(Kind::ArchiveLimit, &file, detail);
    }
    // A regular file's data is contiguous: `size` bytes from its position, cut at the archive's
    // end (as reading the entry would be).
    let start = usize::try_from(entry.raw_file_position()).unwrap_or(usize::MAX).min(it.data.len());
    let end = start.saturating_add(usize::try_from(size).unwrap_or(usize::MAX)).min(it.data.len());
    let extension = name::final_extension(&member);
    let Some(Member { data, extent }) = w.stored_member(&it.data[start..end], extension.as_deref(), &file)
    else {
        return;
    };
    push(w, it, member, data, extent);
}

pub(crate) fn gzip(w: &mut Walk<'_, '_>, it: &Item<'_>) {
    if w.deep_enough(it) || !w.take_entry(&it.file) {
        return;
    }
    let inner = crate::inflate::gzip_header(&it.data)
        .ok()
        .and_then(|h| h.name)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_else(|| inner_name(it.name.as_deref()));
    let file = member_path(&it.file, &inner);
    // The trailer's ISIZE (the size modulo 2^32 of the last member): a hint, never trusted.
    let trailer_size = it.data.len().checked_sub(4).map_or(0, |at| {
        u64::from(u32::from_le_bytes([it.data[at], it.data[at + 1], it.data[at + 2], it.data[at + 3]]))
    });
    let Some(data) = w.inflate_gzip(&it.data, trailer_size, &file) else { return };
    push(w, it, inner, data, Extent::Whole);
}

/// `a.tar.gz` holds `a.tar`, `a.tgz` holds `a.tar`, `x.gz` holds `x`.
fn inner_name(outer: Option<&str>) -> String {
    let base = outer.map(name::effective).unwrap_or_default();
    let lower = base.to_ascii_lowercase();
    if lower.ends_with(".tgz") {
        format!("{}.tar", &base[..base.len() - 4])
    } else if lower.ends_with(".gz") {
        base[..base.len() - 3].to_string()
    } else {
        "(gzip content)".to_string()
    }
}

/// 7z, rar, cab, bzip2, xz: no maintained pure-Rust reader here lists them safely, so they are
/// held as uninspectable; a 7z whose header names the AES coder is also reported as encrypted.
pub(crate) fn uninspectable(w: &mut Walk<'_, '_>, it: &Item<'_>, t: FileType) {
    if t == FileType::SevenZip && seven_zip_aes(&it.data) {
        w.report.add(Kind::ArchiveEncrypted, &it.file, "7z archive encrypted with AES");
    }
    w.report.add(Kind::ArchiveUninspectable, &it.file, format!("{} archives are not opened", t.name()));
}

/// The 7z AES-256 coder id (06 F1 07 01) in the archive's trailing header.
fn seven_zip_aes(d: &[u8]) -> bool {
    let Some(off) = d.get(12..20).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))) else {
        return false;
    };
    let start = usize::try_from(off).unwrap_or(usize::MAX).saturating_add(32).min(d.len());
    memmem::find(&d[start..], b"\x06\xf1\x07\x01").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_names() {
        assert!(suspicious_path("../../srv/x.jsp").is_some());
        assert!(suspicious_path("/etc/cron.d/x").is_some());
        assert!(suspicious_path("C:\\Windows\\x.exe").is_some());
        assert!(suspicious_path("docs/a..b.txt").is_none());
        assert_eq!(inner_name(Some("logs.tar.gz")), "logs.tar");
        assert_eq!(inner_name(Some("x.TGZ")), "x.tar");
        let mut d = vec![0u8; 64];
        d[..6].copy_from_slice(b"7z\xbc\xaf\x27\x1c");
        d[12] = 0;
        d[40..44].copy_from_slice(b"\x06\xf1\x07\x01");
        assert!(seven_zip_aes(&d));
    }
}
