//! Dynamic Data Exchange: fields and links that make Word or Excel start another program (`DDEAUTO
//! c:\\windows\\system32\\cmd.exe "/k ..."`) when a document opens. Read from WordprocessingML field
//! instructions (`w:instrText` runs between `w:fldChar` begin and separate/end, `w:fldSimple
//! w:instr`), from RTF field instructions (`{\field{\*\fldinst DDEAUTO ...}}`, `\ddeauto`) and from
//! SpreadsheetML external links (`<ddeLink ddeService= ddeTopic=>`).
//!
//! Each scan is one forward pass over the bytes. An instruction split over several runs (`DD` in one,
//! `EAUTO` in the next) or written with character references (`D&#68;EAUTO`) is read the way Word
//! reads it: joined and decoded. Nested fields each have their own instruction, at most
//! [`MAX_FIELD_DEPTH`] deep, and at most [`MAX_INSTRUCTION`] characters of each are kept. A nested
//! field's value becomes part of the instruction around it, as in Word: a `QUOTE` field is evaluated
//! (`{ {QUOTE 68 68 69 65 85 84 79} cmd.exe ... }` is a DDEAUTO field whatever result the file caches
//! for it), any other nested field gives the result cached in the file.

use memchr::{memchr, memmem};

/// Deepest nesting of fields whose instructions are followed (deeper ones are joined to the last).
pub const MAX_FIELD_DEPTH: usize = 32;
/// Characters of one field instruction kept (enough for the field name and the command it runs).
pub const MAX_INSTRUCTION: usize = 512;

/// Field instructions being read, innermost last.
#[derive(Default)]
struct Fields {
    open: Vec<Field>,
    /// Fields begun past [`MAX_FIELD_DEPTH`], whose text goes to the deepest one kept.
    overflow: usize,
    found: Option<String>,
}

/// One open field: its instruction, then (after its separator) the result the file caches for it.
#[derive(Default)]
struct Field {
    instr: String,
    judged: bool,
    result: String,
}

/// Append to `to` what room [`MAX_INSTRUCTION`] leaves.
fn push_bounded(to: &mut String, s: &str) {
    let room = MAX_INSTRUCTION.saturating_sub(to.len());
    to.extend(s.chars().take(room));
}

impl Fields {
    fn begin(&mut self) {
        if self.open.len() < MAX_FIELD_DEPTH {
            self.open.push(Field::default());
        } else {
            self.overflow += 1;
        }
    }

    fn text(&mut self, s: &str) {
        match self.open.last_mut() {
            Some(field) => push_bounded(&mut field.instr, s),
            // Instruction text outside any field (a malformed or partial document) is judged alone.
            None => self.judge(s.to_string()),
        }
    }

    /// Text shown as a field's result: kept only for a nested field, whose value it may be.
    fn result_text(&mut self, s: &str) {
        if self.overflow == 0
            && self.open.len() > 1
            && let Some(field) = self.open.last_mut()
            && field.judged
        {
            push_bounded(&mut field.result, s);
        }
    }

    /// The instruction is complete (a field's separator or end): judge it, once.
    fn complete(&mut self) {
        if self.overflow == 0
            && let Some(field) = self.open.last_mut()
            && !field.judged
        {
            field.judged = true;
            let instr = field.instr.clone();
            self.judge(instr);
        }
    }

    /// The field ends; its value joins the instruction of the field around it. True when the value
    /// was evaluated (a `QUOTE`) rather than taken from the cached result.
    fn end(&mut self) -> bool {
        self.complete();
        if self.overflow > 0 {
            self.overflow -= 1;
            return false;
        }
        let Some(field) = self.open.pop() else { return false };
        let quoted = quote_value(&field.instr);
        let evaluated = quoted.is_some();
        if let Some(outer) = self.open.last_mut() {
            push_bounded(&mut outer.instr, &quoted.unwrap_or(field.result));
        }
        evaluated
    }

