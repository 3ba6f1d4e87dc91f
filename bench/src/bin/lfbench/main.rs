//! lfbench: runs each tool against the same data and the same broker and
//! records what landed in Kafka, what it cost, and how long it took.
//!
//! `lfbench run` runs one scenario for a list of tools and appends one JSON
//! row per tool to `--results`; `lfbench report` turns result files into the
//! tables and SVG charts of docs/BENCHMARKS.md. `bench/run` wraps both with
//! the Kafka cluster, the builds and the peer installs.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use logferry_bench::kafka::{self, Counter};
use logferry_bench::now_us;
use logferry_bench::procmon::Proc;
use logferry_bench::report::{self, Row, METRICS};
use logferry_bench::visible::VisibleWatch;
use serde::Deserialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod report_cmd;
mod tools;

use report_cmd::report_cmd;
use tools::*;

/// Producer settings every tool gets: logferry's defaults, spelled out for
/// the librdkafka-based peers so all of them do the same work per record.
const PRODUCER_PROPS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    ("compression.type", "lz4"),
    ("linger.ms", "20"),
    ("batch.size", "1000000"),
    ("message.timeout.ms", "0"),
];

#[derive(Parser)]
#[command(name = "lfbench", about = "logferry side-by-side benchmark driver")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario for each tool and append the results.
    Run(Box<RunArgs>),
    /// Write tables into docs/BENCHMARKS.md and SVG charts beside it.
    Report(ReportArgs),
    /// Wait until a topic holds at least --lines records (for bench/profile);
    /// with --create N, create it first with N partitions (LogAppendTime).
    WaitLanded(WaitArgs),
    /// Create a topic (replication factor min(3, --nodes)) with extra
    /// settings, e.g. `--config cleanup.policy=compact` for the collectors'
    /// index topic (scripts/fleet-sim).
    CreateTopic(CreateArgs),
}

#[derive(Parser)]
struct CreateArgs {
    #[arg(long)]
    brokers: String,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    #[arg(long, default_value_t = 1)]
    nodes: i32,
    /// Topic setting KEY=VALUE, repeatable.
    #[arg(long)]
    config: Vec<String>,
}

fn create_topic(a: CreateArgs) -> Result<()> {
    let mut config = Vec::new();
    for c in &a.config {
        let (k, v) = c
            .split_once('=')
            .with_context(|| format!("--config {c}: expected KEY=VALUE"))?;
        config.push((k.to_string(), v.to_string()));
    }
    let config: Vec<(&str, &str)> = config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    kafka::create_topic_with(&a.brokers, &a.topic, a.partitions, a.nodes, &config)
}

#[derive(Parser)]
struct WaitArgs {
    #[arg(long)]
    brokers: String,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 0)]
    lines: i64,
    #[arg(long)]
    create: Option<i32>,
    #[arg(long, default_value_t = 1)]
    nodes: i32,
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

