//! The HTTP read path's rows as JSON and as a markdown section.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{fmt_rate, fmt_ratio, fmt_us, round};
use crate::report::HttpRow;

pub(super) fn json(rows: &[HttpRow], cores: usize) -> Vec<Value> {
    rows.iter().map(|h| row_json(h, cores)).collect()
}

fn row_json(h: &HttpRow, cores: usize) -> Value {
    json!({
        "near_cache": h.near,
        "worker_threads": h.worker_threads,
        "runtime": if h.sharded { "sharded" } else { "work-stealing" },
        "connections": h.connections,
        "requests": h.requests,
        "http_ops_per_s": round(h.http_ops_per_s),
        "http_p50_us": round(h.http_p50_us),
        "http_p99_us": round(h.http_p99_us),
        "redis_benchmark_ops_per_s": h.redis_benchmark_ops_per_s.map(round),
        "ratio_to_redis_benchmark": h.ratio_to_redis_benchmark().map(round),
        "ceiling_ops_per_s": h.ceiling_ops_per_s.map(round),
        "ceiling_to_redis_benchmark": h.ceiling_to_redis_benchmark().map(round),
        "ceiling_service_cpu_us": h.ceiling_service_cpu_us.map(round),
        "ceiling_wrk_cpu_us": h.ceiling_wrk_cpu_us.map(round),
        "service_cpu_us": h.service_cpu_us.map(round),
        "redis_cpu_us": h.redis_cpu_us.map(round),
        "wrk_cpu_us": h.wrk_cpu_us.map(round),
        "redis_benchmark_cpu_us": h.redis_benchmark_cpu_us.map(round),
        "redis_benchmark_redis_cpu_us": h.redis_benchmark_redis_cpu_us.map(round),
        "least_cpu_per_read_us": h.least_cpu_per_read_us().map(round),
        "cpu_bound_to_redis_benchmark": h.cpu_bound_to_redis_benchmark(cores).map(round),
    })
}

/// The service's runtime, as the tables name it.
fn threads(h: &HttpRow) -> String {
    match (h.sharded, h.worker_threads) {
        (false, 0) => "per core".to_owned(),
        (true, 0) => "sharded, per core".to_owned(),
        (false, n) => n.to_string(),
        (true, n) => format!("sharded, {n}"),
    }
}

pub(super) fn markdown(md: &mut String, rows: &[HttpRow], cores: usize) {
    if !rows.is_empty() {
        let _ = writeln!(md, "## The service's HTTP read path\n");
        let _ = writeln!(
            md,
            "`wrk` reading one character state through `lwcache serve`, with its near cache off and then on (`--near-cache-bytes 16777216`), each on the service's default runtime (one worker thread per core, stealing work), on one thread (`--worker-threads 1`) and sharded (`--runtime sharded`: one single-threaded runtime per core, each with its own listener and Redis read connection), and `redis-benchmark` GETs of the same cache key beside each row, at the same numbers of connections, in the same run.\n"
        );
        let _ = writeln!(
            md,
            "| near cache | service threads | connections | requests | HTTP reads/s | HTTP p50 | HTTP p99 | redis-benchmark GET/s | HTTP / redis-benchmark | `/healthz`/s | `/healthz` / redis-benchmark |"
        );
        let _ = writeln!(
            md,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for h in rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                if h.near { "on" } else { "off" },
                threads(h),
                h.connections,
                h.requests,
                fmt_rate(h.http_ops_per_s),
                fmt_us(h.http_p50_us),
                fmt_us(h.http_p99_us),
                h.redis_benchmark_ops_per_s
                    .map_or_else(|| "not run".to_owned(), fmt_rate),
                fmt_ratio(h.ratio_to_redis_benchmark()),
                h.ceiling_ops_per_s.map_or_else(|| "–".to_owned(), fmt_rate),
                fmt_ratio(h.ceiling_to_redis_benchmark()),
            );
        }
        let _ = writeln!(
            md,
            "\n`/healthz` is wrk against the same service's liveness route, which does no cache work: the most any read route could reach on this machine, wrk's and the HTTP layer's own cost. Where the CPU went, per request, from `/proc/<pid>/task/*/schedstat` (the service, all its threads, between the start and the end of each run; wrk and redis-benchmark, sampled every 50 ms while they run) and `INFO cpu` (redis-server), over the same runs. The least a read needs is wrk's and the service's CPU per `/healthz` request plus redis-server's per read; the bound is what {cores} busy cores could serve at that cost, over redis-benchmark: the best an HTTP read through Redis could reach here, at these costs, whatever the service did.\n"
        );
        let _ = writeln!(
            md,
            "| near cache | service threads | connections | wrk CPU / `/healthz` | service CPU / `/healthz` | wrk CPU / HTTP read | service CPU / HTTP read | redis-server CPU / HTTP read | least CPU a read | bound over redis-benchmark | redis-benchmark CPU / GET | redis-server CPU / redis-benchmark GET |"
        );
        let _ = writeln!(
            md,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for h in rows {
            let cpu = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), fmt_us);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                if h.near { "on" } else { "off" },
                threads(h),
                h.connections,
                cpu(h.ceiling_wrk_cpu_us),
                cpu(h.ceiling_service_cpu_us),
                cpu(h.wrk_cpu_us),
                cpu(h.service_cpu_us),
                cpu(h.redis_cpu_us),
                cpu(h.least_cpu_per_read_us()),
                fmt_ratio(h.cpu_bound_to_redis_benchmark(cores)),
                cpu(h.redis_benchmark_cpu_us),
                cpu(h.redis_benchmark_redis_cpu_us),
            );
        }
        md.push('\n');
    }
}