    fn judge(&mut self, instr: String) {
        if self.found.is_none() && is_dde(&instr) {
            self.found = Some(crate::name::display(instr.trim()));
        }
    }

    fn finish(mut self) -> Option<String> {
        while !self.open.is_empty() {
            self.end();
        }
        self.found
    }
}

/// What a `QUOTE` field instruction evaluates to: its character codes (`QUOTE 68 68 69`) as
/// characters, or its quoted text (`QUOTE "DDE"`); `None` for any other field.
fn quote_value(instr: &str) -> Option<String> {
    let mut words = instr.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("quote") {
        return None;
    }
    let rest = instr.trim_start()[5..].trim();
    if let Some(quoted) = rest.strip_prefix('"') {
        return Some(quoted.split('"').next().unwrap_or("").to_string());
    }
    let codes: Option<String> = words.map(|w| w.parse::<u32>().ok().and_then(char::from_u32)).collect();
    codes.filter(|c| !c.is_empty())
}

/// Whether a field instruction's field name is `DDE` or `DDEAUTO` (Word reads it case-insensitively).
fn is_dde(instr: &str) -> bool {
    let name = instr.trim_start().split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or("");
    name.eq_ignore_ascii_case("dde") || name.eq_ignore_ascii_case("ddeauto")
}

/// The instruction of the first DDE or DDEAUTO field in a WordprocessingML part, shown sanitised.
pub fn word_fields(xml: &[u8]) -> Option<String> {
    memmem::find(xml, b"instr")?;
    let mut fields = Fields::default();
    let (mut in_instr_text, mut in_text) = (false, false);
    for tag in tags(xml) {
        if in_instr_text {
            fields.text(&unescape(tag.text_before));
        } else if in_text {
            fields.result_text(&unescape(tag.text_before));
        }
        (in_instr_text, in_text) = (false, false);
        if tag.closing {
            continue;
        }
        match tag.local_name {
            b"instrText" => in_instr_text = !tag.self_closing,
            b"t" => in_text = !tag.self_closing,
            b"fldChar" => match attribute(tag.raw, b"fldCharType") {
                Some(b"begin") => fields.begin(),
                Some(b"separate") => fields.complete(),
                Some(b"end") => {
                    fields.end();
                }
                _ => {}
            },
            b"fldSimple" => {
                if let Some(instr) = attribute(tag.raw, b"instr") {
                    fields.judge(unescape(instr));
                }
            }
            _ => {}
        }
        if fields.found.is_some() {
            break;
        }
    }
    fields.finish()
}

/// `service|topic` of the first `ddeLink` in a SpreadsheetML external link part, shown sanitised.
pub fn excel_links(xml: &[u8]) -> Option<String> {
    memmem::find(xml, b"ddeLink")?;
    let link = tags(xml).find(|t| !t.closing && t.local_name == b"ddeLink")?;
    let service = attribute(link.raw, b"ddeService").map(unescape).unwrap_or_default();
    let topic = attribute(link.raw, b"ddeTopic").map(unescape).unwrap_or_default();
    Some(crate::name::display(&format!("{service}|{topic}")))
}