fn wait_landed(a: WaitArgs) -> Result<()> {
    if let Some(parts) = a.create {
        kafka::create_topic(&a.brokers, &a.topic, parts, a.nodes)?;
    }
    let md_parts = a.create.unwrap_or(0);
    let parts = if md_parts > 0 {
        md_parts
    } else {
        kafka::partition_count(&a.brokers, &a.topic)?
    };
    let counter = Counter::new(&a.brokers, &a.topic, parts)?;
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    loop {
        let n = counter.landed()?;
        if n >= a.lines {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} holds {n} of {} records after {} s",
                a.topic,
                a.lines,
                a.timeout
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ScenarioKind {
    /// Ship one pre-written file as fast as possible.
    Backlog,
    /// One file written at --rate-mb for --duration seconds.
    Steady,
    /// Like steady, with --rotations logrotate-style rotations spread over the run.
    Rotate,
    /// --files files, each getting --lines-per-file-sec lines per second.
    Files,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Tool {
    /// logferry ship (default settings).
    Logferry,
    /// logferry ship --attribution header: the source in an `lf` header.
    LogferryHeader,
    /// logferry ship --attribution off: the cost without any attribution.
    LogferryOff,
    /// logferry ship with exactly_once = true (transactional producer,
    /// positions committed in the transaction; --transaction-interval).
    LogferryEo,
    /// logferry ship --partition-by none: the sticky partitioning (every
    /// partition by turns) instead of the default, one partition per file
    /// generation.
    LogferrySticky,
    /// logferry ship --pack-bytes 65536: whole lines read together as one
    /// record of up to 64 KiB.
    LogferryPacked,
    /// logferry ship --pack-bytes 65536 --partition-by none: packs spread
    /// over every partition (a generation no longer in one partition).
    LogferryPackedSticky,
    /// kcat -P -l FILE (backlog only).
    Kcat,
    /// tail -n0 -F FILE | kcat -P (live files only).
    TailKcat,
    /// rsyslogd with imfile + omkafka, its own config/pid/workdir.
    Rsyslog,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Logferry => "logferry",
            Tool::LogferryHeader => "logferry --attribution header",
            Tool::LogferryOff => "logferry --attribution off",
            Tool::LogferryEo => "logferry exactly_once",
            Tool::LogferrySticky => "logferry --partition-by none",
            Tool::LogferryPacked => "logferry --pack-bytes 64KiB",
            Tool::LogferryPackedSticky => "logferry --pack-bytes 64KiB --partition-by none",
            Tool::Kcat => "kcat -P -l",
            Tool::TailKcat => "tail -F | kcat -P",
            Tool::Rsyslog => "rsyslog imfile+omkafka",
        }
    }
    fn slug(self) -> &'static str {
        match self {
            Tool::Logferry => "logferry",
            Tool::LogferryHeader => "lfheader",
            Tool::LogferryOff => "lfoff",
            Tool::LogferryEo => "lfeo",
            Tool::LogferrySticky => "lfsticky",
            Tool::LogferryPacked => "lfpack",
            Tool::LogferryPackedSticky => "lfpacksticky",
            Tool::Kcat => "kcat",
            Tool::TailKcat => "tailkcat",
            Tool::Rsyslog => "rsyslog",
        }
    }
}

#[derive(Parser, Clone)]
struct RunArgs {
    #[arg(long, value_enum)]
    scenario: ScenarioKind,
    /// Kafka bootstrap list.
    #[arg(long)]
    brokers: String,
    /// Nodes in that cluster (sets replication factor and min.insync).
    #[arg(long, default_value_t = 1)]
    nodes: i32,
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Tools to run, in this order (default: all that fit the scenario).
    #[arg(long, value_enum, value_delimiter = ',')]
    tools: Vec<Tool>,
    /// Append one JSON row per tool here.
    #[arg(long)]
    results: PathBuf,
    /// Scratch directory for data files, configs, logs.
    #[arg(long, default_value = "/tmp/lfbench")]
    workdir: PathBuf,
    #[arg(long, default_value = "target/release/logferry")]
    logferry: PathBuf,
    #[arg(long, default_value = "target/release/loggen")]
    loggen: PathBuf,
    /// Backlog size in MB.
    #[arg(long, default_value_t = 2000)]
    backlog_mb: u64,
    /// Write rate for steady/rotate, MB/s.
    #[arg(long, default_value_t = 10.0)]
    rate_mb: f64,
    /// Seconds of writing for steady/rotate/files.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    #[arg(long, default_value_t = 100)]
    rotations: u32,
    #[arg(long, default_value_t = 10_000)]
    files: u32,
    #[arg(long, default_value_t = 2.0)]
    lines_per_file_sec: f64,
    /// Give up waiting when nothing new landed for this many seconds.
    #[arg(long, default_value_t = 30)]
    stall_secs: u64,
    /// Exit 3 if this tool's run is incomplete (missing, duplicate or
    /// unparsable lines) or failed. Repeatable.
    #[arg(long, value_enum)]
    require_complete: Vec<Tool>,
    /// Seconds between starting a tool and starting the writer (live scenarios).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Extra argument for `logferry ship` (file input), repeatable: e.g.
    /// `--logferry-arg=--metrics-listen --logferry-arg=127.0.0.1:9898` for
    /// an A/B of the metrics endpoint.
    #[arg(long = "logferry-arg", allow_hyphen_values = true)]
    logferry_args: Vec<String>,
    /// transaction_interval of the logferry-eo tool (a logferry duration).
    #[arg(long, default_value = "1s")]
    transaction_interval: String,
    /// Live scenarios: also measure append-to-visible latency with a
    /// read_committed consumer following the topic during the run.
    #[arg(long)]
    visible_latency: bool,
    /// Keep the topic after the run (its name is printed), to look at
    /// the records' timestamps afterwards.
    #[arg(long)]
    keep_topic: bool,
}

