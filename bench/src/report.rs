//! Results: one JSON object per (scenario, tool) run, and the markdown
//! tables and SVG bar charts made from them.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One tool's run in one scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Row {
    /// Scenario key, e.g. `backlog`, `steady-10`, `rotate-10`, `files-10000`.
    pub scenario: String,
    /// Human title of the scenario, used as the table heading.
    pub title: String,
    /// Kafka nodes in the cluster (1 = throughput runs, 3 = durability).
    pub nodes: i32,
    pub partitions: i32,
    pub tool: String,
    /// Set when the tool could not run this scenario; the numbers are then 0.
    pub skipped: Option<String>,
    pub input_lines: u64,
    pub input_bytes: u64,
    /// Rate the generator achieved (steady scenarios), MB/s.
    pub input_mb_s: f64,
    pub landed_records: u64,
    pub landed_bytes: u64,
    pub missing: u64,
    pub duplicates: u64,
    pub unparsed: u64,
    /// From data available (tool start for backlog, generator start
    /// otherwise) to the broker's append time of the last record.
    pub duration_s: f64,
    pub mb_s: f64,
    pub lines_s: f64,
    pub cpu_s: f64,
    pub cpu_s_per_gb: f64,
    /// Sum over the tool's processes of each one's peak RSS.
    pub peak_rss_mb: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Write to seen by a read_committed consumer following the topic
    /// (`--visible-latency`): what a transactional producer's commit adds.
    #[serde(default)]
    pub visible_p50_ms: Option<f64>,
    #[serde(default)]
    pub visible_p99_ms: Option<f64>,
    #[serde(default)]
    pub visible_max_ms: Option<f64>,
    /// Per process: name, CPU seconds, peak RSS MB.
    pub procs: Vec<(String, f64, f64)>,
    /// Anything odd: killed after SIGTERM, non-zero exit, stalled.
    pub notes: Vec<String>,
}

impl Row {
    pub fn complete(&self) -> bool {
        self.skipped.is_none() && self.missing == 0 && self.duplicates == 0 && self.unparsed == 0
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

/// Markdown: one table per scenario (in first-seen order), every tool a row.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    for key in scenario_keys(rows) {
        let rs: Vec<&Row> = rows
            .iter()
            .filter(|r| (r.scenario.as_str(), r.nodes) == (key.0.as_str(), key.1))
            .collect();
        let first = rs[0];
        let _ = writeln!(
            out,
            "### {} ({} broker{}, {} partition{})\n",
            first.title,
            first.nodes,
            if first.nodes == 1 { "" } else { "s" },
            first.partitions,
            if first.partitions == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            out,
            "Input: {} lines, {:.1} MB{}.\n",
            first.input_lines,
            first.input_bytes as f64 / 1e6,
            if first.input_mb_s > 0.0 {
                format!(", written at {:.1} MB/s", first.input_mb_s)
            } else {
                String::new()
            }
        );
        out.push_str("| tool | MB/s landed | lines/s | CPU-s | CPU-s/GB | peak RSS MB | p50 ms | p99 ms | max ms | missing | dup | notes |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for r in rs {
            if let Some(why) = &r.skipped {
                let _ = writeln!(
                    out,
                    "| {} | - | - | - | - | - | - | - | - | - | - | not run: {} |",
                    r.tool.replace('|', "\\|"),
                    why
                );
                continue;
            }
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} |",
                r.tool.replace('|', "\\|"),
                r.mb_s,
                r.lines_s,
                r.cpu_s,
                r.cpu_s_per_gb,
                r.peak_rss_mb,
                opt(r.p50_ms),
                opt(r.p99_ms),
                opt(r.max_ms),
                r.missing,
                r.duplicates,
                r.notes.join("; ").replace('|', "/")
            );
        }
        out.push('\n');
    }
    out
}

