//! Starting the tools under test: logferry, kcat, tail -F | kcat, rsyslog.

use super::*;

pub(super) fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

pub(super) fn kcat_producer(a: &RunArgs, topic: &str) -> Command {
    let mut c = Command::new("kcat");
    c.args(["-P", "-b", &a.brokers, "-t", topic]);
    for (k, v) in PRODUCER_PROPS {
        c.args(["-X", &format!("{k}={v}")]);
    }
    c
}

/// The positions topic of an exactly_once run into `topic`.
pub(super) fn positions_topic(topic: &str) -> String {
    format!("{topic}-positions")
}

/// Starts the tool's processes (reader first). `Ok(Err(why))`: the tool
/// cannot run here (not installed, unsupported), recorded as skipped.
pub(super) fn start_tool(
    a: &RunArgs,
    tool: Tool,
    input: &Input,
    dir: &Path,
    topic: &str,
    from_beginning: bool,
) -> Result<std::result::Result<Vec<Proc>, String>> {
    let logf = |n: &str| dir.join(format!("{n}.log"));
    match tool {
        Tool::Logferry
        | Tool::LogferryHeader
        | Tool::LogferryOff
        | Tool::LogferryEo
        | Tool::LogferrySticky
        | Tool::LogferryPacked
        | Tool::LogferryPackedSticky => {
            let partition_by = match tool {
                Tool::LogferrySticky | Tool::LogferryPackedSticky => "none",
                _ => "generation",
            };
            let attribution = match tool {
                Tool::LogferryHeader => "header",
                Tool::LogferryOff => "off",
                _ => "key",
            };
            let mut c = Command::new(&a.logferry);
            match input {
                Input::File(file) if tool != Tool::LogferryEo => {
                    c.args([
                        "ship",
                        "--file",
                        &path_str(file),
                        "--topic",
                        topic,
                        "--brokers",
                        &a.brokers,
                    ]);
                    c.args(["--checkpoint-dir", &path_str(&dir.join("checkpoints"))]);
                    if from_beginning {
                        c.arg("--from-beginning");
                    }
                    c.args(["--attribution", attribution]);
                    c.args(["--partition-by", partition_by]);
                    if matches!(tool, Tool::LogferryPacked | Tool::LogferryPackedSticky) {
                        c.args(["--pack-bytes", "65536"]);
                    }
                    c.args(&a.logferry_args);
                }
                _ => {
                    // Many files need an include glob, and exactly_once's
                    // transaction_interval a key, which only the config
                    // file offers (see examples/logferry.toml); quick mode
                    // builds the same settings through the same validator.
                    // Everything else stays at logferry's defaults.
                    let include = match input {
                        Input::File(f) => path_str(f),
                        Input::Dir { dir, .. } => path_str(&dir.join("*.log")),
                    };
                    let eo = if tool == Tool::LogferryEo {
                        let positions = positions_topic(topic);
                        kafka::create_topic_with(
                            &a.brokers,
                            &positions,
                            1,
                            a.nodes,
                            &[("cleanup.policy", "compact")],
                        )?;
                        format!(
                            "exactly_once = true\npositions_topic = {positions:?}\ntransaction_interval = {:?}\n",
                            a.transaction_interval
                        )
                    } else {
                        String::new()
                    };
                    let conf = dir.join("logferry.toml");
                    let brokers = a
                        .brokers
                        .split(',')
                        .map(|b| format!("{b:?}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let pack = match tool {
                        Tool::LogferryPacked | Tool::LogferryPackedSticky => "pack_bytes = 65536\n",
                        _ => "",
                    };
                    let text = format!(
                        "attribution = {attribution:?}\n\n[kafka]\nbrokers = [{brokers}]\n{eo}\n[checkpoint]\ndirectory = {:?}\n\n\
                         [[inputs]]\ninclude = {include:?}\ntopic = {topic:?}\nstart_at = {:?}\npartition_by = {partition_by:?}\n{pack}",
                        path_str(&dir.join("checkpoints")),
                        if from_beginning { "beginning" } else { "end" },
                    );
                    std::fs::write(&conf, text)
                        .with_context(|| format!("writing {}", conf.display()))?;
                    c.args(["ship", "-c", &path_str(&conf)]);
                }
            }
            Ok(Ok(vec![Proc::spawn(
                "logferry",
                &mut c,
                &logf("logferry"),
                None,
                false,
            )?]))
        }
        Tool::Kcat => {
            if which("kcat").is_none() {
                return Ok(Err("kcat not installed".into()));
            }
            let Input::File(file) = input else {
                return Ok(Err("kcat -l takes one file".into()));
            };
            let mut c = kcat_producer(a, topic);
            c.args(["-l", &path_str(file)]);
            Ok(Ok(vec![Proc::spawn(
                "kcat",
                &mut c,
                &logf("kcat"),
                None,
                false,
            )?]))
        }
        Tool::TailKcat => {
            if which("kcat").is_none() {
                return Ok(Err("kcat not installed".into()));
            }
            let mut t = Command::new("tail");
            t.args(["-n0", "-F"]);
            match input {
                Input::File(f) => {
                    t.arg(f);
                }
                Input::Dir { files, .. } => {
                    // -q: no "==> file <==" headers between files.
                    t.arg("-q").args(files);
                }
            }
            let mut tail = Proc::spawn("tail", &mut t, &logf("tail"), None, true)?;
            let out = tail.take_stdout().context("tail stdout")?;
            let mut k = kcat_producer(a, topic);
            let kcat = Proc::spawn("kcat", &mut k, &logf("kcat"), Some(Stdio::from(out)), false)?;
            Ok(Ok(vec![tail, kcat]))
        }
        Tool::Rsyslog => {
            let Some(rsyslogd) = which("rsyslogd") else {
                return Ok(Err("rsyslogd not installed".into()));
            };
            if !Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so").exists()
                && !Path::new("/usr/lib/rsyslog/omkafka.so").exists()
            {
                return Ok(Err("omkafka not installed (package rsyslog-kafka)".into()));
            }
            let pattern = match input {
                Input::File(f) => path_str(f),
                Input::Dir { dir, .. } => path_str(&dir.join("*.log")),
            };
            let work = dir.join("rsyslog-work");
            std::fs::create_dir_all(&work)?;
            let conf = dir.join("rsyslog.conf");
            std::fs::write(
                &conf,
                rsyslog_conf(&work, &pattern, &a.brokers, topic, from_beginning),
            )?;
            let mut c = Command::new(rsyslogd);
            c.args([
                "-n",
                "-f",
                &path_str(&conf),
                "-i",
                &path_str(&dir.join("rsyslogd.pid")),
            ]);
            Ok(Ok(vec![Proc::spawn(
                "rsyslogd",
                &mut c,
                &logf("rsyslogd"),
                None,
                false,
            )?]))
        }
    }
}

/// rsyslog config for throughput, following its docs: imfile in inotify
/// mode, a LinkedList ruleset queue dequeued in large batches, omkafka with
/// librdkafka's own partitioner (`partitions.auto`), and the same producer
/// settings as every other tool. The template sends the line as it is.
pub(super) fn rsyslog_conf(
    work: &Path,
    pattern: &str,
    brokers: &str,
    topic: &str,
    from_beginning: bool,
) -> String {
    let brokers = brokers
        .split(',')
        .map(|b| format!("\"{b}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let props = PRODUCER_PROPS
        .iter()
        .filter(|(k, _)| *k != "acks")
        .map(|(k, v)| format!("\"{k}={v}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"# Generated by lfbench: a private rsyslogd instance (not the system one).
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imfile" mode="inotify")
module(load="omkafka")
template(name="raw" type="string" string="%msg%")
input(type="imfile" file="{pattern}" tag="bench" ruleset="tokafka" addMetadata="off" freshStartTail="{fresh}")
ruleset(name="tokafka" queue.type="LinkedList" queue.size="500000" queue.dequeueBatchSize="8192" queue.workerThreads="1") {{
  action(type="omkafka" broker=[{brokers}] topic="{topic}" template="raw" partitions.auto="on"
         confParam=[{props}, "acks=all"]
         topicConfParam=["acks=all"])
}}
"#,
        work = work.display(),
        fresh = if from_beginning { "off" } else { "on" },
    )
}
