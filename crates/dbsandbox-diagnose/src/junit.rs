//! JUnit XML input, streamed with quick-xml: `<testcase classname name>` names the test, and the
//! text of `<failure>`, `<error>`, `<system-out>` and `<system-err>` (and the `message`
//! attribute) is scanned exactly like a plain log, attributed to that test.
//!
//! Line numbers point into the XML file: the reader under quick-xml counts the newlines it hands
//! out, so each text node knows the line it starts on. A file that ends inside an element (a CI
//! job killed mid-write) yields what was read so far plus a warning naming where it stopped.

use crate::analysis::Collector;
use crate::reader::{count_newlines, scan_block, ScanOutcome};
use quick_xml::events::{BytesStart, Event};
use std::io::{BufRead, BufReader, Read};

/// A `BufRead` that counts the newlines quick-xml has consumed so far.
struct NewlineCounter<R> {
    inner: BufReader<R>,
    consumed_newlines: u64,
    consumed_bytes: u64,
}

impl<R: Read> Read for NewlineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed_newlines += count_newlines(&buf[..n]);
        self.consumed_bytes += n as u64;
        Ok(n)
    }
}

impl<R: Read> BufRead for NewlineCounter<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        let amount = amount.min(self.inner.buffer().len());
        self.consumed_newlines += count_newlines(&self.inner.buffer()[..amount]);
        self.consumed_bytes += amount as u64;
        self.inner.consume(amount);
    }
}

/// Elements whose text is log output worth scanning.
fn is_output_element(name: &[u8]) -> bool {
    matches!(
        name,
        b"failure"
            | b"error"
            | b"system-out"
            | b"system-err"
            | b"rerunFailure"
            | b"flakyFailure"
            | b"rerunError"
            | b"flakyError"
    )
}

fn attribute(element: &BytesStart<'_>, wanted: &[u8]) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.as_ref() == wanted)
        .map(|a| match a.unescape_value() {
            Ok(value) => value.into_owned(),
            Err(_) => String::from_utf8_lossy(&a.value).into_owned(),
        })
}

fn test_name(element: &BytesStart<'_>) -> Option<String> {
    let name = attribute(element, b"name").filter(|n| !n.is_empty());
    let class = attribute(element, b"classname").filter(|c| !c.is_empty());
    match (class, name) {
        // jest-junit writes `classname="users starts with x" name="users starts with x"` (its
        // default classname template includes the title): never join a name to itself.
        (Some(class), Some(name)) if class.contains(name.as_str()) => Some(class),
        (Some(class), Some(name)) if name.starts_with(class.as_str()) => Some(name),
        (Some(class), Some(name)) => Some(format!("{class}.{name}")),
        (None, Some(name)) => Some(name),
        (Some(class), None) => Some(class),
        (None, None) => None,
    }
}

/// Scans a JUnit XML stream; problems go into `outcome` as warnings or a problem, never a panic.
pub fn scan<R: Read>(
    reader: R,
    collector: &mut Collector<'_>,
    input: usize,
    outcome: &mut ScanOutcome,
) {
    let counter = NewlineCounter {
        inner: BufReader::with_capacity(64 * 1024, reader),
        consumed_newlines: 0,
        consumed_bytes: 0,
    };
    let mut xml = quick_xml::Reader::from_reader(counter);
    xml.config_mut().trim_text(false);
    let mut event_buffer = Vec::new();
    // Open elements, to say where a truncated file stopped.
    let mut open: Vec<String> = Vec::new();
    let mut current_test: Option<String> = None;
    let mut output_depth = 0usize;
    let mut testcases = 0u64;
    loop {
        event_buffer.clear();
        let event = xml.read_event_into(&mut event_buffer);
        let line_after = xml.get_ref().consumed_newlines + 1;
        match event {
            Ok(Event::Start(element)) => {
                let name = element.name().as_ref().to_vec();
                let line = line_after.saturating_sub(count_newlines(&element)).max(1);
                open.push(String::from_utf8_lossy(&name).into_owned());
                if name == b"testcase" {
                    testcases += 1;
                    current_test = test_name(&element);
                } else if name == b"testsuites" {
                    // jest-junit and Vitest's reporter name the root after the runner.
                    match attribute(&element, b"name").as_deref() {
                        Some("jest tests") => collector.note_runner(input, "jest"),
                        Some("vitest tests") => collector.note_runner(input, "vitest"),
                        _ => {}
                    }
                } else if is_output_element(&name) {
                    output_depth += 1;
                    scan_message_attribute(
                        &element,
                        line,
                        collector,
                        input,
                        current_test.as_deref(),
                    );
                }
            }
            Ok(Event::Empty(element)) => {
                let name = element.name().as_ref().to_vec();
                let line = line_after.saturating_sub(count_newlines(&element)).max(1);
                if name == b"testcase" {
                    testcases += 1;
                } else if is_output_element(&name) {
                    scan_message_attribute(
                        &element,
                        line,
                        collector,
                        input,
                        current_test.as_deref(),
                    );
                }
            }
            Ok(Event::End(element)) => {
                let name = element.name().as_ref().to_vec();
                open.pop();
                if name == b"testcase" {
                    current_test = None;
                } else if is_output_element(&name) {
                    output_depth = output_depth.saturating_sub(1);
                }
            }
            Ok(Event::Text(text)) if output_depth > 0 => {
                let first_line = line_after.saturating_sub(count_newlines(&text)).max(1);
                let unescaped = match text.unescape() {
                    Ok(value) => value.into_owned().into_bytes(),
                    Err(_) => text.to_vec(),
                };
                scan_block(
                    &unescaped,
                    first_line,
                    collector,
                    input,
                    current_test.as_deref(),
                );
            }
            Ok(Event::CData(data)) if output_depth > 0 => {
                let first_line = line_after.saturating_sub(count_newlines(&data)).max(1);
                scan_block(&data, first_line, collector, input, current_test.as_deref());
            }
            Ok(Event::Eof) => {
                if let Some(inner) = open.last() {
                    outcome.warnings.push(format!(
                        "JUnit XML is truncated: it ends at line {} inside <{inner}> ({} element(s) still open); findings up to there are reported",
                        line_after,
                        open.len()
                    ));
                }
                break;
            }
            Ok(_) => {}
            Err(error) => {
                outcome.warnings.push(format!(
                    "JUnit XML is malformed or truncated at line {line_after}: {error}; findings up to there are reported"
                ));
                break;
            }
        }
    }
    let counter = xml.into_inner();
    outcome.bytes = counter.consumed_bytes;
    outcome.lines = counter.consumed_newlines + 1;
    if testcases == 0 {
        outcome
            .warnings
            .push("JUnit XML contains no <testcase> element".into());
    }
}

fn scan_message_attribute(
    element: &BytesStart<'_>,
    line: u64,
    collector: &mut Collector<'_>,
    input: usize,
    test: Option<&str>,
) {
    if let Some(message) = attribute(element, b"message") {
        scan_block(message.as_bytes(), line, collector, input, test);
    }
}
