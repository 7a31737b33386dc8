//! Excel 4.0 (XLM) macros in legacy workbooks: the `BOUNDSHEET` records of a BIFF5/BIFF8 `Workbook`
//! (or `Book`) stream's globals name every sheet with its type and visibility; a macro sheet holds
//! XLM formulas that run like VBA (`=EXEC(...)`, `Auto_Open`), often very hidden so Excel's own
//! interface does not list it. Also `FILEPASS`: an encrypted workbook (a known password such as
//! Excel's built-in `VelvetSweatshop` still hides sheet types from a reader that does not decrypt),
//! and `SUPBOOK` records that are DDE links (`=cmd|' /c calc.exe'!A0` in a cell formula makes Excel
//! start the program named as the DDE application when the workbook opens).
//!
//! Only the globals substream is read, record by record: headers are read and the bodies of other
//! records are skipped with a seek, at most [`MAX_BIFF_RECORDS`] of them.

use std::io::{Read, Seek, SeekFrom};

/// Most records of a workbook's globals read before giving up (a real one has a few hundred).
pub const MAX_BIFF_RECORDS: usize = 100_000;
/// Most macro sheets named in a finding.
pub(crate) const MAX_SHEETS_SHOWN: usize = 8;

const BOF: u16 = 0x0809;
const EOF: u16 = 0x000a;
const BOUNDSHEET: u16 = 0x0085;
const FILEPASS: u16 = 0x002f;
const SUPBOOK: u16 = 0x01ae;
/// What separates a DDE link's application from its topic in a `SUPBOOK`'s path.
const DDE_DELIMITER: char = '\u{3}';
/// `BoundSheet8.dt` of an Excel 4.0 macro sheet.
const MACRO_SHEET: u8 = 0x01;

/// What a workbook's globals say about its sheets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkbookFacts {
    /// Macro sheets, as `'name' (very hidden)`, at most [`MAX_SHEETS_SHOWN`].
    pub macro_sheets: Vec<String>,
    /// `FILEPASS`: the records after it are encrypted.
    pub encrypted: bool,
    /// The first DDE link a `SUPBOOK` names, as `application|topic` (BIFF8).
    pub dde_link: Option<String>,
}

/// Read the globals of a `Workbook` (BIFF8) or `Book` (BIFF5) stream.
pub fn workbook_globals(mut stream: impl Read + Seek, biff8: bool) -> std::io::Result<WorkbookFacts> {
    let mut facts = WorkbookFacts::default();
    for n in 0..MAX_BIFF_RECORDS {
        let mut header = [0u8; 4];
        if stream.read_exact(&mut header).is_err() {
            break; // the stream ended without EOF: what was read stands
        }
        let kind = u16::from_le_bytes([header[0], header[1]]);
        let len = u16::from_le_bytes([header[2], header[3]]);
        match kind {
            EOF => break,
            BOF if n > 0 => break, // a sheet's substream: the globals had no EOF
            FILEPASS => {
                // The bodies after it (sheet types and states included) are ciphertext.
                facts.encrypted = true;
                break;
            }
            BOUNDSHEET => {
                let mut body = vec![0u8; usize::from(len)];
                stream.read_exact(&mut body)?;
                if let Some(sheet) = macro_sheet(&body, biff8)
                    && facts.macro_sheets.len() < MAX_SHEETS_SHOWN
                {
                    facts.macro_sheets.push(sheet);
                }
            }
            SUPBOOK if biff8 && facts.dde_link.is_none() => {
                let mut body = vec![0u8; usize::from(len)];
                stream.read_exact(&mut body)?;
                facts.dde_link = dde_link(&body);
            }
            _ => {
                stream.seek(SeekFrom::Current(i64::from(len)))?;
            }
        }
    }
    Ok(facts)
}

/// A `SUPBOOK` body that links to a DDE application, described: `cmd| /c calc.exe`. Its path (`cch`
/// characters, 1 to 255, after the sheet count) is written raw, the application and the topic
/// separated by [`DDE_DELIMITER`]. The path of another workbook starts with a control character
/// (1: an encoded path, in which the same character separates directories; 2 and 3: this workbook),
/// and this workbook's and add-ins' links have no path (`cch` 0x0401, 0x3A01).
fn dde_link(body: &[u8]) -> Option<String> {
    let cch = usize::from(u16::from_le_bytes([*body.get(2)?, *body.get(3)?]));
    if !(1..=0xff).contains(&cch) {
        return None;
    }
    let path = xl_string(body.get(4..)?, cch)?;
    if path.starts_with(|c: char| c.is_control()) {
        return None;
    }
    let (application, topic) = path.split_once(DDE_DELIMITER)?;
    Some(crate::name::display(&format!("{application}|{topic}")))
}

