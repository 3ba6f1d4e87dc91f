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

pub struct Printer<W: Write> {
    out: W,
    format: OutputFormat,
    colour: bool,
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

impl<W: Write> Printer<W> {
    pub fn new(out: W, format: OutputFormat, colour: bool) -> Self {
        Printer {
            out,
            format,
            colour,
            buf: Vec::with_capacity(4096),
        }
    }

    pub fn print(&mut self, e: &Entry<'_>) -> std::io::Result<()> {
        self.buf.clear();
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
                serde_json::to_writer(&mut self.buf, &j).map_err(std::io::Error::other)?;
            }
        }
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
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
        assert_eq!(p.out, b"web1 /var/log/a.log: GET /\n");
        let mut p = Printer::new(Vec::new(), OutputFormat::Text, true);
        p.print(&entry(b"x")).unwrap();
        assert!(p.out.starts_with(colour_of("web1").as_bytes()));
        let mut p = Printer::new(Vec::new(), OutputFormat::Json, false);
        p.print(&entry(b"GET /")).unwrap();
        p.print(&entry(b"\xff")).unwrap();
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
}
