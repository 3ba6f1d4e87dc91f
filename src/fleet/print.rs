//! How a line of the fleet is shown: `HOST PATH: line` (the host in a
//! colour of its own on a terminal, so one server's lines stand out), or
//! one JSON object a line for scripts. The line's bytes are written as
//! they are in text; in JSON a line that is not UTF-8 goes as base64
//! (`"encoding": "base64"`, as the agent's JSON envelope does).

use std::io::Write;

use base64::Engine;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// One line and where it came from.
pub struct Entry<'a> {
    pub host: &'a str,
    pub path: &'a [u8],
    /// Hex, as in the collector's index; None for records without one.
    pub generation: Option<&'a str>,
    pub offset: Option<u64>,
    /// When the agent read the line (the record timestamp), Unix ms.
    pub timestamp_ms: Option<i64>,
    pub line: &'a [u8],
}

/// ANSI colours for hosts, picked by a hash of the name so a host keeps its
/// colour from one run to the next.
const COLOURS: [&str; 6] = [
    "\x1b[32m", "\x1b[33m", "\x1b[34m", "\x1b[35m", "\x1b[36m", "\x1b[31m",
];
const RESET: &str = "\x1b[0m";

/// Printed lines are gathered up to this many bytes before they go to the
/// writer: one `write` per few thousand lines rather than a copy and a
/// buffer check per line.
const WRITE_AT: usize = 256 << 10;

pub struct Printer<W: Write> {
    out: W,
    format: OutputFormat,
    colour: bool,
    /// Whole lines not yet handed to `out` (written by [`Printer::flush`]
    /// or once [`WRITE_AT`] bytes are waiting).
    buf: Vec<u8>,
}

fn colour_of(host: &str) -> &'static str {
    // FNV-1a: stable across runs and builds, unlike the std hasher.
    let h = host.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    COLOURS[(h % COLOURS.len() as u64) as usize]
}

#[derive(serde::Serialize)]
struct JsonLine<'a> {
    host: &'a str,
    path: std::borrow::Cow<'a, str>,
    generation: Option<&'a str>,
    offset: Option<u64>,
    timestamp: Option<String>,
    line: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
}

/// The printer `tail` and `merge` write with: standard output, buffered,
/// coloured only when it is a terminal and the format is text.
pub fn to_stdout(
    format: OutputFormat,
) -> Printer<std::io::BufWriter<std::io::StdoutLock<'static>>> {
    use std::io::IsTerminal;
    let stdout = std::io::stdout();
    let colour = format == OutputFormat::Text && stdout.is_terminal();
    Printer::new(
        std::io::BufWriter::with_capacity(64 << 10, stdout.lock()),
        format,
        colour,
    )
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, format: OutputFormat, colour: bool) -> Self {
        Printer {
            out,
            format,
            colour,
            buf: Vec::with_capacity(WRITE_AT + (64 << 10)),
        }
    }

    /// Whether entries need their generation, offset and timestamp (JSON);
    /// text shows only host, path and line, so a caller can skip the rest.
    pub fn wants_details(&self) -> bool {
        self.format == OutputFormat::Json
    }

    pub fn print(&mut self, e: &Entry<'_>) -> std::io::Result<()> {
        let start = self.buf.len();
        match self.format {
            OutputFormat::Text => {
                if self.colour {
                    self.buf.extend_from_slice(colour_of(e.host).as_bytes());
                }
                self.buf.extend_from_slice(e.host.as_bytes());
                if self.colour {
                    self.buf.extend_from_slice(RESET.as_bytes());
                }
                self.buf.push(b' ');
                self.buf.extend_from_slice(e.path);
                self.buf.extend_from_slice(b": ");
                self.buf.extend_from_slice(e.line);
            }
            OutputFormat::Json => {
                let (line, encoding) = match std::str::from_utf8(e.line) {
                    Ok(s) => (s.into(), None),
                    Err(_) => (
                        base64::engine::general_purpose::STANDARD
                            .encode(e.line)
                            .into(),
                        Some("base64"),
                    ),
                };
                let j = JsonLine {
                    host: e.host,
                    path: String::from_utf8_lossy(e.path),
                    generation: e.generation,
                    offset: e.offset,
                    timestamp: e.timestamp_ms.map(super::time::format_ms),
                    line,
                    encoding,
                };
                if let Err(err) = serde_json::to_writer(&mut self.buf, &j) {
                    self.buf.truncate(start);
                    return Err(std::io::Error::other(err));
                }
            }
        }
        self.buf.push(b'\n');
        if self.buf.len() >= WRITE_AT {
            self.write_buffered()?;
        }
        Ok(())
    }

    /// Hand every printed line to the writer and flush it.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.write_buffered()?;
        self.out.flush()
    }

    fn write_buffered(&mut self) -> std::io::Result<()> {
        let r = self.out.write_all(&self.buf);
        self.buf.clear();
        r
    }
}

/// Whether a write failed because the reader went away (`| head`): a
/// normal end for a viewer, not an error.
pub fn is_closed_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: &[u8]) -> Entry<'_> {
        Entry {
            host: "web1",
            path: b"/var/log/a.log",
            generation: Some("00000000000000ff"),
            offset: Some(7),
            timestamp_ms: Some(1_764_064_800_250),
            line,
        }
    }

    #[test]
    fn text_and_json() {
        let mut p = Printer::new(Vec::new(), OutputFormat::Text, false);
        p.print(&entry(b"GET /")).unwrap();
        p.flush().unwrap();
        assert_eq!(p.out, b"web1 /var/log/a.log: GET /\n");
        let mut p = Printer::new(Vec::new(), OutputFormat::Text, true);
        p.print(&entry(b"x")).unwrap();
        p.flush().unwrap();
        assert!(p.out.starts_with(colour_of("web1").as_bytes()));
        let mut p = Printer::new(Vec::new(), OutputFormat::Json, false);
        p.print(&entry(b"GET /")).unwrap();
        p.print(&entry(b"\xff")).unwrap();
        p.flush().unwrap();
        let text = String::from_utf8(p.out).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows[0]["timestamp"], "2025-11-25T10:00:00.250Z");
        assert_eq!(rows[0]["line"], "GET /");
        assert_eq!(rows[0]["offset"], 7);
        assert_eq!(rows[1]["encoding"], "base64");
        assert_eq!(rows[1]["line"], "/w==");
    }

    /// Lines wait in the printer until a flush or until enough of them
    /// make one big write, and then go whole and in order.
    #[test]
    fn lines_are_written_in_big_pieces_and_on_flush() {
        let mut p = Printer::new(Vec::new(), OutputFormat::Text, false);
        p.print(&entry(b"first")).unwrap();
        assert!(p.out.is_empty(), "written before a flush");
        let line = vec![b'x'; 1000];
        while p.out.is_empty() {
            p.print(&entry(&line)).unwrap();
        }
        assert!(p.out.len() >= WRITE_AT);
        assert!(p.out.ends_with(b"\n") && p.out.starts_with(b"web1 /var/log/a.log: first\n"));
        p.print(&entry(b"last")).unwrap();
        p.flush().unwrap();
        assert!(p.out.ends_with(b"xxx\nweb1 /var/log/a.log: last\n"));
        assert!(p.buf.is_empty());
    }
}
