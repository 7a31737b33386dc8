//! HTML attachments: script, and HTML smuggling (script that assembles a file in the browser from an
//! embedded payload, or a data-URI payload offered for download). Nothing is rendered or run; the
//! first [`MAX_HTML`] bytes are searched for every needle at once, in any case (one linear pass).

use crate::needles::NeedleSet;
use std::sync::LazyLock;

/// Bytes of an HTML attachment read.
pub const MAX_HTML: usize = 8 << 20;
/// A base64 run this long inside an HTML file is a payload, not an inline icon.
const LONG_BASE64: usize = 20_000;

/// What an HTML attachment does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HtmlFacts {
    pub script: bool,
    /// Why it looks like smuggling, if it does.
    pub smuggling: Option<String>,
}

/// Every needle [`scan`] asks about, ASCII lower-case (matched in any case).
const NEEDLES: [&str; 18] = [
    "<script",
    "javascript:",
    " onload=",
    " onerror=",
    "new blob(",
    "atob(",
    "createobjecturl",
    "mssaveoropenblob",
    "mssaveblob",
    "fromcharcode",
    "uint8array(",
    " download",
    ".download=",
    ".download =",
    "data:application/",
    "data:octet-stream",
    "data:text/html",
    "data:image/svg+xml",
];
/// Where in [`NEEDLES`] the script builders (listed in the reason in this order), the download
/// markers and the data-URI payloads are.
const BUILDERS: std::ops::Range<usize> = 4..11;
const DOWNLOAD: std::ops::Range<usize> = 11..14;
const DATA_PAYLOADS: std::ops::Range<usize> = 14..18;

pub fn scan(data: &[u8]) -> HtmlFacts {
    static SEARCHER: LazyLock<NeedleSet> = LazyLock::new(|| NeedleSet::new(&NEEDLES));
    let d = &data[..data.len().min(MAX_HTML)];
    let found = SEARCHER.occurring(d);
    let seen: [bool; NEEDLES.len()] = std::array::from_fn(|i| found & (1 << i) != 0);
    let script = seen[..4].iter().any(|s| *s);
    let builders: Vec<&str> = BUILDERS.filter(|&i| seen[i]).map(|i| NEEDLES[i]).collect();
    let download = DOWNLOAD.clone().any(|i| seen[i]);
    let data_payload = DATA_PAYLOADS.clone().find(|&i| seen[i]).map(|i| NEEDLES[i]);
    let smuggling = if script && !builders.is_empty() && (download || builders.len() >= 2 || long_base64(d)) {
        Some(format!("script builds a file in the browser ({})", builders.join(", ")))
    } else if let Some(p) = data_payload.filter(|_| download || script) {
        Some(format!("{p} payload offered by the page"))
    } else if script && long_base64(d) {
        Some("script carrying a long base64 payload".to_string())
    } else {
        None
    };
    HtmlFacts { script, smuggling }
}

/// A run of base64 characters of at least [`LONG_BASE64`].
fn long_base64(d: &[u8]) -> bool {
    let mut run = 0;
    for &b in d {
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=' {
            run += 1;
            if run >= LONG_BASE64 {
                return true;
            }
        } else if b != b'\n' && b != b'\r' && b != b'"' && b != b'\'' {
            run = 0;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smuggling_and_plain_pages() {
        let smuggle = b"<html><body><script>var b=new Blob([atob('TVqQ')],{type:'application/octet-stream'});var a=document.createElement('a');a.href=URL.createObjectURL(b);a.download='invoice.exe';a.click();</script></body></html>";
        let f = scan(smuggle);
        assert!(f.script && f.smuggling.is_some());
        let data_uri = b"<html><a href=\"data:application/octet-stream;base64,TVqQAAMAAAAE\" download=\"x.exe\">get</a></html>";
        assert!(scan(data_uri).smuggling.is_some());
        let plain = b"<html><body><p>Hello</p><img src=\"data:image/png;base64,iVBORw0\"></body></html>";
        assert_eq!(scan(plain), HtmlFacts::default());
        let scripted = b"<html><script>document.title='x'</script></html>";
        let f = scan(scripted);
        assert!(f.script && f.smuggling.is_none());
    }
}
