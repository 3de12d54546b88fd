//! Stage one of matching: a SIMD literal search (Teddy, in groups) over whole chunks of the log
//! that finds the next line containing any trigger, with an Aho-Corasick fallback where Teddy is
//! unavailable.

use crate::matcher::MatcherError;
use aho_corasick::packed;
use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

/// Literals per Teddy searcher. Teddy refuses more than 64; every group scans every byte, so
/// fewer groups are better, but a group's speed drops as it fills (one group, measured here:
/// 16 literals 10 GB/s, 48 5 GB/s, 64 2.9 GB/s). Over the built-in ~100 triggers on the benchmark
/// log, groups of 26/32/34/42/50 gave 1.14/1.07/1.46/1.25/1.21 GB/s; 34 (three groups) won.
const TEDDY_GROUP: usize = 34;

/// Stage one: finds the next line that contains any trigger.
///
/// The triggers are split into groups of at most [`TEDDY_GROUP`] literals, each searched with
/// Teddy (SIMD), which is several times faster than one Aho-Corasick automaton over all of them
/// (about 670 MB/s here with 150 literals). Where Teddy is unavailable (no SSSE3/NEON), one
/// Aho-Corasick DFA is used instead.
pub struct Prefilter {
    groups: Vec<packed::Searcher>,
    fallback: Option<AhoCorasick>,
}

impl Prefilter {
    pub(crate) fn new(triggers: &[String]) -> Result<Prefilter, MatcherError> {
        let mut groups = Vec::new();
        for chunk in triggers.chunks(TEDDY_GROUP) {
            let mut builder = packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostFirst)
                .builder();
            builder.extend(chunk);
            match builder.build() {
                Some(searcher) => groups.push(searcher),
                None => {
                    groups.clear();
                    break;
                }
            }
        }
        let fallback = if groups.is_empty() {
            Some(
                AhoCorasick::builder()
                    .kind(Some(AhoCorasickKind::DFA))
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(triggers)
                    .map_err(|e| MatcherError(format!("building the trigger automaton: {e}")))?,
            )
        } else {
            None
        };
        Ok(Prefilter { groups, fallback })
    }

    /// Whether `haystack` contains any trigger.
    pub fn is_match(&self, haystack: &[u8]) -> bool {
        self.cursor().next(haystack, 0).is_some()
    }

    /// A search over one buffer that remembers each group's next match, so that a frequent
    /// trigger in one group does not make the other groups rescan the same bytes.
    pub fn cursor(&self) -> PrefilterCursor<'_> {
        PrefilterCursor {
            prefilter: self,
            next: vec![Pending::Unknown; self.groups.len().max(1)],
        }
    }
}

#[derive(Clone, Copy)]
enum Pending {
    Unknown,
    /// Searched from `from`; the next match starts at `start` (or there is none).
    Found {
        from: usize,
        start: Option<usize>,
    },
}

/// See [`Prefilter::cursor`]. Use one cursor per buffer, with non-decreasing positions.
pub struct PrefilterCursor<'p> {
    prefilter: &'p Prefilter,
    next: Vec<Pending>,
}

impl PrefilterCursor<'_> {
    /// Start of the first trigger at or after `position`.
    pub fn next(&mut self, haystack: &[u8], position: usize) -> Option<usize> {
        if let Some(automaton) = &self.prefilter.fallback {
            return automaton
                .find(Input::new(haystack).span(position..haystack.len()))
                .map(|m| m.start());
        }
        let mut best: Option<usize> = None;
        for (group, pending) in self.prefilter.groups.iter().zip(self.next.iter_mut()) {
            let still_valid = match *pending {
                Pending::Found { from, start } => {
                    from <= position && !matches!(start, Some(s) if s < position)
                }
                Pending::Unknown => false,
            };
            if !still_valid {
                let start = group
                    .find(&haystack[position..])
                    .map(|m| position + m.start());
                *pending = Pending::Found {
                    from: position,
                    start,
                };
            }
            if let Pending::Found {
                start: Some(start), ..
            } = *pending
            {
                best = Some(best.map_or(start, |b| b.min(start)));
            }
        }
        best
    }
}
