//! Cutting bytes into lines. The framer sees the file as a sequence of chunks
//! at known offsets and emits each complete line as a slice of the chunk it
//! arrived in (no copy, no allocation) together with the offset just past its
//! newline: the position a checkpoint may safely name once the line is acked.
//!
//! Only an unterminated tail is copied, into a buffer capped at
//! `max_line_bytes`, so a 100 MB line costs at most that cap in memory.
//!
//! Packing (`pack_bytes`): consecutive whole lines of one chunk go out as
//! one [`Line`] of at most that many bytes, the lines still joined by their
//! newlines (the last one's left off, as for any line). The client
//! library's cost is per record, not per byte, so a pack of a few hundred
//! lines ships them for about the price of one; the bytes from `start` to
//! `end` are still exactly the file's, which is what a checkpoint and the
//! collector need.

use memchr::{memchr, memrchr};

/// What happens to a line longer than `max_line_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LongLinePolicy {
    /// Ship the first `max_line_bytes` bytes once, flagged truncated; drop
    /// the rest of the line.
    Truncate,
    /// Ship the line as consecutive pieces of at most `max_line_bytes`,
    /// each flagged truncated.
    Split,
}

/// One framed line. `bytes` excludes the newline (and a CR before it when CR
/// stripping is on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub bytes: &'a [u8],
    /// File offset of the line's first byte.
    pub start: u64,
    /// File offset just past this line (and its newline, if it had one):
    /// where reading resumes once this line is safely shipped.
    pub end: u64,
    /// The line exceeded `max_line_bytes` and `bytes` is only part of it.
    pub truncated: bool,
}

impl<'a> Line<'a> {
    /// This line as consecutive pieces of at most `max` bytes (at least 1),
    /// which concatenate to its bytes: each piece starts at the file offset
    /// of its first byte, every piece but the last ends where the next
    /// begins (mid-line, so a checkpoint there resumes with the next
    /// piece), and the last ends where the line did. A line that fits
    /// comes back unchanged as the only piece; pieces of a longer one are
    /// flagged truncated.
    ///
    /// The framer cuts over-long lines under [`LongLinePolicy::Split`] with
    /// it; a shipper that learns a record limit below `max_line_bytes` cuts
    /// a piece again with it instead of truncating it, so the line still
    /// arrives whole. Offsets are exact as long as `bytes` are the file's
    /// bytes from `start` on, as they are for any line the framer emits.
    pub fn pieces(self, max: usize) -> Pieces<'a> {
        Pieces {
            line: self,
            max: max.max(1),
            off: 0,
            done: false,
        }
    }
}

/// Iterator returned by [`Line::pieces`].
#[derive(Debug, Clone)]
pub struct Pieces<'a> {
    line: Line<'a>,
    max: usize,
    /// Bytes of the line already handed out.
    off: usize,
    done: bool,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        if self.done {
            return None;
        }
        let bytes = self.line.bytes;
        if bytes.len() <= self.max {
            self.done = true;
            return Some(self.line);
        }
        let start = self.line.start + self.off as u64;
        let piece = &bytes[self.off..(self.off + self.max).min(bytes.len())];
        self.off += piece.len();
        self.done = self.off == bytes.len();
        Some(Line {
            bytes: piece,
            start,
            end: if self.done {
                self.line.end
            } else {
                start + piece.len() as u64
            },
            truncated: true,
        })
    }
}

#[derive(Debug)]
pub struct LineFramer {
    max_line_bytes: usize,
    policy: LongLinePolicy,
    strip_cr: bool,
    /// Bytes of the current unterminated line, never more than
    /// `max_line_bytes`.
    partial: Vec<u8>,
    /// File offset where the current unterminated line began.
    partial_start: u64,
    /// File offset just past the last byte pushed.
    consumed: u64,
    /// Truncate policy: the current line already overflowed; its remaining
    /// bytes are dropped until the newline.
    overflowed: bool,
    /// Split policy: pieces of the current line were already emitted, so
    /// its remaining piece is flagged truncated too.
    split_open: bool,
    /// Whole lines of a chunk are emitted together up to this many bytes
    /// (0: one line each). Never above `max_line_bytes`, so a line inside
    /// a pack is one the long-line policy would have left whole.
    pack_bytes: usize,
}