fn scenario_keys(rows: &[Row]) -> Vec<(String, i32)> {
    let mut keys: Vec<(String, i32)> = Vec::new();
    for r in rows {
        let k = (r.scenario.clone(), r.nodes);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// A metric to chart: label, unit, and how to read it from a row.
pub struct Metric {
    pub label: &'static str,
    pub get: fn(&Row) -> Option<f64>,
}

pub const METRICS: &[Metric] = &[
    Metric {
        label: "MB/s landed (higher is better)",
        get: |r| Some(r.mb_s),
    },
    Metric {
        label: "CPU-s per GB (lower is better)",
        get: |r| Some(r.cpu_s_per_gb),
    },
    Metric {
        label: "peak RSS MB (lower is better)",
        get: |r| Some(r.peak_rss_mb),
    },
    Metric {
        label: "p99 latency ms (lower is better)",
        get: |r| r.p99_ms,
    },
];

const COLORS: &[&str] = &[
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A chart for a group of scenarios (e.g. all steady rates): one panel per
/// metric, in each a bar per (scenario, tool). Hand-written SVG: no plotting
/// library, the file is small and diffable.
pub fn svg_chart(title: &str, rows: &[&Row], metrics: &[&Metric]) -> String {
    let rows: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.skipped.is_none())
        .collect();
    let mut tools: Vec<&str> = Vec::new();
    for r in &rows {
        if !tools.contains(&r.tool.as_str()) {
            tools.push(&r.tool);
        }
    }
    let bar_h = 14.0;
    let label_w = 230.0;
    let plot_w = 360.0;
    let panel_w = label_w + plot_w + 70.0;
    let panel_h = rows.len() as f64 * (bar_h + 4.0) + 40.0;
    let cols = 2usize;
    let nrows = metrics.len().div_ceil(cols);
    let width = panel_w * cols as f64 + 20.0;
    let legend_h = 24.0;
    let height = 40.0 + legend_h + panel_h * nrows as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (i, t) in tools.iter().enumerate() {
        let x = 10.0 + i as f64 * 150.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x:.0}" y="34" width="12" height="12" fill="{}"/><text x="{:.0}" y="44">{}</text>"#,
            COLORS[i % COLORS.len()],
            x + 16.0,
            esc(t)
        );
    }
    for (mi, m) in metrics.iter().enumerate() {
        let ox = 10.0 + (mi % cols) as f64 * panel_w;
        let oy = 40.0 + legend_h + (mi / cols) as f64 * panel_h;
        let _ = writeln!(
            s,
            r#"<text x="{ox:.0}" y="{:.0}" font-weight="bold">{}</text>"#,
            oy + 14.0,
            esc(m.label)
        );
        let max = rows
            .iter()
            .filter_map(|r| (m.get)(r))
            .fold(0.0f64, f64::max);
        for (ri, r) in rows.iter().enumerate() {
            let y = oy + 24.0 + ri as f64 * (bar_h + 4.0);
            let ti = tools.iter().position(|t| *t == r.tool).unwrap_or(0);
            let label = format!("{} · {}", r.title_short(), r.tool);
            let _ = writeln!(
                s,
                r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text>"#,
                ox + label_w - 6.0,
                y + bar_h - 3.0,
                esc(&label)
            );
            match (m.get)(r) {
                Some(v) => {
                    let w = if max > 0.0 {
                        (v / max * plot_w).max(1.0)
                    } else {
                        1.0
                    };
                    let _ = writeln!(
                        s,
                        r#"<rect x="{:.0}" y="{y:.0}" width="{w:.1}" height="{bar_h:.0}" fill="{}"/><text x="{:.1}" y="{:.0}">{}</text>"#,
                        ox + label_w,
                        COLORS[ti % COLORS.len()],
                        ox + label_w + w + 4.0,
                        y + bar_h - 3.0,
                        fmt_num(v)
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        r#"<text x="{:.0}" y="{:.0}" fill="gray">n/a</text>"#,
                        ox + label_w + 4.0,
                        y + bar_h - 3.0
                    );
                }
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl Row {
    /// Short scenario label for chart rows.
    pub fn title_short(&self) -> String {
        if self.nodes == 1 {
            self.scenario.clone()
        } else {
            format!("{} ({}n)", self.scenario, self.nodes)
        }
    }
}
