//! A rule's pattern compiled for the one question rules ask: does it match anywhere in this text?
//!
//! The `regex` crate answers that too, but it compiles every pattern for every question a regex can
//! be asked: besides the forward automaton it builds a reverse one (to find where a match starts), a
//! one-pass DFA and a bounded backtracker, all before the first message. For the shipped rules that
//! was about 80 million instructions at every `serve` and `scan` start, half of it the reverse
//! automata of a few large patterns. A [`Matcher`] builds the forward automaton only: the same
//! engines the `regex` crate uses to answer `is_match` (a lazy DFA, started by the pattern's literal
//! prefilter, with the Pike VM when the lazy DFA gives up), in linear time, from the same
//! `regex-syntax` patterns.
//!
//! Patterns are compiled without the requirement that they only match valid UTF-8 (as the `regex`
//! crate's `bytes` API compiles them), for every kind of rule: the texts are UTF-8, so a Unicode
//! pattern matches them exactly as before, and a rule may count characters by their UTF-8 lead bytes
//! (`(?-u:[\x00-\x7F\xC0-\xFF][\x80-\xBF]*)`), which compiles to a far smaller automaton than `(?s:.)`.

use regex_automata::hybrid::dfa::{self, DFA};
use regex_automata::nfa::thompson::{self, NFA, WhichCaptures, pikevm, pikevm::PikeVM};
use regex_automata::util::pool::Pool;
use regex_automata::util::prefilter::Prefilter;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};
use regex_syntax::hir::Look;
use std::panic::{RefUnwindSafe, UnwindSafe};

/// Why a pattern does not compile: its syntax, or the size of its automaton.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PatternError {
    #[error(transparent)]
    Syntax(Box<regex_syntax::Error>),
    #[error(transparent)]
    Build(Box<thompson::BuildError>),
}

/// The lazy DFA gives up (and the Pike VM takes over for that search) once it has cleared its cache
/// this many times while producing fewer than [`MIN_BYTES_PER_STATE`] bytes per new state: the
/// `regex` crate's own settings.
const MIN_CACHE_CLEARS: usize = 3;
const MIN_BYTES_PER_STATE: usize = 10;

/// One search's scratch space, reused through a pool (verdicts run on several threads at once).
struct Caches {
    dfa: Option<dfa::Cache>,
    pikevm: pikevm::Cache,
}

type MakeCaches = Box<dyn Fn() -> Caches + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// A compiled pattern that says whether it matches.
pub(crate) struct Matcher {
    /// The literals one of which begins every match ([`super::gate::literals`]), if there are.
    pub(crate) literals: Option<super::gate::Literals>,
    /// `None` when the lazy DFA cannot run this pattern at all (its cache limit is below the few
    /// states it needs): the Pike VM answers alone.
    dfa: Option<DFA>,
    pikevm: PikeVM,
    caches: Pool<Caches, MakeCaches>,
}

/// Compiles patterns into [`Matcher`]s. One compiler serves every pattern of a rule set: the NFA
/// compiler's scratch space (a cache of UTF-8 ranges of ten thousand entries) is then made once, not
/// once per pattern, which was about 5% of the work of compiling the shipped rules.
pub(crate) struct Compiler {
    nfa: thompson::Compiler,
    dfa_size_limit: usize,
}

impl Compiler {
    /// A compiler whose automata may take `size_limit` bytes each, their lazy DFAs' caches
    /// `dfa_size_limit` bytes.
    pub(crate) fn new(size_limit: usize, dfa_size_limit: usize) -> Compiler {
        let mut nfa = thompson::Compiler::new();
        nfa.configure(
            thompson::Config::new()
                .utf8(false)
                .which_captures(WhichCaptures::None)
                .nfa_size_limit(Some(size_limit)),
        );
        Compiler { nfa, dfa_size_limit }
    }

    /// Compile `pattern`. With `gated`, the pattern's literals are listed for a gate.
    pub(crate) fn compile(&self, pattern: &str, gated: bool) -> Result<Matcher, PatternError> {
        let hir = syntax::parse_with(pattern, &syntax::Config::new().utf8(false))
            .map_err(|e| PatternError::Syntax(Box::new(e)))?;
        let build = |e| PatternError::Build(Box::new(e));
        let nfa: NFA = self.nfa.build_from_hir(&hir).map_err(build)?;
        // As the `regex` crate does: no prefilter for a pattern anchored at the start of the text,
        // which the lazy DFA rejects at the first byte that does not fit. Nor for a gated pattern:
        // it runs only on texts that hold one of its literals.
        let literals = if gated { super::gate::literals(&hir) } else { None };
        let anchored = hir.properties().look_set_prefix().contains(Look::Start);
        let prefilter = if anchored || literals.is_some() {
            None
        } else {
            Prefilter::from_hir_prefix(MatchKind::LeftmostFirst, &hir)
        };
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .specialize_start_states(prefilter.is_some())
                    .prefilter(prefilter)
                    .unicode_word_boundary(true)
                    .cache_capacity(self.dfa_size_limit)
                    .minimum_cache_clear_count(Some(MIN_CACHE_CLEARS))
                    .minimum_bytes_per_state(Some(MIN_BYTES_PER_STATE)),
            )
            .build_from_nfa(nfa.clone())
            .ok();
        let pikevm = PikeVM::new_from_nfa(nfa).map_err(build)?;
        let (d, p) = (dfa.clone(), pikevm.clone());
        let make: MakeCaches =
            Box::new(move || Caches { dfa: d.as_ref().map(DFA::create_cache), pikevm: p.create_cache() });
        Ok(Matcher { literals, dfa, pikevm, caches: Pool::new(make) })
    }
}

impl Matcher {
    /// Whether the pattern matches anywhere in `text`.
    pub(crate) fn is_match(&self, text: &[u8]) -> bool {
        self.search(Input::new(text).earliest(true))
    }

    /// Whether a match begins at `at` in `text` (the text before `at` still seen by look-behind
    /// assertions such as `\b`).
    pub(crate) fn is_match_at(&self, text: &[u8], at: usize) -> bool {
        self.search(Input::new(text).range(at..).anchored(Anchored::Yes).earliest(true))
    }

    fn search(&self, input: Input<'_>) -> bool {
        let mut caches = self.caches.get();
        if let (Some(dfa), Some(cache)) = (&self.dfa, caches.dfa.as_mut()) {
            // An error is the lazy DFA giving up (its cache thrashing) or meeting a byte it cannot
            // judge (a Unicode word boundary next to non-ASCII text): the Pike VM answers instead.
            if let Ok(found) = dfa.try_search_fwd(cache, &input) {
                return found.is_some();
            }
        }
        self.pikevm.is_match(&mut caches.pikevm, input)
    }
}