impl LineFramer {
    /// A framer whose first pushed byte is at file offset `start`.
    pub fn new(start: u64, max_line_bytes: usize, policy: LongLinePolicy, strip_cr: bool) -> Self {
        LineFramer {
            max_line_bytes: max_line_bytes.max(1),
            policy,
            strip_cr,
            partial: Vec::new(),
            partial_start: start,
            consumed: start,
            overflowed: false,
            split_open: false,
            pack_bytes: 0,
        }
    }

    /// This framer, emitting whole lines together up to `pack_bytes`
    /// (0: one line each). Packing is off where stripping CRs, which a
    /// pack could not do inside itself.
    pub fn packing(mut self, pack_bytes: usize) -> LineFramer {
        self.pack_bytes = match self.strip_cr {
            true => 0,
            false => pack_bytes.min(self.max_line_bytes),
        };
        self
    }

    /// A framer with the same settings, empty, starting at `offset`.
    pub fn restarted_at(&self, offset: u64) -> LineFramer {
        LineFramer::new(offset, self.max_line_bytes, self.policy, self.strip_cr)
            .packing(self.pack_bytes)
    }

    /// File offset just past the last byte pushed.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Bytes waiting for their newline.
    pub fn pending(&self) -> usize {
        if self.overflowed {
            (self.consumed - self.partial_start) as usize
        } else {
            self.partial.len()
        }
    }

    /// Forget any partial line and continue at `offset` (after truncation).
    pub fn reset(&mut self, offset: u64) {
        self.partial.clear();
        self.partial_start = offset;
        self.consumed = offset;
        self.overflowed = false;
        self.split_open = false;
    }

    /// Feed the bytes that follow [`consumed`](Self::consumed) in the file.
    pub fn push<F: FnMut(Line<'_>)>(&mut self, chunk: &[u8], mut emit: F) {
        let base = self.consumed;
        let mut i = 0;
        while i < chunk.len() {
            if self.pack_bytes > 0 && self.partial.is_empty() && !self.overflowed {
                if let Some(next) = self.emit_pack(chunk, i, base, &mut emit) {
                    i = next;
                    continue;
                }
            }
            let Some(rel) = memchr(b'\n', &chunk[i..]) else {
                self.append_partial(&chunk[i..], base + i as u64, &mut emit);
                break;
            };
            let nl = i + rel;
            let end = base + nl as u64 + 1;
            if self.partial.is_empty() && !self.overflowed {
                // Hot path: the whole line lies inside this chunk.
                self.emit_whole(&chunk[i..nl], base + i as u64, end, &mut emit);
            } else {
                self.append_partial(&chunk[i..nl], base + i as u64, &mut emit);
                self.finish_partial(end, &mut emit);
            }
            i = nl + 1;
        }
        self.consumed = base + chunk.len() as u64;
    }

    /// Emit the unterminated tail as a line of its own (idle flush, or a
    /// deleted file that can never complete it). No-op when nothing waits.
    pub fn flush_partial<F: FnMut(Line<'_>)>(&mut self, mut emit: F) {
        if self.partial.is_empty() && !self.overflowed {
            self.partial_start = self.consumed;
            return;
        }
        let end = self.consumed;
        self.finish_partial(end, &mut emit);
    }

