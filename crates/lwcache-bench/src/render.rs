//! A [`Report`] as JSON, as a markdown page, and as an SVG latency chart.
//!
//! The SVG is written by hand: one horizontal bar per measured operation on
//! a logarithmic time axis, dark up to p50 and light from p50 to p99, so
//! that a cached read and a Neo4j read fit on the same chart.

mod http;
mod players;

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::report::{
    ActivationRow, HitRatioRow, LatencyComparison, MemoryRow, Report, TargetCheck, ThroughputRow,
};
use crate::stats::Summary;

/// The file name of the chart beside the markdown page.
pub const CHART_FILE: &str = "latency.svg";

/// The machine's logical cores, as its environment states them; 0 when it
/// does not.
fn cores(report: &Report) -> usize {
    report
        .environment
        .iter()
        .find(|(k, _)| k == "logical cores")
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The report as a JSON document.
pub fn to_json(report: &Report) -> Value {
    let environment: serde_json::Map<String, Value> = report
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "mode": report.mode,
        "environment": environment,
        "latency": report.latency.iter().map(latency_json).collect::<Vec<_>>(),
        "throughput": report.throughput.iter().map(throughput_json).collect::<Vec<_>>(),
        "http": http::json(&report.http, cores(report)),
        "activation": report.activation.iter().map(activation_json).collect::<Vec<_>>(),
        "memory": report.memory.as_ref().map(memory_json),
        "hit_ratio": report.hit_ratio.iter().map(hit_ratio_json).collect::<Vec<_>>(),
        "players": players::json(&report.players),
        "targets": report.targets.iter().map(target_json).collect::<Vec<_>>(),
        "not_measured": report.not_measured.iter().map(|n| json!({
            "scenario": n.scenario,
            "why": n.why,
        })).collect::<Vec<_>>(),
        "notes": report.notes,
    })
}

fn summary_json(s: &Summary) -> Value {
    json!({
        "count": s.count,
        "min_us": round(s.min_us),
        "p50_us": round(s.p50_us),
        "p90_us": round(s.p90_us),
        "p99_us": round(s.p99_us),
        "p999_us": round(s.p999_us),
        "max_us": round(s.max_us),
        "mean_us": round(s.mean_us),
    })
}

fn latency_json(c: &LatencyComparison) -> Value {
    json!({
        "id": c.id,
        "title": c.title,
        "subject": { "label": c.subject.label, "latency": summary_json(&c.subject.summary) },
        "baseline": { "label": c.baseline.label, "latency": summary_json(&c.baseline.summary) },
        "ratio_p50": c.ratio_p50().map(round),
        "ratio_p99": c.ratio_p99().map(round),
        "note": c.note,
    })
}

fn throughput_json(t: &ThroughputRow) -> Value {
    json!({
        "topology": t.topology,
        "concurrency": t.concurrency,
        "requests": t.requests,
        "lwcache_ops_per_s": round(t.lwcache_ops_per_s),
        "redis_rs_ops_per_s": round(t.redis_rs_ops_per_s),
        "lwcache_fallbacks": t.lwcache_fallbacks,
        "redis_benchmark_ops_per_s": t.redis_benchmark_ops_per_s.map(round),
        "ratio_to_redis_benchmark": t.ratio_to_redis_benchmark().map(round),
        "ratio_to_redis_rs": t.ratio_to_redis_rs().map(round),
    })
}

fn activation_json(a: &ActivationRow) -> Value {
    json!({
        "source": a.source,
        "entities": a.entities,
        "events_per_entity": a.events_per_entity,
        "keys": a.keys,
        "bytes": a.bytes,
        "activation": summary_json(&a.activation),
        "activation_round_trips": a.activation_round_trips,
        "image_read": summary_json(&a.image_read),
        "naive_per_key_set": summary_json(&a.naive),
        "naive_round_trips": a.naive_round_trips,
        "pipelined_set": summary_json(&a.pipelined),
    })
}

fn memory_json(m: &MemoryRow) -> Value {
    json!({
        "entities": m.entities,
        "what": m.what,
        "lwcache_memory_usage_bytes": round(m.lwcache_memory_usage),
        "json_memory_usage_bytes": round(m.json_memory_usage),
        "lwcache_value_bytes": round(m.lwcache_value_bytes),
        "json_value_bytes": round(m.json_value_bytes),
        "ratio": m.ratio().map(round),
    })
}

fn hit_ratio_json(h: &HitRatioRow) -> Value {
    json!({
        "source": h.source,
        "workload": h.workload,
        "turns": h.turns,
        "warmup_turns": h.warmup_turns,
        "reads": h.reads,
        "hits": h.hits,
        "cache_served": h.cache_served,
        "writes": h.writes,
        "fills_rejected": h.fills_rejected,
        "fallbacks": h.fallbacks,
        "hit_ratio_overall": h.overall().map(round),
        "hit_ratio_after_warmup": h.after_warmup().map(round),
    })
}