#[derive(Parser)]
struct ReportArgs {
    /// Result files (JSON lines) to include, in order.
    #[arg(long, required = true, num_args = 1..)]
    results: Vec<PathBuf>,
    /// Markdown file whose `<!-- results:begin -->`..`<!-- results:end -->`
    /// section is replaced by the tables.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    doc: PathBuf,
    /// Where the SVG charts go.
    #[arg(long, default_value = "docs")]
    svg_dir: PathBuf,
}

fn main() {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Run(a) => run(*a),
        Cmd::Report(a) => report_cmd(a).map(|()| 0),
        Cmd::WaitLanded(a) => wait_landed(a).map(|()| 0),
        Cmd::CreateTopic(a) => create_topic(a).map(|()| 0),
    };
    match res {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("lfbench: {e:#}");
            std::process::exit(1);
        }
    }
}

/// What the generator wrote (loggen's `--stats`).
#[derive(Deserialize, Debug, Default)]
struct GenStats {
    lines_per_file: Vec<u64>,
    lines: u64,
    bytes: u64,
    start_us: u64,
    end_us: u64,
    mb_per_s: f64,
}

impl GenStats {
    fn duration_s(&self) -> f64 {
        self.end_us.saturating_sub(self.start_us) as f64 / 1e6
    }
}

fn read_stats(p: &Path) -> Result<GenStats> {
    let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&s).with_context(|| format!("parsing {}", p.display()))
}

struct Scenario {
    key: String,
    title: String,
    kind: ScenarioKind,
}

fn log(msg: &str) {
    eprintln!("lfbench: {msg}");
}