/// The instruction of the first DDE or DDEAUTO field in an RTF document (or `\ddeauto`), sanitised.
pub fn rtf_fields(rtf: &[u8]) -> Option<String> {
    let mut fields = Fields::default();
    // Group depth at which each open `\fldinst` began: its instruction ends when that group closes.
    let mut fldinst_groups: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    // A nested field was evaluated (a `QUOTE`): the result cached for it in its `\fldrslt` group is
    // not its value (`quoted`), and that group, while open, is skipped (`skipping`, its depth).
    let (mut quoted, mut skipping) = (false, None::<usize>);
    // Characters after `\uN` that stand in for it in old readers (`\ucN`, 1 by default): skipped.
    let (mut fallback, mut skip) = (1usize, 0usize);
    let mut i = 0;
    while i < rtf.len() && fields.found.is_none() {
        let b = rtf[i];
        i += 1;
        let text = match b {
            b'{' => {
                depth += 1;
                None
            }
            b'}' => {
                if fldinst_groups.last() == Some(&depth) {
                    fldinst_groups.pop();
                    quoted = fields.end() && !fldinst_groups.is_empty();
                }
                if skipping == Some(depth) {
                    skipping = None;
                }
                depth = depth.saturating_sub(1);
                None
            }
            b'\\' => {
                let (token, next) = rtf_control(rtf, i);
                i = next;
                match token {
                    Control::Word(w, _) if w.eq_ignore_ascii_case(b"fldinst") => {
                        fields.begin();
                        fldinst_groups.push(depth);
                        quoted = false;
                        None
                    }
                    Control::Word(w, _) if w.eq_ignore_ascii_case(b"fldrslt") => {
                        if std::mem::take(&mut quoted) && skipping.is_none() {
                            skipping = Some(depth);
                        }
                        None
                    }
                    Control::Word(w, _) if w.eq_ignore_ascii_case(b"ddeauto") => {
                        fields.judge("DDEAUTO (\\ddeauto control word)".to_string());
                        None
                    }
                    Control::Word(b"uc", n) => {
                        fallback = n.map_or(1, |n| usize::try_from(n).unwrap_or(0).min(8));
                        None
                    }
                    Control::Unicode(c) => {
                        if !fldinst_groups.is_empty() && skipping.is_none() {
                            fields.text(c.encode_utf8(&mut [0; 4]));
                        }
                        skip = fallback;
                        None
                    }
                    Control::Char(c) => Some(c),
                    _ => None,
                }
            }
            b'\r' | b'\n' => None,
            _ => Some(char::from(b)),
        };
        if let Some(c) = text {
            if skip > 0 {
                skip -= 1;
            } else if !fldinst_groups.is_empty() && skipping.is_none() {
                fields.text(c.encode_utf8(&mut [0; 4]));
            }
        }
    }
    fields.finish()
}

/// What follows a backslash in RTF.
enum Control<'a> {
    /// A control word (`\fldinst`) and its parameter, the delimiter consumed.
    Word(&'a [u8], Option<i32>),
    /// Text written as a control: `\'44`, `\\`, `\{`, `\}`.
    Char(char),
    /// A character written as `\u68` (followed by fallback characters to skip).
    Unicode(char),
    /// Any other control symbol (`\*`, `\~`).
    Other,
}

/// The control starting at `i` (just past the backslash), and where the text resumes.
fn rtf_control(d: &[u8], i: usize) -> (Control<'_>, usize) {
    let Some(&first) = d.get(i) else { return (Control::Other, i) };
    if first == b'\'' {
        let hex = d.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        return match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(v) => (Control::Char(char::from(v)), i + 3),
            None => (Control::Other, i + 1),
        };
    }
    if matches!(first, b'\\' | b'{' | b'}') {
        return (Control::Char(char::from(first)), i + 1);
    }
    if !first.is_ascii_alphabetic() {
        return (Control::Other, i + 1);
    }
    // RTF control words are at most 32 letters, parameters at most 10 digits.
    let letters = d[i..].iter().take(32).take_while(|b| b.is_ascii_alphabetic()).count();
    let word = &d[i..i + letters];
    let mut j = i + letters;
    if d.get(j) == Some(&b'-') {
        j += 1;
    }
    let digits = d[j..].iter().take(10).take_while(|b| b.is_ascii_digit()).count();
    let parameter = std::str::from_utf8(&d[j..j + digits]).ok().and_then(|p| p.parse::<i32>().ok());
    j += digits;
    if d.get(j) == Some(&b' ') {
        j += 1;
    }
    if word == b"u"
        && let Some(c) = parameter.and_then(|p| char::from_u32(p.rem_euclid(65536) as u32))
    {
        return (Control::Unicode(c), j);
    }
    (Control::Word(word, parameter), j)
}