fn target_json(t: &TargetCheck) -> Value {
    json!({
        "name": t.name,
        "goal": t.goal,
        "measured": t.measured,
        "met": t.met,
        "why": t.why,
    })
}

/// Three decimals are more than any figure here can claim.
fn round(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

/// A duration in microseconds, with a unit that fits it.
pub fn fmt_us(us: f64) -> String {
    if us.abs() >= 1_000_000.0 {
        format!("{:.2} s", us / 1_000_000.0)
    } else if us.abs() >= 1_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"))
}

fn fmt_rate(ops: f64) -> String {
    let whole = ops.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_percent(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// Keeps a table cell on one line and its pipes literal.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The report as a markdown page; `json_path` is where the JSON was
/// written, named in the page.
pub fn to_markdown(report: &Report, json_path: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `cargo xtask bench{}` ({} mode); the raw figures are in \
         `{json_path}`. Every figure is measured against its baseline in the same \
         run, on the same server and the same bytes.\n",
        if report.mode == "full" { " --full" } else { "" },
        report.mode
    );

    let _ = writeln!(md, "## Machine and conditions\n");
    let _ = writeln!(md, "| | |\n| --- | --- |");
    for (k, v) in &report.environment {
        let _ = writeln!(md, "| {} | {} |", cell(k), cell(v));
    }
    md.push('\n');

    if !report.targets.is_empty() {
        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "| target | goal | measured | met | why not |");
        let _ = writeln!(md, "| --- | --- | --- | --- | --- |");
        for t in &report.targets {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                cell(&t.name),
                cell(&t.goal),
                cell(&t.measured),
                if t.met { "yes" } else { "**missed**" },
                cell(t.why.as_deref().unwrap_or(""))
            );
        }
        md.push('\n');
    }

    if !report.latency.is_empty() {
        let _ = writeln!(md, "## Latency\n");
        let _ = writeln!(md, "![p50 and p99 latency per scenario]({CHART_FILE})\n");
        let _ = writeln!(
            md,
            "| scenario | lwcache | p50 | p99 | baseline | p50 | p99 | ratio p50 | ratio p99 | samples |"
        );
        let _ = writeln!(
            md,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for c in &report.latency {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&c.title),
                cell(&c.subject.label),
                fmt_us(c.subject.summary.p50_us),
                fmt_us(c.subject.summary.p99_us),
                cell(&c.baseline.label),
                fmt_us(c.baseline.summary.p50_us),
                fmt_us(c.baseline.summary.p99_us),
                fmt_ratio(c.ratio_p50()),
                fmt_ratio(c.ratio_p99()),
                c.subject.summary.count,
            );
        }
        md.push('\n');
        for c in report.latency.iter().filter(|c| !c.note.is_empty()) {
            let _ = writeln!(md, "- {}: {}", c.title, c.note);
        }
        md.push('\n');
    }

    if !report.throughput.is_empty() {
        let mut notes = Vec::new();
        let _ = writeln!(md, "## Read throughput\n");
        let _ = writeln!(
            md,
            "| Redis | tasks | requests | lwcache reads/s | redis-rs GET/s | redis-benchmark GET/s | lwcache / redis-benchmark | lwcache / redis-rs |"
        );
        let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- | --- |");
        for t in report.throughput.iter().filter(|t| t.lwcache_fallbacks > 0) {
            notes.push(format!(
                "{} tasks ({}): {} of {} lwcache reads fell back to the source (a cache call over the manager's cache timeout); they are counted in the rate",
                t.concurrency, t.topology, t.lwcache_fallbacks, t.requests
            ));
        }
        for t in &report.throughput {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                t.topology,
                t.concurrency,
                t.requests,
                fmt_rate(t.lwcache_ops_per_s),
                fmt_rate(t.redis_rs_ops_per_s),
                t.redis_benchmark_ops_per_s
                    .map_or_else(|| "not run".to_owned(), fmt_rate),
                fmt_ratio(t.ratio_to_redis_benchmark()),
                fmt_ratio(t.ratio_to_redis_rs()),
            );
        }
        md.push('\n');
        for note in &notes {
            let _ = writeln!(md, "- {note}");
        }
        if !notes.is_empty() {
            md.push('\n');
        }
    }

    http::markdown(&mut md, &report.http, cores(report));

    if !report.activation.is_empty() {
        let _ = writeln!(md, "## Activation\n");
        let _ = writeln!(
            md,
            "| source | world | keys | activation p50 | round trips | of which image read p50 | naive per-key SET p50 | round trips | pipelined SET p50 | activation / naive |"
        );
        let _ = writeln!(
            md,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for a in &report.activation {
            let _ = writeln!(
                md,
                "| {} | {} entities × {} events | {} ({} KiB) | {} | {} | {} | {} | {} | {} | {} |",
                cell(&a.source),
                a.entities,
                a.events_per_entity,
                a.keys,
                a.bytes / 1024,
                fmt_us(a.activation.p50_us),
                a.activation_round_trips,
                fmt_us(a.image_read.p50_us),
                fmt_us(a.naive.p50_us),
                a.naive_round_trips,
                fmt_us(a.pipelined.p50_us),
                fmt_ratio(crate::stats::ratio(a.activation.p50_us, a.naive.p50_us)),
            );
        }
        md.push('\n');
    }

    if let Some(m) = &report.memory {
        let _ = writeln!(md, "## Memory per cached entity\n");
        let _ = writeln!(
            md,
            "| entities | lwcache MEMORY USAGE | JSON MEMORY USAGE | lwcache / JSON | lwcache value | JSON value |"
        );
        let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- |");
        let _ = writeln!(
            md,
            "| {} ({}) | {:.0} B | {:.0} B | {} | {:.0} B | {:.0} B |\n",
            m.entities,
            cell(&m.what),
            m.lwcache_memory_usage,
            m.json_memory_usage,
            fmt_ratio(m.ratio()),
            m.lwcache_value_bytes,
            m.json_value_bytes,
        );
    }

    if !report.hit_ratio.is_empty() {
        let _ = writeln!(md, "## Hit ratio\n");
        let _ = writeln!(
            md,
            "| source | workload | turns | reads | writes | served by the cache, overall | after warm-up ({} turns) | fills rejected | fallbacks |",
            report.hit_ratio[0].warmup_turns
        );
        let _ = writeln!(
            md,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for h in &report.hit_ratio {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&h.source),
                cell(&h.workload),
                h.turns,
                h.reads,
                h.writes,
                fmt_percent(h.overall()),
                fmt_percent(h.after_warmup()),
                h.fills_rejected,
                h.fallbacks,
            );
        }
        md.push('\n');
    }

    players::markdown(&mut md, &report.players);

    if !report.not_measured.is_empty() {
        let _ = writeln!(md, "## Not measured\n");
        for n in &report.not_measured {
            let _ = writeln!(md, "- {}: {}", n.scenario, n.why);
        }
        md.push('\n');
    }

    if !report.notes.is_empty() {
        let _ = writeln!(md, "## How the figures were taken\n");
        for n in &report.notes {
            let _ = writeln!(md, "- {n}");
        }
        md.push('\n');
    }
    md
}

