//! Reads one input in a single pass with a fixed-size buffer: sniffs what it is (empty, binary,
//! JUnit XML or plain text), then streams it through the matcher.
//!
//! Plain text is scanned a chunk at a time: the Aho-Corasick prefilter runs over the whole chunk
//! and only lines that contain a trigger are cut out, ANSI-stripped and given to the matcher.
//! Newlines are counted only once per chunk, so line numbers cost one vectorised pass. Memory is
//! the chunk plus at most one partial line; a line longer than the chunk is split, never grown.

use crate::analysis::Collector;
use crate::junit;
use crate::matcher::{trim_cr, Matcher};
use std::borrow::Cow;
use std::io::{self, Read};

/// Bytes read and scanned at a time. Large enough that the per-chunk overhead vanishes, small
/// enough to stay in L2/L3 cache and keep peak memory far under the 64 MB goal.
pub const CHUNK_BYTES: usize = 1 << 20;
/// How much of an input is looked at to decide what it is.
const SNIFF_BYTES: usize = 64 * 1024;

/// What an input turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Junit,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Junit => "junit",
        }
    }
}

/// Why an input could not be analysed; each says what was seen, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputProblem {
    Empty,
    Binary(String),
    Unreadable(String),
}

impl std::fmt::Display for InputProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputProblem::Empty => f.write_str("input is empty (0 bytes): nothing to analyse"),
            InputProblem::Binary(why) => write!(f, "input looks binary, not a log: {why}"),
            InputProblem::Unreadable(why) => write!(f, "cannot read input: {why}"),
        }
    }
}

/// What the scan of one input produced, apart from the findings in the collector.
#[derive(Debug, Clone, Default)]
pub struct ScanOutcome {
    pub format: Option<Format>,
    pub bytes: u64,
    pub lines: u64,
    /// Non-fatal problems: a truncated JUnit file, invalid UTF-8, overlong lines.
    pub warnings: Vec<String>,
    pub problem: Option<InputProblem>,
}

/// Reads `reader` to the end and records its findings as input number `input`.
pub fn scan<R: Read>(mut reader: R, collector: &mut Collector<'_>, input: usize) -> ScanOutcome {
    let mut outcome = ScanOutcome::default();
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    if let Err(e) = (&mut reader)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
    {
        outcome.problem = Some(InputProblem::Unreadable(e.to_string()));
        return outcome;
    }
    if head.is_empty() {
        outcome.problem = Some(InputProblem::Empty);
        return outcome;
    }
    if let Some(why) = looks_binary(&head) {
        outcome.bytes = head.len() as u64;
        outcome.problem = Some(InputProblem::Binary(why));
        return outcome;
    }
    // `error_len() == None` is a character cut by the end of the head, not an invalid byte.
    if std::str::from_utf8(&head).is_err_and(|e| e.error_len().is_some()) {
        outcome
            .warnings
            .push("input is not valid UTF-8; matched on raw bytes, excerpts show \u{fffd} for invalid bytes".into());
    }
    if is_junit(&head) {
        outcome.format = Some(Format::Junit);
        junit::scan(
            io::Cursor::new(head).chain(reader),
            collector,
            input,
            &mut outcome,
        );
    } else if head.len() < SNIFF_BYTES {
        // The whole input fit in the head: no need for the streaming buffer.
        outcome.format = Some(Format::Text);
        outcome.bytes = head.len() as u64;
        let newlines = scan_block(&head, 1, collector, input, None);
        outcome.lines = newlines + u64::from(!head.ends_with(b"\n"));
    } else {
        outcome.format = Some(Format::Text);
        let rest = io::Cursor::new(head).chain(reader);
        if let Err(e) = scan_text(rest, collector, input, &mut outcome) {
            outcome.problem = Some(InputProblem::Unreadable(e.to_string()));
        }
    }
    collector.end_input(input);
    outcome
}

/// Binary if the head holds NUL bytes or mostly non-text control bytes, or starts with the magic
/// of a compressed or executable file (a common mistake: `analyze build.log.gz`).
fn looks_binary(head: &[u8]) -> Option<String> {
    const MAGIC: &[(&[u8], &str)] = &[
        (
            b"\x1f\x8b",
            "gzip data; decompress it first (zcat FILE | dbsandbox analyze)",
        ),
        (b"PK\x03\x04", "a zip archive; extract the log first"),
        (b"\x7fELF", "an ELF executable"),
        (
            b"\x28\xb5\x2f\xfd",
            "zstd data; decompress it first (zstdcat FILE | dbsandbox analyze)",
        ),
        (b"BZh", "bzip2 data; decompress it first"),
        (b"\xfd7zXZ", "xz data; decompress it first"),
    ];
    for (magic, what) in MAGIC {
        if head.starts_with(magic) {
            return Some(what.to_string());
        }
    }
    let sample = &head[..head.len().min(8192)];
    if let Some(offset) = memchr::memchr(0, sample) {
        let nul_count = sample.iter().filter(|&&b| b == 0).count();
        // CI logs occasionally carry a stray NUL; a real binary has many.
        if nul_count * 100 > sample.len() {
            return Some(format!(
                "{nul_count} NUL bytes in the first {} bytes (first at offset {offset})",
                sample.len()
            ));
        }
    }
    let control = sample
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x1b | 0x0c | 0x08))
        .count();
    if control * 10 > sample.len() {
        return Some(format!(
            "{control} control bytes in the first {} bytes",
            sample.len()
        ));
    }
    None
}