/// One XML tag and the text just before it.
struct Tag<'a> {
    /// The name after any namespace prefix (`instrText` for `w:instrText`).
    local_name: &'a [u8],
    /// The whole tag between `<` and `>`.
    raw: &'a [u8],
    text_before: &'a [u8],
    closing: bool,
    self_closing: bool,
}

/// The tags of an XML document, in order, in one forward pass (no tree, no validation).
fn tags(xml: &[u8]) -> impl Iterator<Item = Tag<'_>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let open = at + memchr(b'<', &xml[at..])?;
        let close = open + memchr(b'>', &xml[open..])?;
        let text_before = &xml[at..open];
        at = close + 1;
        let raw = &xml[open + 1..close];
        let closing = raw.first() == Some(&b'/');
        let name_start = usize::from(closing);
        let name_len = raw[name_start..]
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/')
            .unwrap_or(raw.len() - name_start);
        let name = &raw[name_start..name_start + name_len];
        let local_name = name.rsplit(|b| *b == b':').next().unwrap_or(name);
        Some(Tag { local_name, raw, text_before, closing, self_closing: raw.last() == Some(&b'/') })
    })
}

/// The value of the attribute whose name, without namespace prefix, is `local` (raw, not unescaped).
fn attribute<'a>(tag: &'a [u8], local: &[u8]) -> Option<&'a [u8]> {
    let mut rest = tag;
    while let Some(eq) = memchr(b'=', rest) {
        let name = rest[..eq].trim_ascii_end();
        let name = name.rsplit(|b| b.is_ascii_whitespace()).next().unwrap_or(name);
        let name = name.rsplit(|b| *b == b':').next().unwrap_or(name);
        let after = rest[eq + 1..].trim_ascii_start();
        let quote = *after.first()?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let len = memchr(quote, &after[1..])?;
        if name == local {
            return Some(&after[1..1 + len]);
        }
        rest = &after[len + 2..];
    }
    None
}