/// Escapes text for SVG content and attribute values.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

const LABEL_W: f64 = 330.0;
const PLOT_W: f64 = 520.0;
const RIGHT_W: f64 = 150.0;
const BAR_H: f64 = 14.0;
const GROUP_GAP: f64 = 18.0;
const TOP: f64 = 70.0;
const SUBJECT_COLOURS: (&str, &str) = ("#1f5fa8", "#9dbfe6");
const BASELINE_COLOURS: (&str, &str) = ("#5f5f5f", "#c4c4c4");

/// The latency comparisons as an SVG bar chart: per comparison, a bar for
/// lwcache and one for its baseline, each dark to p50 and light to p99, on
/// a logarithmic axis with the spec's 1 ms line.
pub fn to_svg(report: &Report, subtitle: &str) -> String {
    let comparisons = &report.latency;
    let values = comparisons.iter().flat_map(|c| {
        [
            c.subject.summary.p50_us,
            c.subject.summary.p99_us,
            c.baseline.summary.p50_us,
            c.baseline.summary.p99_us,
        ]
    });
    let (lo, hi) = values
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi <= 0.0 { (1.0, 1_000.0) } else { (lo, hi) };
    // Whole decades, at least up to the 1 ms line.
    let lo_exp = lo.log10().floor().min(2.0) as i32;
    let hi_exp = (hi.max(1_000.0).log10().ceil() as i32).max(lo_exp + 1);
    let x = |us: f64| {
        let e = us.max(10f64.powi(lo_exp)).log10();
        LABEL_W + (e - f64::from(lo_exp)) / f64::from(hi_exp - lo_exp) * PLOT_W
    };
    let group_h = 2.0 * BAR_H + 6.0 + GROUP_GAP;
    let plot_h = comparisons.len() as f64 * group_h;
    let width = LABEL_W + PLOT_W + RIGHT_W;
    let height = TOP + plot_h + 70.0;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="16" font-weight="bold">lwcache latency against its baselines (p50 dark, p99 light; log scale)</text>"#
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="42" fill="#444">{}</text>"##,
        xml(subtitle)
    );

    // Decade grid lines and their labels.
    let _ = writeln!(s, r##"<g stroke="#e0e0e0">"##);
    for e in lo_exp..=hi_exp {
        let gx = x(10f64.powi(e));
        let _ = writeln!(
            s,
            r#"<line x1="{gx:.1}" y1="{TOP:.0}" x2="{gx:.1}" y2="{:.1}"/>"#,
            TOP + plot_h
        );
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, r##"<g fill="#444" text-anchor="middle">"##);
    for e in lo_exp..=hi_exp {
        let gx = x(10f64.powi(e));
        let _ = writeln!(
            s,
            r#"<text x="{gx:.1}" y="{:.1}">{}</text>"#,
            TOP + plot_h + 16.0,
            xml(&fmt_us(10f64.powi(e)).replace(".00", "").replace(".0", ""))
        );
    }
    let _ = writeln!(s, "</g>");

    // The spec's NFR: cache access under 1 ms.
    let ms = x(1_000.0);
    let _ = writeln!(
        s,
        r##"<g><line x1="{ms:.1}" y1="{:.0}" x2="{ms:.1}" y2="{:.1}" stroke="#c0392b" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.0}" fill="#c0392b">NFR: cache access &lt; 1 ms</text></g>"##,
        TOP - 8.0,
        TOP + plot_h,
        ms + 4.0,
        TOP - 10.0
    );

    for (i, c) in comparisons.iter().enumerate() {
        let gy = TOP + i as f64 * group_h + GROUP_GAP / 2.0;
        let _ = writeln!(s, r#"<g id="{}">"#, xml(&c.id));
        let _ = writeln!(
            s,
            r#"<text x="10" y="{:.1}" font-weight="bold">{}</text>"#,
            gy + BAR_H - 2.0,
            xml(&c.title)
        );
        let rows = [
            (&c.subject.label, &c.subject.summary, SUBJECT_COLOURS),
            (&c.baseline.label, &c.baseline.summary, BASELINE_COLOURS),
        ];
        for (j, (label, sum, (dark, light))) in rows.into_iter().enumerate() {
            let y = gy + j as f64 * (BAR_H + 6.0);
            if j == 1 {
                let _ = writeln!(
                    s,
                    r##"<text x="20" y="{:.1}" fill="#444">vs {}</text>"##,
                    y + BAR_H - 2.0,
                    xml(label)
                );
            }
            let p50 = x(sum.p50_us);
            let p99 = x(sum.p99_us.max(sum.p50_us));
            let _ = writeln!(
                s,
                r#"<rect x="{LABEL_W:.1}" y="{y:.1}" width="{:.1}" height="{BAR_H:.0}" fill="{dark}"><title>{}: p50 {}</title></rect>"#,
                (p50 - LABEL_W).max(1.0),
                xml(label),
                xml(&fmt_us(sum.p50_us))
            );
            let _ = writeln!(
                s,
                r#"<rect x="{p50:.1}" y="{y:.1}" width="{:.1}" height="{BAR_H:.0}" fill="{light}"><title>{}: p99 {}</title></rect>"#,
                (p99 - p50).max(1.0),
                xml(label),
                xml(&fmt_us(sum.p99_us))
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}">{} / {}</text>"#,
                p99 + 5.0,
                y + BAR_H - 2.0,
                xml(&fmt_us(sum.p50_us)),
                xml(&fmt_us(sum.p99_us))
            );
        }
        let _ = writeln!(s, "</g>");
    }

    // Legend.
    let ly = TOP + plot_h + 40.0;
    let _ = writeln!(
        s,
        r#"<g><rect x="10" y="{:.1}" width="12" height="12" fill="{}"/><text x="28" y="{:.1}">lwcache, to p50</text><rect x="140" y="{:.1}" width="12" height="12" fill="{}"/><text x="158" y="{:.1}">to p99</text><rect x="230" y="{:.1}" width="12" height="12" fill="{}"/><text x="248" y="{:.1}">baseline, to p50</text><rect x="370" y="{:.1}" width="12" height="12" fill="{}"/><text x="388" y="{:.1}">to p99</text></g>"#,
        ly,
        SUBJECT_COLOURS.0,
        ly + 10.0,
        ly,
        SUBJECT_COLOURS.1,
        ly + 10.0,
        ly,
        BASELINE_COLOURS.0,
        ly + 10.0,
        ly,
        BASELINE_COLOURS.1,
        ly + 10.0,
    );
    let _ = writeln!(s, "</svg>");
    s
}