    fn strip<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        match line.last() {
            Some(b'\r') if self.strip_cr => &line[..line.len() - 1],
            _ => line,
        }
    }

    /// Emit the whole lines of `chunk[i..]` that fit in `pack_bytes` (with
    /// their newlines) as one line; the index after the last newline taken,
    /// or None when not even one line fits (then it is framed alone).
    fn emit_pack<F: FnMut(Line<'_>)>(
        &mut self,
        chunk: &[u8],
        i: usize,
        base: u64,
        emit: &mut F,
    ) -> Option<usize> {
        let window = &chunk[i..chunk.len().min(i + self.pack_bytes)];
        let nl = i + memrchr(b'\n', window)?;
        let start = base + i as u64;
        let end = base + nl as u64 + 1;
        emit(Line {
            bytes: &chunk[i..nl],
            start,
            end,
            truncated: false,
        });
        self.partial_start = end;
        Some(nl + 1)
    }

    fn emit_whole<F: FnMut(Line<'_>)>(&mut self, line: &[u8], start: u64, end: u64, emit: &mut F) {
        let max = self.max_line_bytes;
        if line.len() <= max {
            emit(Line {
                bytes: self.strip(line),
                start,
                end,
                truncated: false,
            });
            self.partial_start = end;
            return;
        }
        match self.policy {
            LongLinePolicy::Truncate => emit(Line {
                bytes: &line[..max],
                start,
                end,
                truncated: true,
            }),
            LongLinePolicy::Split => {
                // The last piece owns the newline, so its end resumes after
                // it; earlier pieces end mid-line.
                let whole = Line {
                    bytes: line,
                    start,
                    end,
                    truncated: true,
                };
                whole.pieces(max).for_each(&mut *emit);
            }
        }
        self.partial_start = end;
    }

    /// Add bytes of the current unterminated line, obeying the cap.
    fn append_partial<F: FnMut(Line<'_>)>(&mut self, mut seg: &[u8], seg_start: u64, emit: &mut F) {
        if self.partial.is_empty() && !self.overflowed {
            self.partial_start = seg_start;
        }
        let max = self.max_line_bytes;
        while !seg.is_empty() {
            if self.overflowed {
                return; // Truncate policy: drop until the newline.
            }
            let room = max - self.partial.len();
            if seg.len() <= room {
                self.partial.extend_from_slice(seg);
                return;
            }
            self.partial.extend_from_slice(&seg[..room]);
            seg = &seg[room..];
            match self.policy {
                LongLinePolicy::Truncate => self.overflowed = true,
                LongLinePolicy::Split => {
                    let piece_end = self.partial_start + self.partial.len() as u64;
                    emit(Line {
                        bytes: &self.partial,
                        start: self.partial_start,
                        end: piece_end,
                        truncated: true,
                    });
                    self.partial.clear();
                    self.partial_start = piece_end;
                    self.split_open = true;
                }
            }
        }
    }

    fn finish_partial<F: FnMut(Line<'_>)>(&mut self, end: u64, emit: &mut F) {
        // A Split piece is only emitted once bytes beyond the cap arrive, so
        // the final piece is always non-empty here and owns the newline.
        let truncated = self.overflowed || self.split_open;
        let bytes: &[u8] = if truncated {
            &self.partial
        } else {
            self.strip(&self.partial)
        };
        emit(Line {
            bytes,
            start: self.partial_start,
            end,
            truncated,
        });
        self.partial.clear();
        self.overflowed = false;
        self.split_open = false;
        self.partial_start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (bytes, start, end, truncated) of every line `push`ed in `chunks`.
    fn frame(f: &mut LineFramer, chunks: &[&[u8]]) -> Vec<(Vec<u8>, u64, u64, bool)> {
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, |l| {
                out.push((l.bytes.to_vec(), l.start, l.end, l.truncated))
            });
        }
        out
    }

    #[test]
    fn complete_lines_with_offsets_and_partial_waits() {
        let mut f = LineFramer::new(100, 1000, LongLinePolicy::Truncate, false);
        let got = frame(&mut f, &[b"ab\ncd", b"e\nfg"]);
        assert_eq!(
            got,
            vec![
                (b"ab".to_vec(), 100, 103, false),
                (b"cde".to_vec(), 103, 107, false)
            ]
        );
        assert_eq!(f.pending(), 2, "fg waits for its newline");
        assert_eq!(f.consumed(), 109);
        // Completed later: emitted once, whole.
        let got = frame(&mut f, &[b"h\n"]);
        assert_eq!(got, vec![(b"fgh".to_vec(), 107, 111, false)]);
    }

    #[test]
    fn whole_lines_of_a_chunk_are_packed_up_to_the_limit() {
        let mut f = LineFramer::new(10, 1000, LongLinePolicy::Truncate, false).packing(8);
        let got = frame(&mut f, &[b"ab\ncd\nef\ngh", b"i\n"]);
        assert_eq!(
            got,
            vec![
                // "ab\ncd\nef\n" is 9 bytes: over 8, so the pack stops at cd.
                (b"ab\ncd".to_vec(), 10, 16, false),
                (b"ef".to_vec(), 16, 19, false),
                // A line begun in one chunk and ended in the next goes alone.
                (b"ghi".to_vec(), 19, 23, false),
            ]
        );
        // Restarted (after a cut), the framer still packs.
        let mut f = f.restarted_at(0);
        assert_eq!(
            frame(&mut f, &[b"x\ny\n"]),
            vec![(b"x\ny".to_vec(), 0, 4, false)]
        );
    }

    #[test]
    fn no_packs_where_carriage_returns_are_stripped() {
        let mut f = LineFramer::new(0, 1000, LongLinePolicy::Truncate, true).packing(64);
        let got = frame(&mut f, &[b"a\r\nb\r\n"]);
        assert_eq!(
            got,
            vec![(b"a".to_vec(), 0, 3, false), (b"b".to_vec(), 3, 6, false)]
        );
    }

    #[test]
    fn idle_flush_emits_the_unterminated_tail_once() {
        let mut f = LineFramer::new(0, 1000, LongLinePolicy::Truncate, false);
        frame(&mut f, &[b"a\nlast"]);
        let mut out = Vec::new();
        f.flush_partial(|l| out.push((l.bytes.to_vec(), l.start, l.end)));
        f.flush_partial(|l| out.push((l.bytes.to_vec(), l.start, l.end)));
        assert_eq!(out, vec![(b"last".to_vec(), 2, 6)]);
    }

    #[test]
    fn long_line_truncate_keeps_memory_bounded_and_goes_on() {
        let mut f = LineFramer::new(0, 4, LongLinePolicy::Truncate, false);
        let big = vec![b'x'; 1 << 20];
        let mut got = frame(&mut f, &[b"0123456789", &big, b"\nok\n"]);
        assert!(f.partial.capacity() < 64, "buffer stayed near the cap");
        got.iter_mut().for_each(|g| g.0.truncate(8));
        let end = 10 + (1 << 20) + 1;
        assert_eq!(
            got,
            vec![
                (b"0123".to_vec(), 0, end, true),
                (b"ok".to_vec(), end, end + 3, false)
            ]
        );
    }

    #[test]
    fn long_line_split_into_pieces_that_cover_it() {
        let mut f = LineFramer::new(0, 4, LongLinePolicy::Split, false);
        let got = frame(&mut f, &[b"abcdefghij\nxy\n"]);
        assert_eq!(
            got,
            vec![
                (b"abcd".to_vec(), 0, 4, true),
                (b"efgh".to_vec(), 4, 8, true),
                (b"ij".to_vec(), 8, 11, true),
                (b"xy".to_vec(), 11, 14, false),
            ]
        );
        // Across chunk boundaries, a line of exactly the cap is not split.
        let mut f = LineFramer::new(0, 4, LongLinePolicy::Split, false);
        let got = frame(&mut f, &[b"ab", b"cd", b"\n"]);
        assert_eq!(got, vec![(b"abcd".to_vec(), 0, 5, false)]);
    }

    #[test]
    fn bytes_are_exact_and_crlf_is_optional() {
        let mut f = LineFramer::new(0, 100, LongLinePolicy::Truncate, false);
        let got = frame(&mut f, &[b"\xff\xfe\x00bin\r\n"]);
        assert_eq!(got[0].0, b"\xff\xfe\x00bin\r");
        let mut f = LineFramer::new(0, 100, LongLinePolicy::Truncate, true);
        let got = frame(&mut f, &[b"win\r\n", b"\r\n"]);
        assert_eq!(got[0].0, b"win");
        assert_eq!(got[1].0, b"");
        assert_eq!(got[1].2, 7);
    }

    /// Check that `pieces` (start, end, bytes) cover `line` exactly: they
    /// concatenate to it, start where it starts, each begins where the
    /// previous ended, the last ends at `end`, and none is over `max`.
    fn assert_cover(
        pieces: &[(Vec<u8>, u64, u64, bool)],
        line: &[u8],
        start: u64,
        end: u64,
        max: usize,
    ) {
        let joined: Vec<u8> = pieces.iter().flat_map(|p| p.0.iter().copied()).collect();
        assert!(joined == line, "pieces do not concatenate to the line");
        let mut at = start;
        for (i, (bytes, s, e, truncated)) in pieces.iter().enumerate() {
            assert_eq!(*s, at, "piece {i} starts after a gap or overlap");
            assert!(
                bytes.len() <= max,
                "piece {i} has {} bytes > {max}",
                bytes.len()
            );
            assert_eq!(*truncated, line.len() > max, "piece {i} flag");
            let last = i + 1 == pieces.len();
            assert_eq!(*e, if last { end } else { s + bytes.len() as u64 });
            at = *e;
        }
    }

    #[test]
    fn split_pieces_of_a_two_megabyte_line_carry_all_of_it() {
        let max = 1_000_000;
        let line: Vec<u8> = (0..2_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut data = line.clone();
        data.extend_from_slice(b"\nnext\n");
        let end = line.len() as u64 + 1;
        // Whole in one chunk, and in the reader's 64 KiB reads.
        for chunk in [data.len(), 64 * 1024] {
            let mut f = LineFramer::new(0, max, LongLinePolicy::Split, false);
            let chunks: Vec<&[u8]> = data.chunks(chunk).collect();
            let got = frame(&mut f, &chunks);
            assert_eq!(got.len(), 3, "two pieces and the next line");
            assert_cover(&got[..2], &line, 0, end, max);
            assert_eq!(got[2], (b"next".to_vec(), end, end + 5, false));
            // A shipper that learns a smaller record limit cuts each piece
            // again, and the line is still all there.
            let mut again = Vec::new();
            for (bytes, start, end, truncated) in &got[..2] {
                let piece = Line {
                    bytes,
                    start: *start,
                    end: *end,
                    truncated: *truncated,
                };
                again.extend(
                    piece
                        .pieces(750_000)
                        .map(|l| (l.bytes.to_vec(), l.start, l.end, l.truncated)),
                );
            }
            assert_eq!(again.len(), 4);
            assert_cover(&again, &line, 0, end, 750_000);
        }
    }

    #[test]
    fn a_line_that_fits_is_its_only_piece() {
        for bytes in [&b""[..], b"abc"] {
            let line = Line {
                bytes,
                start: 7,
                end: 11,
                truncated: false,
            };
            assert_eq!(line.pieces(3).collect::<Vec<_>>(), [line]);
        }
        // A zero limit is taken as 1, never an endless run of empty pieces.
        let line = Line {
            bytes: b"ab",
            start: 0,
            end: 3,
            truncated: false,
        };
        let got: Vec<_> = line.pieces(0).map(|l| (l.bytes, l.start, l.end)).collect();
        assert_eq!(got, [(&b"a"[..], 0, 1), (&b"b"[..], 1, 3)]);
    }

    proptest! {
        /// Under Split, however the bytes are cut into chunks, the pieces of
        /// each line concatenate to it, none is over the limit, and offsets
        /// run on without gap; cutting a piece again keeps all of it.
        #[test]
        fn split_pieces_cover_every_line(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..10),
            max in 1usize..12,
            again in 1usize..12,
        ) {
            let mut lines = Vec::new();
            let mut start = 0;
            for (i, b) in data.iter().enumerate() {
                if *b == b'\n' {
                    lines.push((start, i, i as u64 + 1));
                    start = i + 1;
                }
            }
            if start < data.len() {
                // The unterminated tail, emitted by the final flush.
                lines.push((start, data.len(), data.len() as u64));
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                chunks.push(&data[prev..c]);
                prev = c;
            }
            let mut f = LineFramer::new(0, max, LongLinePolicy::Split, false);
            let mut got = frame(&mut f, &chunks);
            f.flush_partial(|l| got.push((l.bytes.to_vec(), l.start, l.end, l.truncated)));
            let mut rest = &got[..];
            for (s, e, end) in lines {
                let n = rest.iter().position(|p| p.2 == end).expect("a piece ends the line") + 1;
                assert_cover(&rest[..n], &data[s..e], s as u64, end, max);
                for (bytes, start, end, truncated) in &rest[..n] {
                    let piece = Line { bytes, start: *start, end: *end, truncated: *truncated };
                    let recut: Vec<_> = piece
                        .pieces(again)
                        .map(|l| (l.bytes.to_vec(), l.start, l.end, l.truncated || *truncated))
                        .collect();
                    let joined: Vec<u8> = recut.iter().flat_map(|p| p.0.clone()).collect();
                    prop_assert_eq!(&joined, bytes);
                    prop_assert_eq!(recut.first().map(|p| p.1), Some(*start));
                    prop_assert_eq!(recut.last().map(|p| p.2), Some(*end));
                    prop_assert!(recut.windows(2).all(|w| w[0].2 == w[1].1));
                    prop_assert!(recut.iter().all(|p| p.0.len() <= again.max(1)));
                }
                rest = &rest[n..];
            }
            prop_assert!(rest.is_empty(), "pieces beyond the last line: {:?}", rest);
        }

        /// However the bytes are cut into chunks, the lines and offsets are
        /// those of a plain split on newlines.
        #[test]
        fn chunking_never_changes_lines(data in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..400), cuts in proptest::collection::vec(0usize..400, 0..10)) {
            let mut expected = Vec::new();
            let mut start = 0u64;
            for (i, b) in data.iter().enumerate() {
                if *b == b'\n' {
                    expected.push((data[start as usize..i].to_vec(), start, i as u64 + 1, false));
                    start = i as u64 + 1;
                }
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                chunks.push(&data[prev..c]);
                prev = c;
            }
            let mut f = LineFramer::new(0, 1 << 20, LongLinePolicy::Truncate, false);
            prop_assert_eq!(frame(&mut f, &chunks), expected);
            prop_assert_eq!(f.pending() as u64, data.len() as u64 - start);
        }

        /// Packing changes how lines are grouped, never the lines: each
        /// pack, split at its newlines, is the run of lines the framer
        /// emits without packing (offsets included), whatever the chunks,
        /// the long-line limit and policy; and no pack is over its size.
        #[test]
        fn packs_are_runs_of_the_unpacked_lines(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\n'), any::<u8>()], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..10),
            max in 1usize..30,
            pack in 1usize..60,
            split: bool,
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                chunks.push(&data[prev..c]);
                prev = c;
            }
            let policy = if split { LongLinePolicy::Split } else { LongLinePolicy::Truncate };
            let mut plain = LineFramer::new(0, max, policy, false);
            let mut expected = frame(&mut plain, &chunks);
            plain.flush_partial(|l| expected.push((l.bytes.to_vec(), l.start, l.end, l.truncated)));
            let mut packer = LineFramer::new(0, max, policy, false).packing(pack);
            let mut packs = frame(&mut packer, &chunks);
            packer.flush_partial(|l| packs.push((l.bytes.to_vec(), l.start, l.end, l.truncated)));
            let mut unpacked = Vec::new();
            for (bytes, start, end, truncated) in packs {
                if truncated {
                    unpacked.push((bytes, start, end, truncated));
                    continue;
                }
                let parts: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
                prop_assert!(parts.len() == 1 || bytes.len() < pack.min(max), "a pack of {} bytes", bytes.len());
                let mut at = start;
                for (k, part) in parts.iter().enumerate() {
                    let last = k + 1 == parts.len();
                    let part_end = if last { end } else { at + part.len() as u64 + 1 };
                    unpacked.push((part.to_vec(), at, part_end, false));
                    at = part_end;
                }
            }
            prop_assert_eq!(unpacked, expected);
        }
    }
}
