//! Literal gates: one pass over a text tells which rules could match it at all.
//!
//! Most content rules are alternations of words and phrases (`(?i)\b(act now|order today|...)\b`):
//! every match of such a rule begins with one of a few literals. A gated rule runs on a text only
//! when the text holds one of its literals, and one Aho-Corasick automaton looks for the literals of
//! every gated rule at once. Without gates each rule read every text part of every message in full
//! (its literal prefilter stopping at every case variant of its first letters); with some fifty
//! shipped rules that cost more than parsing the message.
//!
//! Case: texts and literals are compared folded by [`fold`] (ASCII letters in lower case, and the two
//! non-ASCII characters a case-insensitive ASCII letter also matches written as that letter), so
//! `(?i)` rules need no case variants. Literals come from `regex-syntax`'s prefix extraction, and are
//! folded in the same way as the text: the fold maps each character on its own, so a text in which a
//! rule matches holds, folded, the folded literal the match begins with (or, for a rule whose matches
//! begin in too many ways, the literal they end with: `regex-syntax`'s suffix extraction). A rule whose literals cannot
//! be listed (it may begin with too many different characters, as `\s*` or `[a-z]`, or a literal
//! has a non-ASCII byte) is not gated: it runs on every text.
//!
//! This module decides which rules run; it never decides that a rule matched.

use aho_corasick::AhoCorasick;
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Capture, Class, Hir, HirKind, Repetition};

/// Shortest literal worth a gate: shorter ones (a digit, `$`) are in most texts, and would only add
/// work to the gate's pass.
const MIN_LITERAL: usize = 3;

/// The literals one of which begins every match of `hir`, or else one of which ends every match,
/// folded; `None` when there is no such short list (the rule cannot be gated).
pub(crate) fn literals(hir: &Hir) -> Option<Literals> {
    let hir = caseless(hir);
    if let Some(needles) = listed(&hir, ExtractKind::Prefix) {
        return Some(Literals { needles, at_start: true });
    }
    listed(&hir, ExtractKind::Suffix).map(|needles| Literals { needles, at_start: false })
}

/// A rule's gate: the literals (folded), and whether its matches begin with them (else they end
/// with them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Literals {
    pub(crate) needles: Vec<Vec<u8>>,
    pub(crate) at_start: bool,
}

