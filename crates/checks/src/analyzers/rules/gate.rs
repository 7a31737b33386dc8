//! Literal gates: one pass over a text tells which rules could match it at all.
//!
//! Most content rules are alternations of words and phrases (`(?i)\b(act now|order today|...)\b`):
//! every match of such a rule begins with one of a few literals. A gated rule runs on a text only
//! when the text holds one of its literals, and one Aho-Corasick automaton looks for the literals of
//! every gated rule at once. Without gates each rule read every text part of every message in full
//! (its literal prefilter stopping at every case variant of its first letters); with some fifty
//! shipped rules that cost more than parsing the message.
//!
//! Case: literals are folded by [`fold`] (ASCII letters in lower case, and the two non-ASCII
//! characters a case-insensitive ASCII letter also matches written as that letter), so `(?i)` rules
//! need no case variants, and the automaton matches ASCII letters in either case. A text holding one
//! of those two characters is searched folded, every other text as it is. Literals come from
//! `regex-syntax`'s prefix extraction: the fold maps each character on its own, so a text in which a
//! rule matches holds, folded, the folded literal the match begins with (or, for a rule whose matches
//! begin in too many ways, the literal they end with: its suffix extraction). Where the text was
//! searched as it is, a rule gated by how its matches begin runs anchored at each place its literal
//! was found, not over the whole text. A rule whose literals cannot be listed (it may begin and end
//! with too many different characters, as `\s*` or `[a-z]`, or a literal has a non-ASCII byte) is
//! not gated: it runs on every text.
//!
//! This module decides which rules run; it never decides that a rule matched.

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use memchr::memmem;
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{
    Capture, Class, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange, Hir, HirKind, Repetition,
};

/// Shortest literal worth a gate: shorter ones (a digit, `$`) are in most texts, and would only add
/// work to the gate's pass.
const MIN_LITERAL: usize = 3;
/// Longest literal a gate looks for: a longer one is cut to its first (or, for the literals that end
/// matches, its last) this many bytes. The gate stays a necessary condition (a text holding the
/// whole literal holds its cut), and a few bytes already tell most texts apart; the automaton, one
/// state per distinct literal prefix, stays small enough to build as a full DFA at start-up.
const MAX_LITERAL: usize = 12;
/// Largest class whose members extraction lists one by one (a larger one ends a literal).
const LIMIT_CLASS: usize = 10;

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
    let suffix = matches!(kind, ExtractKind::Suffix);
    let seq = Extractor::new().kind(kind).limit_class(LIMIT_CLASS).extract(hir);
    let literals = seq.literals()?;
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(literals.len());
    for lit in literals {
        let bytes = lit.as_bytes();
        if bytes.len() < MIN_LITERAL || !bytes.is_ascii() {
            return None;
        }
        let cut = match suffix {
            true => &bytes[bytes.len().saturating_sub(MAX_LITERAL)..],
            false => &bytes[..bytes.len().min(MAX_LITERAL)],
        };
        let mut folded = Vec::with_capacity(cut.len());
        fold(cut, &mut folded);
        if !out.contains(&folded) {
            out.push(folded);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `text` folded into `out`: ASCII letters in lower case, U+017F (long s) as `s` and U+212A (Kelvin
/// sign) as `k` (the only characters outside ASCII that a case-insensitive ASCII letter matches);
/// every other byte as it is.
pub(crate) fn fold(text: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(text.len());
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b.is_ascii() {
            out.push(b.to_ascii_lowercase());
            i += 1;
        } else if text[i..].starts_with(LONG_S) {
            out.push(b's');
            i += LONG_S.len();
        } else if text[i..].starts_with(KELVIN) {
            out.push(b'k');
            i += KELVIN.len();
        } else {
            out.push(b);
            i += 1;
        }
    }
}

const LONG_S: &[u8] = "\u{17f}".as_bytes();
const KELVIN: &[u8] = "\u{212a}".as_bytes();

/// `hir` with each class that is one letter in its case variants (`(?i)a` is `[Aa]`, `(?i)s` is
/// `[Ss\u{17f}]`) written as that letter in lower case, so that prefix extraction lists one literal
/// where it would list a case variant per letter. Only literals are read from the result.
fn caseless(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Class(class) => match one_letter(class) {
            Some(b) => Hir::literal([b]),
            // Extraction reads a class over its limit as "anything": one range says that as well
            // as `\w`'s hundreds, and is not copied range by range.
            None if over_limit(class) => Hir::class(match class {
                Class::Unicode(_) => {
                    Class::Unicode(ClassUnicode::new([ClassUnicodeRange::new('\0', char::MAX)]))
                }
                Class::Bytes(_) => Class::Bytes(ClassBytes::new([ClassBytesRange::new(0, u8::MAX)])),
            }),
            None => hir.clone(),
        },
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(caseless).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(caseless).collect()),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(caseless(&r.sub)),
        }),
        // Fields taken one by one: `..c.clone()` would copy the whole sub-pattern only to drop it.
        HirKind::Capture(c) => {
            Hir::capture(Capture { index: c.index, name: c.name.clone(), sub: Box::new(caseless(&c.sub)) })
        }
        _ => hir.clone(),
    }
}