/// `count` characters of an `XLUnicodeStringNoCch` (a flags byte, bit 0 set for UTF-16, then the
/// characters), as many as are there.
fn xl_string(bytes: &[u8], count: usize) -> Option<String> {
    let (flags, chars) = bytes.split_first()?;
    Some(if flags & 1 == 1 {
        let units: Vec<u16> =
            chars.chunks_exact(2).take(count).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        String::from_utf16_lossy(&units)
    } else {
        chars.iter().take(count).map(|&b| char::from(b)).collect()
    })
}

/// A `BOUNDSHEET` body that names a macro sheet, described: `'Macro1' (very hidden)`.
fn macro_sheet(body: &[u8], biff8: bool) -> Option<String> {
    if body.get(5) != Some(&MACRO_SHEET) {
        return None;
    }
    let state = match body[4] & 0x03 {
        0 => "visible",
        1 => "hidden",
        _ => "very hidden",
    };
    let count = usize::from(*body.get(6)?);
    // BIFF8 names are a ShortXLUnicodeString (a flags byte: bit 0 set for UTF-16); BIFF5 names are bytes.
    let name = if biff8 {
        xl_string(body.get(7..)?, count)?
    } else {
        body.get(7..)?.iter().take(count).map(|&b| char::from(b)).collect()
    };
    Some(format!("'{}' ({state})", crate::name::display(&name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn record(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut r = kind.to_le_bytes().to_vec();
        r.extend((body.len() as u16).to_le_bytes());
        r.extend(body);
        r
    }

    fn boundsheet(state: u8, dt: u8, name: &str) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0, state, dt, name.len() as u8, 0];
        b.extend(name.as_bytes());
        record(BOUNDSHEET, &b)
    }

    fn supbook(path: &[u8], utf16: bool) -> Vec<u8> {
        let mut b = vec![0, 0];
        b.extend((path.len() as u16).to_le_bytes());
        b.push(u8::from(utf16));
        if utf16 {
            b.extend(path.iter().flat_map(|&c| [c, 0]));
        } else {
            b.extend(path);
        }
        record(SUPBOOK, &b)
    }

    fn globals_with_dde() -> Vec<u8> {
        let mut globals = record(BOF, &[0; 16]);
        globals.extend(record(SUPBOOK, &[1, 0, 1, 4])); // this workbook's own
        globals.extend(supbook(b"cmd\x03 /c calc.exe", true));
        globals.extend(supbook(b"second\x03one", false));
        globals.extend(record(EOF, &[]));
        globals
    }

    #[test]
    fn dde_links_in_supporting_links() {
        let f = workbook_globals(Cursor::new(globals_with_dde()), true).unwrap();
        assert_eq!(f.dde_link.as_deref(), Some("cmd| /c calc.exe"));
        let mut files = record(BOF, &[0; 16]);
        files.extend(supbook(b"\x01C:\x03reports\x03book.xls", false));
        files.extend(supbook(b"\x01\x05other.xls", false));
        files.extend(supbook(b"\x02", false));
        assert_eq!(workbook_globals(Cursor::new(files), true).unwrap().dde_link, None, "paths are not DDE");
    }

    #[test]
    fn macro_sheets_with_their_state() {
        let mut globals = record(BOF, &[0; 16]);
        globals.extend(record(0x0042, &[0xe4, 0x04])); // CODEPAGE
        globals.extend(boundsheet(0, 0, "Sheet1"));
        globals.extend(boundsheet(2, 1, "Macro1"));
        globals.extend(record(EOF, &[]));
        globals.extend(record(BOF, &[0; 16]));
        globals.extend(boundsheet(0, 1, "not a global"));
        let f = workbook_globals(Cursor::new(globals), true).unwrap();
        assert_eq!(f.macro_sheets, vec!["'Macro1' (very hidden)".to_string()]);
        assert!(!f.encrypted);
        let mut clean = record(BOF, &[0; 16]);
        clean.extend(boundsheet(1, 0, "Data"));
        assert_eq!(workbook_globals(Cursor::new(clean), true).unwrap(), WorkbookFacts::default());
        let mut locked = record(BOF, &[0; 16]);
        locked.extend(record(FILEPASS, &[1, 0, 1, 0]));
        locked.extend(boundsheet(0x5a, 0x17, "\u{1}\u{2}"));
        assert!(workbook_globals(Cursor::new(locked), true).unwrap().encrypted);
        // Cut anywhere: whatever was read whole stands, never a panic.
        for n in 0..globals_with_dde().len() {
            let _ = workbook_globals(Cursor::new(&globals_with_dde()[..n]), true);
        }
        let mut cut = record(BOF, &[0; 16]);
        cut.extend(&boundsheet(2, 1, "Macro1")[..9]);
        let _ = workbook_globals(Cursor::new(cut), true);
    }
}