/// XML text with character and the predefined entity references decoded.
fn unescape(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    if !text.contains('&') {
        return text.into_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = &*text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_fields_split_escaped_nested_and_simple() {
        let split = br#"<w:document><w:body><w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space="preserve"> DD</w:instrText></w:r><w:r><w:instrText>E&#65;UTO c:\\windows\\system32\\cmd.exe "/k calc.exe"</w:instrText></w:r><w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>x</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p></w:body></w:document>"#;
        let got = word_fields(split).unwrap();
        assert!(got.starts_with("DDEAUTO c:\\\\windows") && got.contains("calc.exe"), "{got}");
        let simple = br#"<w:p><w:fldSimple w:instr=" DDE &quot;cmd&quot; &quot;/c calc&quot; "><w:r><w:t>1</w:t></w:r></w:fldSimple></w:p>"#;
        assert!(word_fields(simple).unwrap().starts_with("DDE \"cmd\""));
        let nested = br#"<w:fldChar w:fldCharType="begin"/><w:instrText>IF 1 = 1 "</w:instrText><x:fldChar x:fldCharType="begin"/><x:instrText>ddeauto cmd "/c x"</x:instrText><x:fldChar x:fldCharType="end"/><w:instrText>"</w:instrText><w:fldChar w:fldCharType="end"/>"#;
        assert!(word_fields(nested).is_some());
        // The field name built by a nested QUOTE field (its cached result says otherwise), and one whose
        // nested field only caches the name.
        let quoted = br#"<w:fldChar w:fldCharType="begin"/><w:fldChar w:fldCharType="begin"/><w:instrText> QUOTE 68 68 69 65 85 84 79 </w:instrText><w:fldChar w:fldCharType="separate"/><w:t>PAGE</w:t><w:fldChar w:fldCharType="end"/><w:instrText> c:\windows\system32\cmd.exe "/k calc.exe"</w:instrText><w:fldChar w:fldCharType="end"/>"#;
        let got = word_fields(quoted).unwrap();
        assert!(got.starts_with("DDEAUTO c:\\windows") && got.contains("calc.exe"), "{got}");
        let cached = br#"<w:fldChar w:fldCharType="begin"/><w:fldChar w:fldCharType="begin"/><w:instrText>REF x</w:instrText><w:fldChar w:fldCharType="separate"/><w:t>DDE</w:t><w:fldChar w:fldCharType="end"/><w:instrText> cmd "/c x"</w:instrText><w:fldChar w:fldCharType="end"/>"#;
        assert!(word_fields(cached).unwrap().starts_with("DDE cmd"), "{:?}", word_fields(cached));
        let quoted_text = br#"<w:fldChar w:fldCharType="begin"/><w:fldChar w:fldCharType="begin"/><w:instrText>QUOTE "dde"</w:instrText><w:fldChar w:fldCharType="end"/><w:instrText> cmd</w:instrText><w:fldChar w:fldCharType="end"/>"#;
        assert!(word_fields(quoted_text).is_some());
        let harmless = br#"<w:fldChar w:fldCharType="begin"/><w:instrText> PAGE </w:instrText><w:fldChar w:fldCharType="end"/><w:fldSimple w:instr="HYPERLINK &quot;https://a.test/DDE&quot;"/><w:t>DDEAUTO in the text</w:t>"#;
        assert_eq!(word_fields(harmless), None);
    }

    #[test]
    fn excel_dde_links() {
        let link = br#"<externalLink xmlns="x"><ddeLink xmlns:r="y" ddeService="cmd" ddeTopic="/c calc.exe"><ddeItems/></ddeLink></externalLink>"#;
        assert_eq!(excel_links(link).as_deref(), Some("cmd|/c calc.exe"));
        assert_eq!(excel_links(br#"<externalLink><externalBook r:id="rId1"/></externalLink>"#), None);
    }

    #[test]
    fn rtf_fields_plain_escaped_and_harmless() {
        let plain = br#"{\rtf1{\field{\*\fldinst DDEAUTO c:\\windows\\system32\\cmd.exe "/k calc.exe"}{\fldrslt x}}}"#;
        assert!(rtf_fields(plain).unwrap().contains("cmd.exe"));
        let hidden = br#"{\rtf1{\field{\*\fldinst {\rtlch D}\'44{E}\u65?UTO cmd "/c x"}{\fldrslt}}}"#;
        assert!(rtf_fields(hidden).unwrap().starts_with("DDEAUTO cmd"), "{:?}", rtf_fields(hidden));
        let page = br#"{\rtf1{\field{\*\fldinst PAGE}{\fldrslt 1}} DDEAUTO in the text}"#;
        assert_eq!(rtf_fields(page), None);
        assert!(rtf_fields(br"{\rtf1\ddeauto x}").is_some());
        let quoted = br#"{\rtf1{\field{\*\fldinst {\field{\*\fldinst QUOTE 68 68 69 65 85 84 79}{\fldrslt DDEAUTO}} cmd "/c calc"}{\fldrslt x}}}"#;
        assert!(rtf_fields(quoted).unwrap().starts_with("DDEAUTO cmd"), "{:?}", rtf_fields(quoted));
        let cached = br#"{\rtf1{\field{\*\fldinst {\field{\*\fldinst REF x}{\fldrslt DDE}} cmd "/c calc"}{\fldrslt x}}}"#;
        assert!(rtf_fields(cached).unwrap().starts_with("DDE cmd"), "{:?}", rtf_fields(cached));
        let quoted_page = br#"{\rtf1{\field{\*\fldinst {\field{\*\fldinst QUOTE 80 65 71 69}{\fldrslt DDEAUTO}}}{\fldrslt 1}}}"#;
        assert_eq!(rtf_fields(quoted_page), None, "the evaluated value, not the cached result");
        for cut in [&b"{\\rtf1{\\field{\\*\\fldinst DDE"[..], b"\\", b"\\'4", b"\\u"] {
            let _ = rtf_fields(cut);
        }
    }
}