fn run(a: RunArgs) -> Result<i32> {
    if a.partitions < 1 || a.nodes < 1 {
        bail!("--partitions and --nodes must be at least 1");
    }
    if !(a.rate_mb > 0.0 && a.duration > 0.0 && a.lines_per_file_sec > 0.0) {
        bail!("--rate-mb, --duration and --lines-per-file-sec must be positive");
    }
    for bin in [&a.logferry, &a.loggen] {
        if !bin.is_file() {
            bail!(
                "{} not found: build with `cargo build --release -p logferry -p logferry-bench`",
                bin.display()
            );
        }
    }
    std::fs::create_dir_all(&a.workdir)
        .with_context(|| format!("creating {}", a.workdir.display()))?;
    let sc = match a.scenario {
        ScenarioKind::Backlog => Scenario {
            key: "backlog".into(),
            title: format!("Backlog: one {} MB file, as fast as possible", a.backlog_mb),
            kind: a.scenario,
        },
        ScenarioKind::Steady => Scenario {
            key: format!("steady-{}", a.rate_mb),
            title: format!(
                "Steady {} MB/s into one file for {} s",
                a.rate_mb, a.duration
            ),
            kind: a.scenario,
        },
        ScenarioKind::Rotate => Scenario {
            key: format!("rotate-{}", a.rate_mb),
            title: format!(
                "Steady {} MB/s for {} s with {} rename+create rotations",
                a.rate_mb, a.duration, a.rotations
            ),
            kind: a.scenario,
        },
        ScenarioKind::Files => Scenario {
            key: format!("files-{}", a.files),
            title: format!(
                "{} files, {} lines/s each, for {} s",
                a.files, a.lines_per_file_sec, a.duration
            ),
            kind: a.scenario,
        },
    };
    let tools = if a.tools.is_empty() {
        match a.scenario {
            ScenarioKind::Backlog => vec![
                Tool::Logferry,
                Tool::LogferryPacked,
                Tool::LogferryPackedSticky,
                Tool::LogferrySticky,
                Tool::LogferryHeader,
                Tool::LogferryOff,
                Tool::Kcat,
                Tool::Rsyslog,
            ],
            _ => vec![Tool::Logferry, Tool::TailKcat, Tool::Rsyslog],
        }
    } else {
        a.tools.clone()
    };

    // The backlog file is written once and shipped by every tool.
    let backlog = if sc.kind == ScenarioKind::Backlog {
        let file = a.workdir.join("backlog.log");
        let stats = a.workdir.join("backlog.json");
        log(&format!(
            "writing {} MB backlog to {}",
            a.backlog_mb,
            file.display()
        ));
        let _ = std::fs::remove_file(&file);
        let st = Command::new(&a.loggen)
            .args([
                "--out",
                &path_str(&file),
                "--bytes",
                &(a.backlog_mb * 1_000_000).to_string(),
            ])
            .args(["--stats", &path_str(&stats)])
            .status()
            .context("running loggen")?;
        if !st.success() {
            bail!("loggen failed writing the backlog ({st})");
        }
        Some((file, read_stats(&stats)?))
    } else {
        None
    };

    let mut failed = false;
    for tool in tools {
        log(&format!(
            "scenario {} ({} node(s)): {}",
            sc.key,
            a.nodes,
            tool.name()
        ));
        let mut row = match run_tool(&a, &sc, tool, backlog.as_ref()) {
            Ok(row) => row,
            Err(e) => {
                log(&format!("{} failed: {e:#}", tool.name()));
                Row {
                    skipped: Some(format!("failed: {e:#}")),
                    ..Default::default()
                }
            }
        };
        row.scenario = sc.key.clone();
        row.title = sc.title.clone();
        row.nodes = a.nodes;
        row.partitions = a.partitions;
        row.tool = match tool {
            Tool::LogferryEo => format!("{} (interval {})", tool.name(), a.transaction_interval),
            _ => tool.name().into(),
        };
        log(&format!(
            "  {}: {:.1} MB/s, {:.1} CPU-s/GB, {:.1} MB RSS, p50 {:?} p99 {:?} ms, visible p50 {:?} p99 {:?} ms, missing {}, dup {}, unparsed {} {}",
            row.tool, row.mb_s, row.cpu_s_per_gb, row.peak_rss_mb, row.p50_ms, row.p99_ms, row.visible_p50_ms,
            row.visible_p99_ms, row.missing, row.duplicates, row.unparsed, row.skipped.as_deref().unwrap_or("")
        ));
        if a.require_complete.contains(&tool) && !row.complete() {
            log(&format!(
                "COMPLETENESS FAILURE: {} in {}",
                tool.name(),
                sc.key
            ));
            failed = true;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&a.results)
            .with_context(|| format!("opening {}", a.results.display()))?;
        writeln!(f, "{}", serde_json::to_string(&row)?)?;
    }
    if let Some((file, _)) = backlog {
        let _ = std::fs::remove_file(file);
    }
    Ok(if failed { 3 } else { 0 })
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Where a tool reads from: one file, or every `*.log` in a directory.
enum Input {
    File(PathBuf),
    Dir { dir: PathBuf, files: Vec<PathBuf> },
}

fn run_tool(
    a: &RunArgs,
    sc: &Scenario,
    tool: Tool,
    backlog: Option<&(PathBuf, GenStats)>,
) -> Result<Row> {
    let live = sc.kind != ScenarioKind::Backlog;
    match (tool, live) {
        (Tool::Kcat, true) => {
            return Ok(skip(
                "kcat -P -l reads a file once; the live row is tail -F | kcat -P",
            ))
        }
        (Tool::TailKcat, false) => {
            return Ok(skip(
                "tail -F follows live files; the backlog row is kcat -P -l",
            ))
        }
        _ => {}
    }
    let tooldir = a
        .workdir
        .join(format!("{}-{}-{}n", sc.key, tool.slug(), a.nodes));
    let _ = std::fs::remove_dir_all(&tooldir);
    std::fs::create_dir_all(&tooldir)?;

    let input = match (sc.kind, backlog) {
        (ScenarioKind::Backlog, Some((file, _))) => Input::File(file.clone()),
        (ScenarioKind::Files, _) => {
            let dir = tooldir.join("in");
            std::fs::create_dir_all(&dir)?;
            // Created empty before the tool starts, as loggen will name them.
            let files: Vec<PathBuf> = (0..a.files)
                .map(|i| dir.join(format!("app-{i:05}.log")))
                .collect();
            for f in &files {
                std::fs::File::create(f).with_context(|| format!("creating {}", f.display()))?;
            }
            Input::Dir { dir, files }
        }
        _ => {
            let f = tooldir.join("app.log");
            std::fs::File::create(&f)?;
            Input::File(f)
        }
    };

    let topic = format!(
        "lfb-{}-{}-{}n-{}",
        sc.key.replace('.', "_"),
        tool.slug(),
        a.nodes,
        now_us() / 1_000_000
    );
    kafka::create_topic(&a.brokers, &topic, a.partitions, a.nodes)?;
    let result = measure(a, sc, tool, &input, &tooldir, &topic, backlog.map(|b| &b.1));
    if a.keep_topic {
        eprintln!("lfbench: kept topic {topic}");
    } else {
        kafka::delete_topic(&a.brokers, &topic);
    }
    if tool == Tool::LogferryEo {
        kafka::delete_topic(&a.brokers, &positions_topic(&topic));
    }
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(tooldir.join("in"));
        if !matches!(input, Input::File(ref f) if backlog.is_some_and(|b| &b.0 == f)) {
            if let Input::File(f) = &input {
                let _ = std::fs::remove_file(f);
                let mut r = f.clone().into_os_string();
                r.push(".1");
                let _ = std::fs::remove_file(r);
            }
        }
    }
    result
}

