//! The floor: what framing lines into compressed Kafka record batches, and
//! parsing such batches back into lines, costs on this hardware with no
//! client library at all. A measurement to hold logferry (and any
//! librdkafka-based shipper or collector) against, not a second client:
//! no network, no broker, no acknowledgements, one thread.
//!
//! - `floor/frame_and_batch`: find the lines of a buffer (`memchr`), give
//!   each the key-form source attribution logferry ships by default
//!   (partitioning key `HOST/GENERATION`, host, path, generation, inode,
//!   offset), lay them out as records of a v2 record batch (varints, no
//!   headers), compress each batch's records with LZ4 (frame format, as
//!   Kafka's lz4 codec), and write the batch header with its CRC-32C.
//! - `floor/parse_to_lines`: check each batch's CRC-32C, decompress it,
//!   walk its records, decode each key's attribution, and copy the line
//!   and its newline to the line's source offset in an output buffer (what
//!   the collector does with `pwrite`, in memory).
//!
//! The data is the benchmark's access-log lines (about 115 bytes each, as
//! `bench/collect` writes), 32 MiB. Before criterion's runs, each is
//! timed on the thread's CPU clock and printed as CPU-s per GB of source
//! (criterion's wall-clock throughput is 1 / that on an idle machine).
//!
//! `cargo bench --bench floor`

use std::io::{Read, Write};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use logferry::wire::{decode_source_ref, encode_source_key, generation_partition_key, source_tail};
use logferry_tail::{FileId, GenerationId};

/// Uncompressed records per batch before it is closed: librdkafka's
/// default `batch.size` (1,000,000 bytes).
const BATCH_BYTES: usize = 1_000_000;
/// Kafka's attribute bits for LZ4 compression.
const LZ4: i16 = 3;
/// Bytes of a v2 batch header up to and including the record count.
const HEADER: usize = 61;
/// Offset of the CRC within the header, and of what it covers.
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;

const HOST: &str = "bench";
const PATH: &[u8] = b"/tmp/src/access.log";
const GENERATION: GenerationId = GenerationId(0x5eed_0123_4567_89ab);
const FILE: FileId = FileId {
    dev: 2049,
    ino: 1_234_567,
};

fn source(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 200);
    let mut i = 0u64;
    while out.len() < bytes {
        writeln!(
            out,
            "{i:09} 198.51.100.{} - - [24/Nov/2026:10:00:00 +0000] \"GET /api/items/{} HTTP/1.1\" 200 {} \"-\" \"curl/8.5\"",
            i % 250,
            i * 7,
            i % 5000
        )
        .expect("in memory");
        i += 1;
    }
    out
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> i64 {
    let mut z = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*at];
        *at += 1;
        z |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// CRC-32C (Castagnoli), with the SSE 4.2 instruction where there is one,
/// as Kafka clients use it.
fn crc32c(data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the instruction set was detected just above.
        return unsafe { crc32c_sse42(data) };
    }
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & 0u32.wrapping_sub(crc & 1));
        }
    }
    !crc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn crc32c_sse42(data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut crc = !0u64;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        crc = _mm_crc32_u64(crc, u64::from_le_bytes(w.try_into().expect("8 bytes")));
    }
    let mut crc = crc as u32;
    for &b in words.remainder() {
        crc = _mm_crc32_u8(crc, b);
    }
    !crc
}

/// Builds record batches the way a producer does, into `out`.
struct Batcher {
    records: Vec<u8>,
    count: i32,
    record: Vec<u8>,
    key: Vec<u8>,
    compressed: Vec<u8>,
}

impl Batcher {
    fn new() -> Self {
        Batcher {
            records: Vec::with_capacity(BATCH_BYTES + 4096),
            count: 0,
            record: Vec::with_capacity(512),
            key: Vec::with_capacity(128),
            compressed: Vec::with_capacity(BATCH_BYTES),
        }
    }

    fn add(&mut self, key: &[u8], value: &[u8], out: &mut Vec<u8>) {
        let r = &mut self.record;
        r.clear();
        r.push(0); // attributes
        put_varint(r, 0); // timestamp delta
        put_varint(r, i64::from(self.count)); // offset delta
        put_varint(r, key.len() as i64);
        r.extend_from_slice(key);
        put_varint(r, value.len() as i64);
        r.extend_from_slice(value);
        put_varint(r, 0); // headers
        put_varint(&mut self.records, r.len() as i64);
        self.records.extend_from_slice(r);
        self.count += 1;
        if self.records.len() >= BATCH_BYTES {
            self.close(out);
        }
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.count == 0 {
            return;
        }
        self.compressed.clear();
        let mut enc = lz4_flex::frame::FrameEncoder::new(&mut self.compressed);
        enc.write_all(&self.records).expect("in memory");
        enc.finish().expect("in memory");
        let start = out.len();
        out.extend_from_slice(&0i64.to_be_bytes()); // base offset
        let length = (HEADER - 12 + self.compressed.len()) as i32;
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes()); // leader epoch
        out.push(2); // magic
        out.extend_from_slice(&0u32.to_be_bytes()); // crc, below
        out.extend_from_slice(&LZ4.to_be_bytes());
        out.extend_from_slice(&(self.count - 1).to_be_bytes());
        out.extend_from_slice(&1_790_000_000_000i64.to_be_bytes()); // first timestamp
        out.extend_from_slice(&1_790_000_000_000i64.to_be_bytes()); // max timestamp
        out.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
        out.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.compressed);
        let crc = crc32c(&out[start + CRC_FROM..]);
        out[start + CRC_AT..start + CRC_FROM].copy_from_slice(&crc.to_be_bytes());
        self.records.clear();
        self.count = 0;
    }
}

