//! What inspection found: issues (one kind per symbol) and every file looked at.

use crate::filetype::FileType;

/// One kind of finding. Each is one symbol; the symbol names are stable (scores refer to them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A program: PE, ELF, Mach-O, MSI, LNK, CHM, Java (by content or by name).
    Executable,
    /// A script Windows or a shell runs: JS, VBS, WSF, HTA, PS1, BAT/CMD, shell.
    Script,
    /// A disk image (ISO, IMG, VHD, VHDX, DMG): a container that strips mark-of-the-web.
    DiskImage,
    /// The name's extension says one type, the bytes another.
    TypeMismatch,
    /// A document extension followed by a dangerous one (`invoice.pdf.exe`).
    DoubleExtension,
    /// Bidirectional controls in the name (`inv<U+202E>fdp.exe` shows as `invexe.pdf`).
    BidiName,
    /// Invisible characters, controls or NUL, trailing dots or spaces, or a very long name.
    DeceptiveName,
    /// Nesting too deep, an expansion ratio past the limit, or overlapping zip entries.
    ArchiveBomb,
    /// Entries, bytes or time ran out before the archive was read whole.
    ArchiveLimit,
    /// A password-protected member or archive.
    ArchiveEncrypted,
    /// An archive this inspector cannot open (7z, rar, cab, bzip2, xz, corrupt, unknown method).
    ArchiveUninspectable,
    /// A member path that climbs out (`../`), is absolute, or is a link.
    ArchiveSuspiciousPath,
    /// A VBA project (OLE or OOXML) or a macro-enabled content type.
    OfficeMacro,
    /// An Excel 4.0 (XLM) macro sheet: in an OOXML package (`xl/macrosheets/`, its content type) or
    /// a legacy workbook (a `BOUNDSHEET` of type macro sheet; hidden and very hidden ones say so).
    OfficeXlmMacro,
    /// A DDE or DDEAUTO field (Word, RTF) or a DDE link (Excel) that starts a program when opened.
    OfficeDde,
    /// A reference to an external template or object fetched when the document opens.
    OfficeExternalTemplate,
    /// `/JavaScript` or `/JS` in a PDF.
    PdfJavascript,
    /// `/Launch` in a PDF (runs a program).
    PdfLaunch,
    /// `/OpenAction` or `/AA` (actions run on open or on events).
    PdfAutoAction,
    /// `/EmbeddedFile` (a file inside the PDF).
    PdfEmbeddedFile,
    /// Script in an HTML attachment that builds a file (Blob, atob, download) or a data-URI payload.
    HtmlSmuggling,
    /// Script in an HTML attachment.
    HtmlScript,
    /// Could not be read whole: cut by a message limit, or a parser failed.
    Unscannable,
}

impl Kind {
    pub fn symbol(self) -> &'static str {
        match self {
            Kind::Executable => "ATTACH_EXECUTABLE",
            Kind::Script => "ATTACH_SCRIPT",
            Kind::DiskImage => "ATTACH_DISK_IMAGE",
            Kind::TypeMismatch => "ATTACH_TYPE_MISMATCH",
            Kind::DoubleExtension => "ATTACH_DOUBLE_EXT",
            Kind::BidiName => "ATTACH_BIDI_NAME",
            Kind::DeceptiveName => "ATTACH_DECEPTIVE_NAME",
            Kind::ArchiveBomb => "ARCHIVE_BOMB",
            Kind::ArchiveLimit => "ARCHIVE_LIMIT",
            Kind::ArchiveEncrypted => "ARCHIVE_ENCRYPTED",
            Kind::ArchiveUninspectable => "ARCHIVE_UNINSPECTABLE",
            Kind::ArchiveSuspiciousPath => "ARCHIVE_SUSPICIOUS_PATH",
            Kind::OfficeMacro => "OFFICE_MACRO",
            Kind::OfficeXlmMacro => "OFFICE_XLM_MACRO",
            Kind::OfficeDde => "OFFICE_DDE",
            Kind::OfficeExternalTemplate => "OFFICE_EXTERNAL_TEMPLATE",
            Kind::PdfJavascript => "PDF_JAVASCRIPT",
            Kind::PdfLaunch => "PDF_LAUNCH",
            Kind::PdfAutoAction => "PDF_AUTO_ACTION",
            Kind::PdfEmbeddedFile => "PDF_EMBEDDED_FILE",
            Kind::HtmlSmuggling => "HTML_SMUGGLING",
            Kind::HtmlScript => "HTML_SCRIPT",
            Kind::Unscannable => "ATTACH_UNSCANNABLE",
        }
    }

    /// Whether this finding means the attachment was not read whole (so it cannot be called clean).
    pub fn is_unscannable(self) -> bool {
        matches!(
            self,
            Kind::ArchiveBomb
                | Kind::ArchiveLimit
                | Kind::ArchiveEncrypted
                | Kind::ArchiveUninspectable
                | Kind::Unscannable
        )
    }
}

/// One finding about one file (the attachment or a member of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub kind: Kind,
    /// The sanitised display path: `outer.zip > dir/inner.exe`.
    pub file: String,
    /// What was seen, in words (never raw content).
    pub detail: String,
}

/// A file looked at, for per-type policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// The sanitised display path.
    pub file: String,
    /// The true final extension of its name, lower-case (see [`crate::name::final_extension`]).
    pub extension: Option<String>,
    /// The type its bytes are.
    pub detected: Option<FileType>,
    /// 0 for the attachment, 1 for a member of it, and so on.
    pub depth: usize,
}

impl FileEntry {
    /// The names a policy list may use for this file: its true extension and its detected type's.
    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.extension.as_deref().into_iter().chain(self.detected.map(FileType::name))
    }
}

/// Everything found in one attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub issues: Vec<Issue>,
    pub files: Vec<FileEntry>,
}

/// At most this many issues per attachment: a hostile archive cannot grow the report without bound.
pub(crate) const MAX_ISSUES: usize = 64;

impl Report {
    pub(crate) fn add(&mut self, kind: Kind, file: &str, detail: impl Into<String>) {
        if self.issues.len() < MAX_ISSUES && !self.issues.iter().any(|i| i.kind == kind && i.file == file) {
            self.issues.push(Issue { kind, file: file.to_string(), detail: detail.into() });
        }
    }

    /// Whether any part of the attachment could not be read (bomb, limit, encrypted, parser failure).
    pub fn unscannable(&self) -> bool {
        self.issues.iter().any(|i| i.kind.is_unscannable())
    }

    pub fn has(&self, kind: Kind) -> bool {
        self.issues.iter().any(|i| i.kind == kind)
    }
}
