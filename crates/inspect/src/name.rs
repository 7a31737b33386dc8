//! File names as a person sees them and as the operating system uses them: deceptive characters,
//! double extensions, and the true final extension every policy decision uses.

use crate::filetype::{self, Class};

/// Longest display name kept in reasons, in characters.
pub const MAX_DISPLAY: usize = 120;

/// What is deceptive about one name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameFacts {
    /// The true final extension, lower-case (see [`final_extension`]).
    pub extension: Option<String>,
    /// Bidirectional controls (U+202A..U+202E, U+2066..U+2069, U+200E, U+200F, U+061C).
    pub bidi: bool,
    /// What else is deceptive, in words (empty if nothing).
    pub deceptive: Vec<&'static str>,
    /// `(inner, outer)` for `invoice.pdf.exe`.
    pub double_extension: Option<(String, String)>,
}

pub fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// Characters that render as nothing (zero-width, soft hyphen, word joiner, BOM, tag characters).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{00ad}' | '\u{180e}' | '\u{e0000}'..='\u{e007f}')
}

/// The name a file system and a shell act on: cut at the first NUL (C APIs stop there), bidi and
/// invisible characters removed (they only change how it looks), then trailing dots and spaces
/// removed (Windows drops them), and only the last path component (for archive members).
pub fn effective(name: &str) -> String {
    let name = name.split('\0').next().unwrap_or("");
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|&c| !is_bidi(c) && !is_invisible(c)).collect();
    cleaned.trim_end_matches(['.', ' ', '\u{3000}', '\t']).to_string()
}

/// The true final extension: the last `.`-separated part of [`effective`], lower-case, if it is
/// 1 to 16 characters with no space.
pub fn final_extension(name: &str) -> Option<String> {
    let eff = effective(name);
    let (stem, ext) = eff.rsplit_once('.')?;
    let ok =
        !stem.is_empty() && (1..=16).contains(&ext.chars().count()) && !ext.contains(char::is_whitespace);
    ok.then(|| ext.to_lowercase())
}

/// Everything deceptive about `name` (an attachment name or an archive member path).
pub fn facts(name: &str, max_chars: usize) -> NameFacts {
    let mut f = NameFacts { extension: final_extension(name), ..NameFacts::default() };
    f.bidi = name.chars().any(is_bidi);
    if name.contains('\0') {
        f.deceptive.push("a NUL character (the name ends there for the system)");
    }
    if name.chars().any(|c| c.is_control() && c != '\0') {
        f.deceptive.push("control characters");
    }
    if name.chars().any(is_invisible) {
        f.deceptive.push("invisible characters");
    }
    let base = name.split('\0').next().unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    if base.ends_with(['.', ' ', '\u{3000}']) {
        f.deceptive.push("trailing dots or spaces (Windows drops them)");
    }
    if name.chars().count() > max_chars {
        f.deceptive.push("a very long name (the real extension is pushed out of view)");
    }
    if base.contains("    ") || base.contains('\u{3000}') {
        f.deceptive.push("runs of spaces hiding the real extension");
    }
    f.double_extension = double_extension(name);
    f
}

/// `invoice.pdf.exe`: a document or media extension before a dangerous one.
fn double_extension(name: &str) -> Option<(String, String)> {
    let eff = effective(name);
    let mut parts = eff.rsplitn(3, '.');
    let outer = parts.next()?.to_lowercase();
    let inner = parts.next()?.trim().to_lowercase();
    parts.next().filter(|stem| !stem.trim().is_empty())?;
    let dangerous = matches!(
        filetype::class_of_extension(&outer),
        Some(Class::Executable | Class::Script | Class::DiskImage)
    );
    let looks_harmless = filetype::is_known_extension(&inner)
        && filetype::class_of_extension(&inner).is_none()
        || ["txt", "jpg", "png", "doc", "pdf", "xls", "zip", "mp3", "mp4", "avi", "csv"]
            .contains(&inner.as_str());
    (dangerous && looks_harmless && inner != outer).then_some((inner, outer))
}

/// `name` made safe to show and to put in a reason: bidi and invisible characters as `<U+202E>`,
/// other controls as `\xNN`, at most [`MAX_DISPLAY`] characters (the start and the end are kept, so
/// the real extension stays visible).
pub fn display(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if is_bidi(c) || is_invisible(c) {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        } else if c.is_control() {
            out.push_str(&format!("\\x{:02X}", c as u32 & 0xff));
        } else {
            out.push(c);
        }
    }
    let n = out.chars().count();
    if n <= MAX_DISPLAY {
        return out;
    }
    let head: String = out.chars().take(60).collect();
    let tail: String = out.chars().skip(n - 40).collect();
    format!("{head}...({n} chars)...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_to_left_override_hides_exe() {
        let name = "inv\u{202e}fdp.exe";
        let f = facts(name, 255);
        assert!(f.bidi);
        assert_eq!(f.extension.as_deref(), Some("exe"));
        assert_eq!(display(name), "inv<U+202E>fdp.exe");
    }

    #[test]
    fn trailing_dots_nul_and_length() {
        assert_eq!(final_extension("report.exe. . ."), Some("exe".into()));
        assert!(!facts("report.exe...", 255).deceptive.is_empty());
        assert_eq!(final_extension("a.exe\0.pdf"), Some("exe".into()));
        assert!(facts("a.exe\0.pdf", 255).deceptive.iter().any(|d| d.contains("NUL")));
        let long = format!("invoice{}.pdf.exe", " ".repeat(5000));
        let f = facts(&long, 255);
        assert_eq!(f.extension.as_deref(), Some("exe"));
        assert!(f.deceptive.iter().any(|d| d.contains("long")));
        assert!(display(&long).len() < 200);
        assert!(display(&long).ends_with(".pdf.exe"));
    }

    #[test]
    fn double_extensions() {
        assert_eq!(facts("invoice.pdf.exe", 255).double_extension, Some(("pdf".into(), "exe".into())));
        assert_eq!(facts("photo.jpg.js", 255).double_extension, Some(("jpg".into(), "js".into())));
        assert_eq!(facts("archive.tar.gz", 255).double_extension, None);
        assert_eq!(facts("v1.2.exe", 255).double_extension, None);
        assert_eq!(facts("setup.exe", 255).double_extension, None);
    }

    #[test]
    fn shell_metacharacters_are_just_characters() {
        for n in ["`touch /tmp/x`.txt", "$(id).doc", ";reboot;.pdf"] {
            let f = facts(n, 255);
            assert!(f.deceptive.is_empty() && !f.bidi, "{n}");
            assert_eq!(display(n), n);
        }
        assert_eq!(final_extension("../../srv/x.jsp"), Some("jsp".into()));
        assert_eq!(display("a\r\nb"), "a\\x0D\\x0Ab");
    }
}