/// JUnit XML is recognised by content, not by file name: an XML declaration or a
/// `<testsuite`/`<testsuites` root near the start.
fn is_junit(head: &[u8]) -> bool {
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    if !(text.starts_with(b"<?xml") || text.starts_with(b"<testsuite") || text.starts_with(b"<!--"))
    {
        return false;
    }
    memchr::memmem::find(text, b"<testsuite").is_some()
}

/// Streams plain text through the prefilter and matcher.
fn scan_text<R: Read>(
    mut reader: R,
    collector: &mut Collector<'_>,
    input: usize,
    outcome: &mut ScanOutcome,
) -> io::Result<()> {
    let mut buffer = vec![0u8; CHUNK_BYTES].into_boxed_slice();
    let mut filled = 0usize;
    let mut next_line = 1u64;
    let mut at_eof = false;
    let mut split_lines = 0u64;
    let mut ended_with_newline = true;
    loop {
        while filled < buffer.len() && !at_eof {
            match reader.read(&mut buffer[filled..]) {
                Ok(0) => at_eof = true,
                Ok(n) => {
                    filled += n;
                    outcome.bytes += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            break;
        }
        let block_end = if at_eof {
            filled
        } else {
            match memchr::memrchr(b'\n', &buffer[..filled]) {
                Some(last_newline) => last_newline + 1,
                None => {
                    // A line longer than the buffer: scan it in pieces rather than grow memory.
                    split_lines += 1;
                    filled
                }
            }
        };
        let block = &buffer[..block_end];
        ended_with_newline = block.last() == Some(&b'\n');
        next_line += scan_block(block, next_line, collector, input, None);
        buffer.copy_within(block_end..filled, 0);
        filled -= block_end;
    }
    outcome.lines = next_line - 1 + u64::from(!ended_with_newline && outcome.bytes > 0);
    if split_lines > 0 {
        outcome.warnings.push(format!(
            "{split_lines} line(s) longer than {} bytes were scanned in pieces",
            CHUNK_BYTES
        ));
    }
    Ok(())
}

/// Scans complete lines in `block` (the last may lack its newline), whose first line has number
/// `first_line`; returns the number of newlines in the block. Used for plain text and for the
/// text inside JUnit `<failure>` and `<system-out>` elements.
pub fn scan_block(
    block: &[u8],
    first_line: u64,
    collector: &mut Collector<'_>,
    input: usize,
    forced_test: Option<&str>,
) -> u64 {
    let matcher: &Matcher = collector.matcher();
    let mut prefilter = matcher.prefilter().cursor();
    let mut position = 0usize;
    let mut counted_to = 0usize;
    let mut line_number = first_line;
    while position < block.len() {
        let Some(hit) = prefilter.next(block, position) else {
            break;
        };
        let line_start =
            memchr::memrchr(b'\n', &block[position..hit]).map_or(position, |i| position + i + 1);
        let line_end = memchr::memchr(b'\n', &block[hit..]).map_or(block.len(), |i| hit + i);
        line_number += count_newlines(&block[counted_to..line_start]);
        counted_to = line_start;
        let stripped = strip_ansi(trim_cr(&block[line_start..line_end]));
        // Patterns see valid UTF-8 (invalid bytes become U+FFFD) so that `[^"]+` still captures
        // a constraint name with a Latin-1 byte in it; only hit lines pay for the check.
        let line = String::from_utf8_lossy(&stripped);
        let line = line.as_bytes();
        let facts = matcher.analyze_line(line, &block[..line_start]);
        collector.observe(input, line_number, line, facts, forced_test);
        position = line_end + 1;
    }
    line_number - first_line + count_newlines(&block[counted_to..])
}

/// Counts `\n` bytes. memchr specialises `count` with SIMD (tens of GB/s here, against
/// 3.7 GB/s for a plain byte loop), which matters because every byte of the log is counted.
pub fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Removes ANSI escape sequences (CSI colours and cursor moves, OSC titles and hyperlinks) and
/// the carriage-return overwrites of progress bars, so that patterns see the text a human sees.
pub fn strip_ansi(line: &[u8]) -> Cow<'_, [u8]> {
    // A progress bar redraws with `\r`: only the text after the last one is visible.
    let line = match memchr::memrchr(b'\r', line) {
        Some(i) if i + 1 < line.len() => &line[i + 1..],
        _ => line,
    };
    if memchr::memchr(0x1b, line).is_none() {
        return Cow::Borrowed(line);
    }
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] != 0x1b {
            out.push(line[i]);
            i += 1;
            continue;
        }
        match line.get(i + 1) {
            Some(b'[') => {
                // CSI: parameters and intermediates, then one final byte in 0x40..=0x7e.
                i += 2;
                while i < line.len() && !(0x40..=0x7e).contains(&line[i]) {
                    i += 1;
                }
                i += 1;
            }
            Some(b']') => {
                // OSC: up to BEL or ST (ESC \).
                i += 2;
                while i < line.len() {
                    if line[i] == 0x07 {
                        i += 1;
                        break;
                    }
                    if line[i] == 0x1b && line.get(i + 1) == Some(&b'\\') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            Some(_) => i += 2,
            None => i += 1,
        }
    }
    Cow::Owned(out)
}
