//! Micro-benchmarks of what goes on the wire: record values per format,
//! the source encodings, and the client-side cost of producing a record
//! with each attribution mode (none, `lf` header, key form) (to librdkafka's in-process mock cluster,
//! so it measures logferry + librdkafka CPU, not a network or a broker).
//!
//! `cargo bench --bench encode`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use logferry::ship::partition::SourcePartitioner;
use logferry::wire::{
    encode_source, encode_source_key, source_tail, Format, LineSource, SOURCE_HEADER,
};
use logferry_tail::{FileId, GenerationId};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientConfig;
use rdkafka::ClientContext;

const LINE: &[u8] = b"10.1.2.3 - - [24/Nov/2026:10:00:00 +0000] \"GET /api/v2/items/48213?page=3 HTTP/1.1\" 200 5123 \"-\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0\"";

const SRC: LineSource<'static> = LineSource {
    host: "web1.example.com",
    path: "/var/log/nginx/access.log",
    generation: GenerationId(0x5eed_0123_4567_89ab),
    id: FileId {
        dev: 2049,
        ino: 1_234_567,
    },
    offset: 123_456_789,
    read_at_ms: 1_790_000_000_000,
};

fn formats(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    let mut scratch = Vec::new();
    for (name, f) in [
        ("raw", Format::Raw),
        (
            "tail2kafka",
            Format::Tail2Kafka {
                meta: b"web1".to_vec(),
            },
        ),
        (
            "json",
            Format::Json {
                fields: vec![("env".into(), "prod".into())],
            },
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| f.payload(LINE, &SRC, &mut scratch).len())
        });
    }
    let tail = source_tail(SRC.host, SRC.path.as_bytes());
    let mut header = Vec::new();
    let mut offset = 0u64;
    g.bench_function("lf_header", |b| {
        b.iter(|| {
            offset += 180;
            encode_source(&mut header, SRC.generation, SRC.id, offset, false, &tail);
            header.len()
        })
    });
    g.bench_function("key_form", |b| {
        b.iter(|| {
            offset += 180;
            encode_source_key(
                &mut header,
                b"",
                SRC.generation,
                SRC.id,
                offset,
                false,
                &tail,
            );
            header.len()
        })
    });
    g.finish();
}

/// A producer context like logferry's, minus the bookkeeping: the custom
/// partitioner is installed for the key form, as `logferry ship` does.
struct BenchContext(Option<SourcePartitioner>);

impl ClientContext for BenchContext {}

impl ProducerContext<SourcePartitioner> for BenchContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
    fn get_custom_partitioner(&self) -> Option<&SourcePartitioner> {
        self.0.as_ref()
    }
}

/// Client-side cost per record of each attribution mode: the same loop
/// logferry runs (send, poll every 1,024) with no attribution, the `lf`
/// header, and the key form.
fn produce(c: &mut Criterion) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("bench", 3, 1).expect("topic");
    let tail = source_tail(SRC.host, SRC.path.as_bytes());
    let mut scratch = Vec::new();
    let mut g = c.benchmark_group("produce_1024");
    g.throughput(Throughput::Elements(1024));
    g.sample_size(20);
    for mode in ["off", "header", "key"] {
        let producer: BaseProducer<BenchContext, SourcePartitioner> = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("compression.type", "lz4")
            .set("linger.ms", "20")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create_with_context(BenchContext(
                (mode == "key").then(SourcePartitioner::default),
            ))
            .expect("producer");
        let mut offset = 0u64;
        g.bench_function(mode, |b| {
            b.iter(|| {
                for _ in 0..1024 {
                    offset += LINE.len() as u64 + 1;
                    let mut rec = BaseRecord::<[u8], [u8], ()>::to("bench").payload(LINE);
                    match mode {
                        "header" => {
                            encode_source(
                                &mut scratch,
                                SRC.generation,
                                SRC.id,
                                offset,
                                false,
                                &tail,
                            );
                            rec = rec.headers(OwnedHeaders::new_with_capacity(1).insert(Header {
                                key: SOURCE_HEADER,
                                value: Some(scratch.as_slice()),
                            }));
                        }
                        "key" => {
                            encode_source_key(
                                &mut scratch,
                                b"",
                                SRC.generation,
                                SRC.id,
                                offset,
                                false,
                                &tail,
                            );
                            rec = rec.key(scratch.as_slice());
                        }
                        _ => {}
                    }
                    while let Err((_, back)) = producer.send(rec) {
                        producer.poll(Duration::from_millis(1));
                        rec = back;
                    }
                }
                producer.poll(Duration::ZERO);
            })
        });
        let _ = producer.flush(Duration::from_secs(10));
    }
    g.finish();
}

criterion_group!(benches, formats, produce);
criterion_main!(benches);