fn listed(hir: &Hir, kind: ExtractKind) -> Option<Vec<Vec<u8>>> {
    let seq = Extractor::new().kind(kind).extract(hir);
    let literals = seq.literals()?;
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(literals.len());
    for lit in literals {
        let bytes = lit.as_bytes();
        if bytes.len() < MIN_LITERAL || !bytes.is_ascii() {
            return None;
        }
        let mut folded = Vec::with_capacity(bytes.len());
        fold(bytes, &mut folded);
        if !out.contains(&folded) {
            out.push(folded);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `text` folded into `out`: ASCII letters in lower case, U+017F (long s) as `s` and U+212A (Kelvin
/// sign) as `k` (the only characters outside ASCII that a case-insensitive ASCII letter matches);
/// every other byte as it is. True when `text` is ASCII: then a position in `out` is the same
/// position in `text`.
pub(crate) fn fold(text: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    if text.is_ascii() {
        out.extend(text.iter().map(u8::to_ascii_lowercase));
        return true;
    }
    out.reserve(text.len());
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b.is_ascii() {
            out.push(b.to_ascii_lowercase());
            i += 1;
        } else if text[i..].starts_with("\u{17f}".as_bytes()) {
            out.push(b's');
            i += 2;
        } else if text[i..].starts_with("\u{212a}".as_bytes()) {
            out.push(b'k');
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    false
}

/// `hir` with each class that is one letter in its case variants (`(?i)a` is `[Aa]`, `(?i)s` is
/// `[Ss\u{17f}]`) written as that letter in lower case, so that prefix extraction lists one literal
/// where it would list a case variant per letter. Only literals are read from the result.
fn caseless(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Class(class) => one_letter(class).map_or_else(|| hir.clone(), |b| Hir::literal([b])),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(caseless).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(caseless).collect()),
        HirKind::Repetition(r) => {
            Hir::repetition(Repetition { sub: Box::new(caseless(&r.sub)), ..r.clone() })
        }
        HirKind::Capture(c) => Hir::capture(Capture { sub: Box::new(caseless(&c.sub)), ..c.clone() }),
        _ => hir.clone(),
    }
}

/// The ASCII letter (lower case) whose case variants `class` is made of, if it is.
fn one_letter(class: &Class) -> Option<u8> {
    let mut letter = None;
    let mut members = 0;
    let mut each = |c: u32| -> bool {
        members += 1;
        let folded = match char::from_u32(c) {
            Some('\u{17f}') => b's',
            Some('\u{212a}') => b'k',
            Some(ch) if ch.is_ascii_alphabetic() => ch.to_ascii_lowercase() as u8,
            _ => return false,
        };
        members <= 3 && *letter.get_or_insert(folded) == folded
    };
    let all = match class {
        Class::Unicode(c) => c.ranges().iter().all(|r| (r.start() as u32..=r.end() as u32).all(&mut each)),
        Class::Bytes(c) => {
            c.ranges().iter().all(|r| (u32::from(r.start())..=u32::from(r.end())).all(&mut each))
        }
    };
    if all { letter } else { None }
}

/// The gates of some rules (indices into the analyzer's rules).
pub(crate) struct Gates {
    /// Rules that run on every text.
    ungated: Vec<usize>,
    /// The automaton over every gated rule's literals, and for each literal the rule it opens and
    /// whether that rule's matches begin with it.
    finder: Option<(AhoCorasick, Vec<(usize, bool)>)>,
}

/// What [`Gates::open`] found in one text; its buffers are reused from text to text.
#[derive(Default)]
pub(crate) struct Opened {
    folded: Vec<u8>,
    /// Per rule: it may match anywhere in the text (it is not gated, or its literal is found and
    /// ends its matches, or begins them in a text whose folded positions are not its own).
    anywhere: Vec<bool>,
    /// (rule, position): a literal that begins the rule's matches is at that position of the text
    /// (ASCII texts), sorted.
    starts: Vec<(usize, usize)>,
}

impl Opened {
    /// Whether `rule` may match anywhere in the text.
    pub(crate) fn anywhere(&self, rule: usize) -> bool {
        self.anywhere.get(rule).copied().unwrap_or(false)
    }

    /// The positions a match of `rule` may begin at (besides [`Opened::anywhere`]).
    pub(crate) fn starts(&self, rule: usize) -> impl Iterator<Item = usize> + '_ {
        let from = self.starts.partition_point(|&(r, _)| r < rule);
        self.starts[from..].iter().take_while(move |&&(r, _)| r == rule).map(|&(_, at)| at)
    }
}

impl Gates {
    /// Gates for `rules`: (rule index, its literals if it can be gated).
    pub(crate) fn new(rules: impl IntoIterator<Item = (usize, Option<Literals>)>) -> Gates {
        let (mut ungated, mut needles, mut owners) = (Vec::new(), Vec::new(), Vec::new());
        for (rule, literals) in rules {
            match literals {
                Some(lits) => {
                    owners.extend(std::iter::repeat_n((rule, lits.at_start), lits.needles.len()));
                    needles.extend(lits.needles);
                }
                None => ungated.push(rule),
            }
        }
        // The literals are a few thousand bytes at most (the extraction's limits); should the
        // automaton still not build, every rule runs ungated.
        let finder = match AhoCorasick::new(&needles) {
            Ok(ac) if !needles.is_empty() => Some((ac, owners)),
            Ok(_) => None,
            Err(_) => {
                ungated.extend(owners.into_iter().map(|(rule, _)| rule));
                None
            }
        };
        Gates { ungated, finder }
    }

    /// Find where the rules (`rules` of them in all, by index) may match `text`.
    pub(crate) fn open(&self, text: &[u8], rules: usize, opened: &mut Opened) {
        opened.anywhere.clear();
        opened.anywhere.resize(rules, false);
        opened.starts.clear();
        for &rule in &self.ungated {
            opened.anywhere[rule] = true;
        }
        let Some((ac, owners)) = &self.finder else { return };
        let aligned = fold(text, &mut opened.folded);
        for m in ac.find_overlapping_iter(opened.folded.as_slice()) {
            let (rule, at_start) = owners[m.pattern().as_usize()];
            if at_start && aligned {
                opened.starts.push((rule, m.start()));
            } else {
                opened.anywhere[rule] = true;
            }
        }
        opened.starts.sort_unstable();
        opened.starts.dedup();
    }
}
