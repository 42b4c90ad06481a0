//! The players scenario's rows as JSON and as a markdown section.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{cell, fmt_percent, round};
use crate::report::{PlayersRow, fmt_kinds};
use crate::stats::ratio;

/// The hit ratio of `row` over that of the fewest players of its source.
fn share_of_fewest(rows: &[PlayersRow], row: &PlayersRow) -> Option<f64> {
    let fewest = rows
        .iter()
        .filter(|r| r.source == row.source)
        .min_by_key(|r| r.players)?;
    ratio(row.hit_ratio()?, fewest.hit_ratio()?)
}

pub(super) fn json(rows: &[PlayersRow]) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            json!({
                "source": r.source,
                "players": r.players,
                "turns": r.turns,
                "warmup_turns": r.warmup_turns,
                "reads": r.reads,
                "hits": r.hits,
                "writes": r.writes,
                "fills_rejected": r.fills_rejected,
                "fallbacks": r.fallbacks,
                "stale_reads": r.stale_reads,
                "misses_by_kind": r.misses_by_kind.iter().map(|(k, n)| (k.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "unwritten_key_misses": r.unwritten_key_misses,
                "hit_ratio": r.hit_ratio().map(round),
                "hit_ratio_over_fewest_players": share_of_fewest(rows, r).map(round),
            })
        })
        .collect()
}

pub(super) fn markdown(md: &mut String, rows: &[PlayersRow]) {
    let Some(first) = rows.first() else {
        return;
    };
    let _ = writeln!(md, "## Players in one world\n");
    let _ = writeln!(
        md,
        "Concurrent players taking turns in one world through one manager, each level after {} warm-up turns at its concurrency.\n",
        first.warmup_turns
    );
    let _ = writeln!(
        md,
        "| source | players | turns | reads | writes | hit ratio | over 1 player | fills rejected | stale reads | fallbacks | misses by key kind | misses of keys never written |"
    );
    let _ = writeln!(
        md,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&r.source),
            r.players,
            r.turns,
            r.reads,
            r.writes,
            fmt_percent(r.hit_ratio()),
            share_of_fewest(rows, r).map_or_else(|| "–".to_owned(), |s| format!("{s:.3}")),
            r.fills_rejected,
            r.stale_reads,
            r.fallbacks,
            cell(&fmt_kinds(&r.misses_by_kind)),
            r.unwritten_key_misses,
        );
    }
    md.push('\n');
}