/// Frame `src` into lines and ship them as record batches into `out`.
fn frame_and_batch(src: &[u8], b: &mut Batcher, out: &mut Vec<u8>) {
    out.clear();
    let tail = source_tail(HOST, PATH);
    let pkey = generation_partition_key(HOST, GENERATION);
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', src) {
        let mut key = std::mem::take(&mut b.key);
        encode_source_key(
            &mut key,
            &pkey,
            GENERATION,
            FILE,
            start as u64,
            false,
            &tail,
        );
        b.add(&key, &src[start..nl], out);
        b.key = key;
        start = nl + 1;
    }
    b.close(out);
}

/// Parse the batches in `wire` and put every line at its source offset in
/// `file`; returns how many lines.
fn parse_to_lines(wire: &[u8], records: &mut Vec<u8>, file: &mut [u8]) -> usize {
    let mut lines = 0;
    let mut at = 0;
    while at < wire.len() {
        let length = i32::from_be_bytes(wire[at + 8..at + 12].try_into().expect("4")) as usize;
        let batch = &wire[at..at + 12 + length];
        at += 12 + length;
        let crc = u32::from_be_bytes(batch[CRC_AT..CRC_FROM].try_into().expect("4"));
        assert_eq!(crc, crc32c(&batch[CRC_FROM..]), "batch CRC");
        let attributes = i16::from_be_bytes(batch[CRC_FROM..CRC_FROM + 2].try_into().expect("2"));
        assert_eq!(attributes & 7, LZ4);
        let count = i32::from_be_bytes(batch[HEADER - 4..HEADER].try_into().expect("4"));
        records.clear();
        lz4_flex::frame::FrameDecoder::new(&batch[HEADER..])
            .read_to_end(records)
            .expect("lz4 frame");
        let mut p = 0;
        for _ in 0..count {
            let len = get_varint(records, &mut p) as usize;
            let end = p + len;
            p += 1; // attributes
            get_varint(records, &mut p); // timestamp delta
            get_varint(records, &mut p); // offset delta
            let klen = get_varint(records, &mut p) as usize;
            let key = &records[p..p + klen];
            p += klen;
            let vlen = get_varint(records, &mut p) as usize;
            let value = &records[p..p + vlen];
            let src = decode_source_ref(key).expect("attribution");
            let o = src.offset as usize;
            file[o..o + vlen].copy_from_slice(value);
            file[o + vlen] = b'\n';
            lines += 1;
            p = end;
        }
    }
    lines
}

fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out pointer; this clock exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn floor(c: &mut Criterion) {
    let src = source(32 << 20);
    let mut batcher = Batcher::new();
    let mut wire = Vec::with_capacity(src.len());
    frame_and_batch(&src, &mut batcher, &mut wire);
    let mut records = Vec::with_capacity(2 * BATCH_BYTES);
    let mut file = vec![0u8; src.len()];
    parse_to_lines(&wire, &mut records, &mut file);
    assert!(file == src, "the lines parsed back are the source");
    eprintln!(
        "floor: {} source bytes in {} wire bytes ({:.2} of the source)",
        src.len(),
        wire.len(),
        wire.len() as f64 / src.len() as f64
    );

    // CPU time of this thread, besides criterion's wall time: on a
    // machine shared with other work the wall time says little.
    let runs = 5;
    let cpu = |f: &mut dyn FnMut()| {
        let start = thread_cpu_secs();
        for _ in 0..runs {
            f();
        }
        (thread_cpu_secs() - start) / f64::from(runs)
    };
    let gb = src.len() as f64 / 1e9;
    let mut out = Vec::with_capacity(wire.len());
    let encode = cpu(&mut || frame_and_batch(&src, &mut batcher, &mut out));
    let decode = cpu(&mut || {
        parse_to_lines(&wire, &mut records, &mut file);
    });
    eprintln!(
        "floor: thread CPU per GB of source ({runs} runs): frame_and_batch {:.3} CPU-s/GB, parse_to_lines {:.3} CPU-s/GB",
        encode / gb,
        decode / gb
    );

    let mut g = c.benchmark_group("floor");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Bytes(src.len() as u64));
    g.bench_function("frame_and_batch", |b| {
        b.iter(|| {
            frame_and_batch(&src, &mut batcher, &mut out);
            out.len()
        })
    });
    g.bench_function("parse_to_lines", |b| {
        b.iter(|| parse_to_lines(&wire, &mut records, &mut file))
    });
    g.finish();
}

criterion_group!(benches, floor);
criterion_main!(benches);
