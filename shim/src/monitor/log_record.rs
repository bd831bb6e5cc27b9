//! Log records: one JSON object per line of output, with its stream and the time the monitor
//! read it, e.g. `{"timestamp":"2025-01-01T10:00:00.123456789Z","stream":"stdout","text":"hi"}`.
//! A line longer than [`MAX_TEXT`] bytes is split into several records; all but the last carry
//! `"partial":true`, as does the last piece of output when a stream ends without a newline.
//! Text is UTF-8; invalid bytes become U+FFFD, and splits never cut a UTF-8 sequence.

use serde::{Deserialize, Serialize};

/// The most bytes of text one record carries.
pub const MAX_TEXT: usize = 16 * 1024;

/// Where a record's text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The container's standard output.
    Stdout,
    /// The container's standard error.
    Stderr,
    /// A note of the monitor itself (e.g. that lines were dropped because the disk was full).
    Monitor,
}

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// When the monitor read the text: RFC 3339 UTC with nanoseconds.
    pub timestamp: String,
    /// The stream.
    pub stream: Stream,
    /// The text, without its newline.
    pub text: String,
    /// The text does not end a line (a long line's piece, or a stream's last bytes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

#[derive(Serialize)]
struct Borrowed<'a> {
    timestamp: &'a str,
    stream: Stream,
    text: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    partial: bool,
}

/// The record's JSON line, newline included.
pub fn encode(timestamp: &str, stream: Stream, text: &[u8], partial: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let mut line = serde_json::to_vec(&Borrowed {
        timestamp,
        stream,
        text: &text,
        partial,
    })
    .expect("log record serializes");
    line.push(b'\n');
    line
}

/// How many leading bytes of `b` end on a UTF-8 sequence boundary (all of them unless the
/// last sequence is cut short).
fn utf8_boundary(b: &[u8]) -> usize {
    let n = b.len();
    for back in 1..=n.min(4) {
        let c = b[n - back];
        if c & 0xC0 == 0x80 {
            continue;
        }
        let need = match c {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if need > back { n - back } else { n };
    }
    n
}

/// Cuts a stream of bytes into record texts.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Adds `data`; calls `emit(text, partial)` for every complete line and every
    /// [`MAX_TEXT`]-sized piece of a longer one.
    pub fn feed(&mut self, data: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(i) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + i;
            pieces(&self.pending[start..end], true, &mut emit);
            start = end + 1;
        }
        while self.pending.len() - start >= MAX_TEXT {
            let cut = utf8_boundary(&self.pending[start..start + MAX_TEXT]).max(1);
            emit(&self.pending[start..start + cut], true);
            start += cut;
        }
        self.pending.drain(..start);
    }

    /// Emits what is left (output that did not end with a newline) as a partial record.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            pieces(&self.pending, false, &mut emit);
            self.pending.clear();
        }
    }
}

/// Emits a line in pieces of at most MAX_TEXT bytes; the last one is partial unless `ends`.
fn pieces(mut line: &[u8], ends: bool, emit: &mut impl FnMut(&[u8], bool)) {
    while line.len() > MAX_TEXT {
        let cut = utf8_boundary(&line[..MAX_TEXT]).max(1);
        emit(&line[..cut], true);
        line = &line[cut..];
    }
    emit(line, !ends);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |t, p| out.push((t.to_vec(), p)));
        }
        s.finish(|t, p| out.push((t.to_vec(), p)));
        out
    }

    #[test]
    fn lines_are_joined_across_reads_and_a_last_unterminated_line_is_partial() {
        let out = split(&[b"one\ntw", b"o\n\nthree"]);
        let want: Vec<(Vec<u8>, bool)> = vec![
            (b"one".to_vec(), false),
            (b"two".to_vec(), false),
            (b"".to_vec(), false),
            (b"three".to_vec(), true),
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn long_lines_are_split_on_utf8_boundaries() {
        // 'é' is two bytes; an odd offset makes MAX_TEXT fall inside one.
        let mut line = b"x".to_vec();
        line.extend("é".repeat(MAX_TEXT).as_bytes());
        line.push(b'\n');
        let out = split(&[&line]);
        assert!(out.len() > 2);
        let (last, rest) = out.split_last().unwrap();
        assert!(!last.1 && rest.iter().all(|(_, p)| *p));
        let mut joined: Vec<u8> = Vec::new();
        for (t, _) in &out {
            assert!(t.len() <= MAX_TEXT);
            assert!(std::str::from_utf8(t).is_ok(), "piece cut a character");
            joined.extend(t);
        }
        assert_eq!(joined, line[..line.len() - 1]);
    }

    #[test]
    fn records_are_one_json_line_and_invalid_utf8_is_replaced() {
        let line = encode("T", Stream::Stderr, b"a\"b\xff", false);
        assert_eq!(line.last(), Some(&b'\n'));
        let rec: LogRecord = serde_json::from_slice(&line).unwrap();
        assert_eq!(rec.stream, Stream::Stderr);
        assert_eq!(rec.text, "a\"b\u{fffd}");
        assert!(!rec.partial);
        assert!(!String::from_utf8(line).unwrap().contains("partial"));
    }
}
