//! The documentation's examples are checked, so a chapter cannot drift from
//! the program: README.md and every docs/*.md.
//!
//! **TOML blocks.** Every fenced block whose info string starts with `toml`
//! is loaded by logferry's own configuration loaders (as `logferry check`
//! does, offline). The words after `toml` say what the block is:
//!
//! | info string              | checked as                                              |
//! |--------------------------|---------------------------------------------------------|
//! | `toml`                   | a whole `ship -c` file: must load                       |
//! | `toml partial`           | part of a `ship -c` file: completed, must load          |
//! | `toml invalid`           | a `ship -c` file shown for its error: must be refused   |
//! | `toml collect`           | a whole `collect -c` file: must load                    |
//! | `toml collect partial`   | part of a `collect -c` file: completed, must load       |
//! | `toml collect invalid`   | a `collect -c` file shown for its error: must be refused|
//!
//! Any other word is an error, so a typo cannot turn a check off. A partial
//! block is completed by appending the top-level tables it lacks of a
//! minimal file (ship: one `[[inputs]]`; collect: `[collect]` with `topics`
//! and `out`), never replacing what the block sets. Secrets named as
//! `${env:NAME}` or `${file:/path}` are pointed at a file of this test's,
//! so their syntax is still resolved by the loader.
//!
//! **Shell blocks.** In ```sh blocks, every command line that runs
//! `logferry` (continuation lines joined, comments and pipes cut,
//! `VAR=value` prefixes and `cargo run ... --` skipped) is parsed by the
//! command-line definition (`logferry::cli::Cli`): subcommands and flags
//! must exist and their values parse.
//!
//! **Flags.** Every visible flag of every subcommand is named in the
//! subcommand's chapter (`CHAPTERS`), and every flag in the first two
//! columns of the option tables of `ship` and `collect` is one of theirs.
//!
//! Commands in running text (inline code starting `logferry SUB`) name only
//! flags SUB has.
//!
//! **Links.** Every relative Markdown link `[text](path#anchor)` must name
//! a file that exists and, with an anchor, a heading in it.
//!
//! A failure names the file and line of the block or link (and the
//! loader's message, whose line numbers are the document's).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use clap::Parser;
use logferry::cli::Cli;
use logferry::config;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and docs/*.md, in a stable order.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("reading docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root().join("README.md"));
    docs
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// One fenced block: its info string, the line of its opening fence
/// (1-based) and its text.
struct Block {
    info: String,
    line: usize,
    text: String,
}

fn blocks(doc: &str, name: &Path) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in doc.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match open.as_mut() {
            None if fence => {
                open = Some(Block {
                    info: line.trim_start()[3..].trim().to_string(),
                    line: i + 1,
                    text: String::new(),
                })
            }
            Some(_) if fence && line.trim() == "```" => out.extend(open.take()),
            Some(b) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            None => {}
        }
    }
    if let Some(b) = open {
        panic!(
            "{}:{}: this fenced block is never closed",
            relative(name),
            b.line
        );
    }
    out
}

// ---------------------------------------------------------------------------
// TOML
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schema {
    Ship,
    Collect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Whole,
    Partial,
    Invalid,
}

/// What a `toml ...` info string asks for, or why it is not understood.
fn toml_marker(info: &str) -> Result<(Schema, Expect), String> {
    let mut schema = Schema::Ship;
    let mut expect = Expect::Whole;
    for word in info.split_whitespace().skip(1) {
        match word {
            "collect" => schema = Schema::Collect,
            "partial" => expect = Expect::Partial,
            "invalid" => expect = Expect::Invalid,
            other => {
                return Err(format!(
                    "unknown marker {other:?} in ```{info} (known: collect, partial, invalid)"
                ))
            }
        }
    }
    Ok((schema, expect))
}

/// The least a file of each schema needs, for completing partial blocks:
/// each top-level key with the text that supplies it.
fn base(schema: Schema) -> &'static [(&'static str, &'static str)] {
    match schema {
        Schema::Ship => &[(
            "inputs",
            "[[inputs]]\ninclude = \"/var/log/docs-example.log\"\ntopic = \"docs-example\"\n",
        )],
        Schema::Collect => &[(
            "collect",
            "[collect]\ntopics = [\"docs-example\"]\nout = \"/srv/logs\"\n",
        )],
    }
}

/// A partial block with the base's tables it lacks appended (after it, so
/// the loader's line numbers still point into the block).
fn complete(text: &str, schema: Schema) -> Result<String, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("not TOML (a partial block must still parse): {e}"))?;
    let mut out = text.to_string();
    for (key, supply) in base(schema) {
        if !table.contains_key(*key) {
            out.push('\n');
            out.push_str(supply);
        }
    }
    Ok(out)
}

/// Secrets the examples name live elsewhere: point every `${env:...}` and
/// `${file:...}` at `secret`, a readable file.
fn with_test_secrets(text: &str, secret: &Path) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + len];
        out.push_str(&rest[..start]);
        if inner.starts_with("env:") || inner.starts_with("file:") {
            out.push_str(&format!("${{file:{}}}", secret.display()));
        } else {
            out.push_str(&rest[start..=start + len]);
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// Load `text` as the schema says; Err is the loader's message.
fn load(schema: Schema, text: &str, name: &Path) -> Result<(), String> {
    match schema {
        Schema::Ship => config::parse(text, name).map(drop),
        Schema::Collect => config::collect::parse_collect(text, name).map(drop),
    }
    .map_err(|e| e.to_string())
}

/// Check one TOML block of the document `name`; Err says what is wrong.
fn check_toml(block: &Block, name: &Path, secret: &Path) -> Result<(), String> {
    let (schema, expect) = toml_marker(&block.info)?;
    // Blank lines in front of the block, so the loader's line numbers are
    // the document's.
    let mut text = "\n".repeat(block.line) + &with_test_secrets(&block.text, secret);
    if expect == Expect::Partial {
        text = complete(&text, schema)?;
    }
    match (load(schema, &text, name), expect) {
        (Ok(()), Expect::Invalid) => Err(format!(
            "marked invalid, but the {schema:?} loader accepts it"
        )),
        (Err(e), Expect::Whole | Expect::Partial) => Err(format!(
            "refused by the {schema:?} loader{}:\n{e}",
            if expect == Expect::Partial {
                " (completed as a partial block)"
            } else {
                ""
            }
        )),
        _ => Ok(()),
    }
}

#[test]
fn toml_examples_load_as_marked() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for block in blocks(&text, &doc) {
            if block.info.split_whitespace().next() != Some("toml") {
                continue;
            }
            checked += 1;
            let name = relative(&doc);
            if let Err(why) = check_toml(&block, Path::new(&name), &secret) {
                let at = format!("{name}:{}", block.line);
                failures.push(format!("{at}: ```{}: {why}", block.info));
            }
        }
    }
    assert!(
        checked >= 5,
        "only {checked} TOML blocks found: the docs moved?"
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} TOML examples fail:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_toml_markers_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "x").unwrap();
    let block = |info: &str, text: &str| Block {
        info: info.into(),
        line: 1,
        text: text.into(),
    };
    let name = Path::new("test.md:1");
    let input = "[[inputs]]\ninclude = \"/var/log/a.log\"\ntopic = \"a\"\n";
    assert!(check_toml(&block("toml", input), name, &secret).is_ok());
    // A fragment is refused whole and accepted completed.
    let fragment = "[metrics]\nlisten = \"127.0.0.1:9898\"\n";
    assert!(check_toml(&block("toml", fragment), name, &secret).is_err());
    assert!(check_toml(&block("toml partial", fragment), name, &secret).is_ok());
    assert!(check_toml(&block("toml collect partial", fragment), name, &secret).is_ok());
    // A bad value is an error unless marked invalid, and invalid must fail.
    let bad = format!("{input}start_at = \"middle\"\n");
    assert!(check_toml(&block("toml", &bad), name, &secret).is_err());
    assert!(check_toml(&block("toml invalid", &bad), name, &secret).is_ok());
    assert!(check_toml(&block("toml invalid", input), name, &secret).is_err());
    // The schemas differ: a ship file is not a collector's.
    assert!(check_toml(&block("toml collect", input), name, &secret).is_err());
    assert!(check_toml(&block("toml colect", input), name, &secret).is_err());
    // Secrets still go through the loader's resolution.
    let secret_ref = format!("{input}[kafka.properties]\n\"sasl.password\" = \"${{env:NOPE}}\"\n");
    assert!(check_toml(&block("toml", &secret_ref), name, &secret).is_ok());
    let unreadable = Path::new("/nonexistent/secret");
    assert!(check_toml(&block("toml", &secret_ref), name, unreadable).is_err());
}

// ---------------------------------------------------------------------------
// Shell
// ---------------------------------------------------------------------------

/// A shell block's commands: continuation lines joined, each with the
/// line it starts on.
fn commands(block: &Block) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in block.text.lines().enumerate() {
        let (start, mut text) = pending
            .take()
            .unwrap_or((block.line + 1 + i, String::new()));
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                text.push_str(head);
                text.push(' ');
                pending = Some((start, text));
            }
            None => {
                text.push_str(line);
                out.push((start, text));
            }
        }
    }
    out.extend(pending);
    out
}

/// Words of one command as a shell splits them (quotes removed), up to an
/// unquoted comment, pipe, redirection or command separator.
fn words(command: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(q) => w.push(q),
                        None => return Err(format!("unclosed {c} in {command:?}")),
                    }
                }
            }
            c if c.is_whitespace() => words.extend(word.take()),
            '#' if word.is_none() => break,
            '|' | ';' | '&' | '<' | '>' => break,
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// The arguments given to logferry by a command, if it runs logferry.
fn logferry_args(words: &[String]) -> Option<Vec<String>> {
    let mut rest = words
        .iter()
        .skip_while(|w| w.contains('=') && !w.starts_with('-'));
    match rest.next()?.as_str() {
        "logferry" => Some(rest.cloned().collect()),
        "cargo" => {
            let after: Vec<String> = rest.skip_while(|w| *w != "--").skip(1).cloned().collect();
            (!after.is_empty()).then_some(after)
        }
        _ => None,
    }
}

#[test]
fn shell_examples_use_flags_that_exist() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for block in blocks(&text, &doc) {
            if !matches!(block.info.as_str(), "sh" | "bash" | "shell" | "console") {
                continue;
            }
            for (line, command) in commands(&block) {
                let at = format!("{}:{line}", relative(&doc));
                let args = match words(command.trim()) {
                    Ok(w) => logferry_args(&w),
                    Err(why) => {
                        failures.push(format!("{at}: {why}"));
                        continue;
                    }
                };
                let Some(args) = args else { continue };
                checked += 1;
                let argv = std::iter::once("logferry".to_string()).chain(args);
                if let Err(e) = Cli::try_parse_from(argv) {
                    failures.push(format!("{at}: {}\n{}", command.trim(), e.render()));
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} logferry commands found");
    assert!(
        failures.is_empty(),
        "{} of {checked} logferry commands in the docs do not parse:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn shell_words_are_split_as_a_shell_would() {
    let w = |s: &str| words(s).unwrap();
    assert_eq!(
        w("KEY=v logferry ship -X 'sasl.password=${env:X}' # note"),
        ["KEY=v", "logferry", "ship", "-X", "sasl.password=${env:X}"]
    );
    assert_eq!(
        w("logferry tail -t a --grep ' 50[0-9] ' | head"),
        ["logferry", "tail", "-t", "a", "--grep", " 50[0-9] "]
    );
    assert_eq!(
        logferry_args(&w("cargo run --release -- demo")),
        Some(vec!["demo".to_string()])
    );
    assert_eq!(logferry_args(&w("kafka-topics.sh --create")), None);
    assert!(Cli::try_parse_from(["logferry", "ship", "--no-such-flag"]).is_err());
}

// ---------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------

/// Where each subcommand's flags are documented.
const CHAPTERS: &[(&str, &str)] = &[
    ("ship", "docs/CONFIGURATION.md"),
    ("check", "docs/CONFIGURATION.md"),
    ("verify", "docs/DELIVERY.md"),
    ("collect", "docs/COLLECTOR.md"),
    ("status", "docs/METRICS.md"),
    ("tail", "docs/FLEET.md"),
    ("merge", "docs/FLEET.md"),
    ("demo", "README.md"),
];

/// Whether `text` names `flag` (`--name` or `-x`) as a flag, not as the
/// start of a longer one.
fn names_flag(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + flag.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '-')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
    })
}

/// The visible flags of a subcommand, each as its spellings (long, short).
fn flags_of(sub: &clap::Command) -> Vec<Vec<String>> {
    sub.get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
        .map(|a| {
            let long = a.get_long().map(|l| format!("--{l}"));
            let short = a.get_short().map(|s| format!("-{s}"));
            long.into_iter().chain(short).collect()
        })
        .filter(|spellings: &Vec<String>| !spellings.is_empty())
        .collect()
}

#[test]
fn every_flag_is_documented_in_its_chapter() {
    use clap::CommandFactory;
    let cli = Cli::command();
    let mut missing = Vec::new();
    let mut covered = HashSet::new();
    for (name, chapter) in CHAPTERS {
        let text = std::fs::read_to_string(root().join(chapter)).unwrap();
        let sub = cli
            .find_subcommand(name)
            .unwrap_or_else(|| panic!("no subcommand {name}"));
        covered.insert(*name);
        // Its own subcommands (`collect status`) are documented with it.
        let nested = sub
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| (format!("{name} {}", s.get_name()), s));
        for (full, cmd) in std::iter::once((name.to_string(), sub)).chain(nested) {
            for spellings in flags_of(cmd) {
                if !spellings.iter().any(|f| names_flag(&text, f)) {
                    missing.push(format!(
                        "{chapter}: logferry {full} {}",
                        spellings.join(", ")
                    ));
                }
            }
        }
    }
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        assert!(
            covered.contains(sub.get_name()),
            "logferry {} has no chapter in CHAPTERS",
            sub.get_name()
        );
    }
    assert!(
        missing.is_empty(),
        "flags no chapter names:\n{}",
        missing.join("\n")
    );
}

/// Flags in the first two cells of the option tables of a chapter: each
/// must be a flag of the subcommand the table is about.
#[test]
fn flags_in_option_tables_exist() {
    use clap::CommandFactory;
    let cli = Cli::command();
    let mut failures = Vec::new();
    for (name, chapter) in [
        ("ship", "docs/CONFIGURATION.md"),
        ("collect", "docs/COLLECTOR.md"),
    ] {
        // The subcommand's flags and the global ones (`--log-format`).
        let known: HashSet<String> = flags_of(cli.find_subcommand(name).unwrap())
            .into_iter()
            .chain(flags_of(&cli))
            .flatten()
            .collect();
        let text = std::fs::read_to_string(root().join(chapter)).unwrap();
        for (i, line) in text.lines().enumerate() {
            let Some(row) = line.strip_prefix('|') else {
                continue;
            };
            for cell in row.split(" | ").take(2) {
                for code in cell.split('`').skip(1).step_by(2) {
                    let Some(flag) = code.split([' ', '=']).next().filter(|f| f.starts_with('-'))
                    else {
                        continue;
                    };
                    if !known.contains(flag) {
                        failures.push(format!(
                            "{chapter}:{}: {flag} is not a flag of logferry {name}",
                            i + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Commands in running text (`` `logferry tail --from beginning` ``) are
/// often partial, so only their flags are checked: each must be one of the
/// subcommand's (or a global one).
#[test]
fn inline_commands_name_real_flags() {
    use clap::CommandFactory;
    let cli = Cli::command();
    let global: Vec<String> = flags_of(&cli).into_iter().flatten().collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let mut in_fence = false;
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_fence = !in_fence;
            }
            if in_fence {
                continue;
            }
            for code in line.split('`').skip(1).step_by(2) {
                let mut words = code.split_whitespace();
                if words.next() != Some("logferry") {
                    continue;
                }
                let Some(sub) = words.next().and_then(|w| cli.find_subcommand(w)) else {
                    continue;
                };
                checked += 1;
                let known: Vec<String> = flags_of(sub).into_iter().flatten().collect();
                for word in words {
                    let flag = word.trim_start_matches('[').trim_end_matches(']');
                    let flag = flag.split('=').next().unwrap_or(flag);
                    if flag.starts_with('-')
                        && !known.contains(&flag.to_string())
                        && !global.contains(&flag.to_string())
                    {
                        failures.push(format!(
                            "{}:{}: `{code}`: {flag} is not a flag of logferry {}",
                            relative(&doc),
                            i + 1,
                            sub.get_name()
                        ));
                    }
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} inline commands found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn flag_names_are_matched_whole() {
    assert!(names_flag("with `--host NAME`", "--host"));
    assert!(!names_flag("with `--host-broker`", "--host"));
    assert!(!names_flag("with `--hosts`", "--host"));
    assert!(names_flag("`-X key=value`", "-X"));
    assert!(!names_flag("re-Xa", "-X"));
}

// ---------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------

/// GitHub's anchor for a heading: lower case, punctuation other than `-`
/// and `_` dropped, spaces to `-`; repeats get `-1`, `-2`...
fn anchors(doc: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut in_fence = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        if in_fence {
            continue;
        }
        let title = title.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while !seen.insert(candidate.clone()) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
    }
    seen
}

/// Relative link targets `](target)` outside code, with their lines.
fn links(doc: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (i, line) in doc.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = &after[..end];
            if !target.contains("://") && !target.starts_with("mailto:") {
                out.push((i + 1, target.to_string()));
            }
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn relative_links_name_files_and_headings_that_exist() {
    let mut failures = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (line, target) in links(&text) {
            let at = format!("{}:{line}", relative(&doc));
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(file)
            };
            if !path.exists() {
                failures.push(format!("{at}: {target}: no such file"));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            let target_text = std::fs::read_to_string(&path).unwrap_or_default();
            if !anchors(&target_text).contains(anchor) {
                failures.push(format!("{at}: {target}: no heading with this anchor"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "broken links:\n{}",
        failures.join("\n")
    );
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    let a = anchors(
        "# A\n## Exactly once (`exactly_once = true`)\n### Limits\n### Limits\n```\n# not\n```\n",
    );
    for expected in ["a", "exactly-once-exactly_once--true", "limits", "limits-1"] {
        assert!(a.contains(expected), "{expected} in {a:?}");
    }
    assert!(!a.contains("not"));
}