fn skip(why: &str) -> Row {
    Row {
        skipped: Some(why.into()),
        ..Default::default()
    }
}

fn sample_all(procs: &mut [Proc]) {
    procs.iter_mut().for_each(Proc::sample);
}

/// Sleeps `d` while sampling the tool's processes every 200 ms.
fn sleep_sampling(procs: &mut [Proc], d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        sample_all(procs);
        std::thread::sleep(
            Duration::from_millis(200).min(end.saturating_duration_since(Instant::now())),
        );
    }
}

fn measure(
    a: &RunArgs,
    sc: &Scenario,
    tool: Tool,
    input: &Input,
    tooldir: &Path,
    topic: &str,
    backlog: Option<&GenStats>,
) -> Result<Row> {
    let mut row = Row::default();
    let counter = Counter::new(&a.brokers, topic, a.partitions)?;
    let visible = match (a.visible_latency, backlog) {
        (true, None) => Some(VisibleWatch::start(&a.brokers, topic, a.partitions)?),
        _ => None,
    };
    let t0 = now_us();
    let mut procs = match start_tool(
        a,
        tool,
        input,
        tooldir,
        topic,
        sc.kind == ScenarioKind::Backlog,
    )? {
        Ok(p) => p,
        Err(why) => return Ok(skip(&why)),
    };

    let (stats, data_start_us) = match backlog {
        Some(st) => (
            GenStats {
                lines_per_file: st.lines_per_file.clone(),
                lines: st.lines,
                bytes: st.bytes,
                ..Default::default()
            },
            t0,
        ),
        None => {
            // Let the tool connect and open its files before lines appear.
            sleep_sampling(&mut procs, Duration::from_secs_f64(a.warmup));
            sample_all(&mut procs);
            if let Some(p) = procs.iter().find(|p| p.exit_code().is_some()) {
                bail!(
                    "{} exited during warm-up (code {:?}); log in {}",
                    p.name,
                    p.exit_code(),
                    tooldir.display()
                );
            }
            let st = run_loggen(a, sc, input, tooldir, &mut procs)?;
            let start = st.start_us;
            (st, start)
        }
    };
    row.input_lines = stats.lines;
    row.input_bytes = stats.bytes;
    row.input_mb_s = if backlog.is_some() {
        0.0
    } else {
        stats.mb_per_s
    };

    // Wait until every line landed (the count includes duplicates, so also
    // wait for it to stop moving), the tool exited by itself, or a stall.
    let stall = Duration::from_secs(a.stall_secs);
    let hard_cap = Instant::now() + Duration::from_secs(3600);
    let mut last = -1i64;
    let mut last_change = Instant::now();
    let mut stalled = false;
    loop {
        sample_all(&mut procs);
        let landed = counter.landed().unwrap_or(last);
        if landed != last {
            last = landed;
            last_change = Instant::now();
        }
        let all_exited = procs.iter_mut().all(|p| p.exited());
        // Records are counted from the watermarks, and a pack is one
        // record for many lines: a packing tool is done once they stop
        // moving (the read-back then counts its lines).
        let packs = matches!(tool, Tool::LogferryPacked | Tool::LogferryPackedSticky);
        if (landed >= stats.lines as i64 && last_change.elapsed() >= Duration::from_secs(1))
            || (packs && landed > 0 && last_change.elapsed() >= Duration::from_secs(3))
            || all_exited
        {
            break;
        }
        // Live scenarios: the writer has finished, so a short quiet period is
        // enough; a backlog tool may legitimately pause longer (e.g. rsyslog
        // between batches), so it gets the full --stall-secs.
        let quiet = if backlog.is_some() {
            stall
        } else {
            stall.min(Duration::from_secs(10))
        };
        if last_change.elapsed() >= quiet {
            stalled = true;
            break;
        }
        if Instant::now() > hard_cap {
            row.notes.push("gave up after 1 h".into());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }

    // Stop in pipeline order: the reader first, so the producer drains.
    for p in procs.iter_mut() {
        if !p.stop(Duration::from_secs(20)) {
            row.notes.push(format!("{} killed after SIGTERM", p.name));
        }
        if let Some(c) = p
            .exit_code()
            .filter(|&c| c != 0 && c != 128 + libc::SIGTERM)
        {
            row.notes.push(format!("{} exit {c}", p.name));
        }
    }

    if let Some(v) = visible {
        let v = v.finish(stats.lines, Duration::from_secs(10))?;
        row.visible_p50_ms = v.p50_ms;
        row.visible_p99_ms = v.p99_ms;
        row.visible_max_ms = v.max_ms;
    }
    let rb = kafka::read_back(&a.brokers, topic, a.partitions, &stats.lines_per_file)?;
    if stalled && last >= 0 && rb.records > last as u64 {
        row.notes.push(format!(
            "{} line(s) landed only after SIGTERM (held until EOF/shutdown)",
            rb.records - last as u64
        ));
    } else if stalled {
        row.notes.push(format!(
            "stopped after no progress for a while, at {last} of {} records",
            stats.lines
        ));
    }
    row.landed_records = rb.records;
    row.landed_bytes = rb.bytes;
    row.missing = rb.missing;
    row.duplicates = rb.duplicates;
    row.unparsed = rb.unparsed + rb.unexpected;
    // A backlog's lines were written before the tool started: their age says
    // nothing about the tool, so latency is only reported for live scenarios.
    if backlog.is_none() {
        row.p50_ms = rb.p50_ms;
        row.p99_ms = rb.p99_ms;
        row.max_ms = rb.max_ms;
    }
    if rb.no_timestamp > 0 {
        row.notes
            .push(format!("{} records without LogAppendTime", rb.no_timestamp));
    }
    if rb.records > 0 {
        row.duration_s = match (backlog, rb.p99_ms) {
            // Backlog: from the tool's start to the broker's append of the last line.
            (Some(_), _) | (None, None) => {
                ((rb.last_append_ms * 1000) as f64 - data_start_us as f64).max(1.0) / 1e6
            }
            // Live: the writing window plus the p99 latency. A tool that keeps
            // up scores the input rate; one that falls behind at rate R < input
            // builds latency until its p99 stretches the window to ~bytes/R. The
            // last-line time is not used because a pipeline may hold its last
            // line until EOF (kcat does), which says nothing about throughput.
            (None, Some(p99)) => stats.duration_s() + p99 / 1e3,
        };
        row.mb_s = rb.bytes as f64 / 1e6 / row.duration_s;
        row.lines_s = rb.lines as f64 / row.duration_s;
    }
    for p in &procs {
        let u = p.usage();
        row.cpu_s += u.cpu_s;
        row.peak_rss_mb += u.peak_rss_kb as f64 / 1024.0;
        row.procs
            .push((p.name.clone(), u.cpu_s, u.peak_rss_kb as f64 / 1024.0));
    }
    if rb.bytes > 0 {
        row.cpu_s_per_gb = row.cpu_s / (rb.bytes as f64 / 1e9);
    }
    Ok(row)
}

/// Runs the generator to the end for a live scenario, sampling the tool.
fn run_loggen(
    a: &RunArgs,
    sc: &Scenario,
    input: &Input,
    tooldir: &Path,
    procs: &mut [Proc],
) -> Result<GenStats> {
    let stats = tooldir.join("loggen.json");
    let mut cmd = Command::new(&a.loggen);
    cmd.args([
        "--duration",
        &a.duration.to_string(),
        "--stats",
        &path_str(&stats),
    ]);
    match (sc.kind, input) {
        (ScenarioKind::Files, Input::Dir { dir, files }) => {
            cmd.args(["--out", &path_str(dir), "--files", &files.len().to_string()]);
            cmd.args([
                "--lines-per-sec",
                &(a.lines_per_file_sec * files.len() as f64).to_string(),
            ]);
        }
        (_, Input::File(f)) => {
            cmd.args(["--out", &path_str(f), "--rate-mb", &a.rate_mb.to_string()]);
            if sc.kind == ScenarioKind::Rotate && a.rotations > 0 {
                cmd.args([
                    "--rotate-every-secs",
                    &(a.duration / (a.rotations as f64 + 1.0)).to_string(),
                ]);
            }
        }
        _ => bail!("scenario and input do not match"),
    }
    let mut gen = Proc::spawn("loggen", &mut cmd, &tooldir.join("loggen.log"), None, false)?;
    let deadline = Instant::now() + Duration::from_secs_f64(a.duration + 120.0);
    while !gen.exited() {
        if Instant::now() > deadline {
            gen.stop(Duration::from_secs(5));
            bail!("loggen ran past its duration by 120 s");
        }
        sleep_sampling(procs, Duration::from_millis(200));
    }
    if gen.exit_code() != Some(0) {
        bail!(
            "loggen failed (exit {:?}); see {}",
            gen.exit_code(),
            tooldir.join("loggen.log").display()
        );
    }
    read_stats(&stats)
}