/// Whether `class` has more members than extraction lists ([`LIMIT_CLASS`]).
fn over_limit(class: &Class) -> bool {
    let mut count = 0usize;
    match class {
        Class::Unicode(c) => c.ranges().iter().any(|r| {
            count += r.end() as usize - r.start() as usize + 1;
            count > LIMIT_CLASS
        }),
        Class::Bytes(c) => c.ranges().iter().any(|r| {
            count += usize::from(r.end() - r.start()) + 1;
            count > LIMIT_CLASS
        }),
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

/// Most places recorded per rule and text where its literal begins a match: a rule whose literal is
/// found more often (a text of `!!!!...`) runs once over the whole text instead, so neither the list
/// nor the anchored searches grow with such a text.
pub(crate) const MAX_STARTS: u32 = 64;

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
    /// ends its matches, or begins them in a text searched folded, whose positions are not its own,
    /// or more than [`MAX_STARTS`] times).
    anywhere: Vec<bool>,
    /// (rule, position): a literal that begins the rule's matches is at that position of the text,
    /// sorted.
    starts: Vec<(usize, usize)>,
    /// Per rule: the places recorded in `starts` (at most [`MAX_STARTS`]).
    counts: Vec<u32>,
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
        // The literals are a few thousand bytes at most (the extraction's limits). A full DFA (one
        // table lookup per byte) is asked for: the automatic choice takes a slower NFA beyond 100
        // literals, and the shipped rules have more. Should the DFA not build, the automatic choice
        // is taken, and should that not build either, every rule runs ungated.
        let build = |kind| AhoCorasick::builder().ascii_case_insensitive(true).kind(kind).build(&needles);
        let finder = match build(Some(AhoCorasickKind::DFA)).or_else(|_| build(None)) {
            Ok(ac) if !needles.is_empty() => Some((ac, owners)),
            Ok(_) => None,
            Err(_) => {
                ungated.extend(owners.into_iter().map(|(rule, _)| rule));
                None
            }
        };
        Gates { ungated, finder }
    }

    /// Find where the rules (`rules` of them in all, by index) may match `text`. The automaton
    /// matches ASCII letters in either case, so most texts are searched as they are (positions in
    /// them are the text's own); a text with a long s or a Kelvin sign is searched folded.
    pub(crate) fn open(&self, text: &[u8], rules: usize, opened: &mut Opened) {
        let Opened { folded, anywhere, starts, counts } = opened;
        anywhere.clear();
        anywhere.resize(rules, false);
        counts.clear();
        counts.resize(rules, 0);
        starts.clear();
        for &rule in &self.ungated {
            anywhere[rule] = true;
        }
        let Some((ac, owners)) = &self.finder else { return };
        let aligned = memmem::find(text, LONG_S).is_none() && memmem::find(text, KELVIN).is_none();
        let haystack = if aligned {
            text
        } else {
            fold(text, folded);
            folded.as_slice()
        };
        for m in ac.find_overlapping_iter(haystack) {
            let (rule, at_start) = owners[m.pattern().as_usize()];
            if anywhere[rule] {
                continue;
            }
            if at_start && aligned && counts[rule] < MAX_STARTS {
                counts[rule] += 1;
                starts.push((rule, m.start()));
            } else {
                anywhere[rule] = true;
            }
        }
        starts.sort_unstable();
        starts.dedup();
    }
}
