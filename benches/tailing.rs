//! Micro-benchmarks of the tailing core: framing throughput on access-log
//! lines, the cost of polling an idle file, and the cost of a discovery scan
//! per file (what thousands of idle files cost per scan).
//!
//! `cargo bench --bench tailing`

use std::io::Write;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use logferry_tail::{Discovery, FileWatcher, LineFramer, LongLinePolicy};

/// ~8 MiB of realistic access-log lines (100-300 bytes).
fn access_log() -> Vec<u8> {
    let mut out = Vec::with_capacity(8 << 20);
    let agents = [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        "curl/8.5.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    ];
    let mut i = 0u64;
    while out.len() < 8 << 20 {
        writeln!(
            out,
            "10.{}.{}.{} - - [24/Nov/2026:10:{:02}:{:02} +0000] \"GET /api/v{}/items/{}?page={} HTTP/1.1\" {} {} \"-\" \"{}\"",
            i % 250,
            (i / 7) % 250,
            (i / 13) % 250,
            (i / 60) % 60,
            i % 60,
            1 + i % 3,
            i * 31 % 100_000,
            i % 17,
            [200, 200, 200, 304, 404, 500][(i % 6) as usize],
            i * 97 % 20_000,
            agents[(i % 3) as usize]
        )
        .unwrap();
        i += 1;
    }
    out
}

fn framing(c: &mut Criterion) {
    let data = access_log();
    let lines = data.iter().filter(|&&b| b == b'\n').count() as u64;
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function(format!("access_log_{lines}_lines"), |b| {
        b.iter(|| {
            let mut f = LineFramer::new(0, 1_000_000, LongLinePolicy::Truncate, false);
            let mut n = 0u64;
            for chunk in data.chunks(1 << 20) {
                f.push(chunk, |l| n += l.bytes.len() as u64);
            }
            n
        })
    });
    g.throughput(Throughput::Elements(lines));
    g.bench_function("access_log_lines_per_s", |b| {
        b.iter(|| {
            let mut f = LineFramer::new(0, 1_000_000, LongLinePolicy::Truncate, false);
            let mut n = 0u64;
            for chunk in data.chunks(1 << 20) {
                f.push(chunk, |_| n += 1);
            }
            n
        })
    });
    g.finish();
}

fn idle_files(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idle.log");
    std::fs::write(&path, b"one line\n").unwrap();
    let proto = LineFramer::new(0, 1_000_000, LongLinePolicy::Truncate, false);
    let mut w = FileWatcher::new(&path, std::fs::File::open(&path).unwrap(), 9, &proto).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    // Polling a file at EOF (a read that returns nothing, plus the head
    // check): what a hot-but-quiet file costs per loop.
    c.bench_function("idle/read_at_eof", |b| {
        b.iter(|| w.read(&mut buf, |_| {}).unwrap())
    });

    // A discovery scan: what each idle file costs per scan interval.
    let mut g = c.benchmark_group("discover");
    for n in [100usize, 1000] {
        let d = tempfile::tempdir().unwrap();
        for i in 0..n {
            std::fs::write(d.path().join(format!("f{i}.log")), b"x\n").unwrap();
        }
        let mut disc = Discovery::new(&[format!("{}/*.log", d.path().display())], &[]).unwrap();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("scan_files", n), &n, |b, _| {
            b.iter(|| disc.scan().len())
        });
    }
    g.finish();
}

criterion_group!(benches, framing, idle_files);
criterion_main!(benches);
