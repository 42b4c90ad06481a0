//! CPU time of the processes a scenario runs beside lwcache: the service,
//! and the load generators (`wrk`, `redis-benchmark`), read from
//! `/proc/<pid>/task/*/schedstat` (nanoseconds on the CPU first), so that a
//! row can say where the machine's cores went.

use std::io::Read as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How often a running load generator's CPU time is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// What a load generator does before its load: connecting. Its CPU time is
/// counted from the first sample after this.
const WARM_UP: Duration = Duration::from_millis(200);

/// The CPU time process `pid` has run for, its threads running now; `None`
/// where there is no such process or no `/proc`.
pub(super) fn process_cpu(pid: u32) -> Option<Duration> {
    threads_cpu(pid).map(|(cpu, _)| cpu)
}

/// The CPU time of the threads process `pid` runs now, and how many there
/// are: a thread's time leaves the sum when it ends.
fn threads_cpu(pid: u32) -> Option<(Duration, usize)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let (mut ns, mut threads) = (0u64, 0usize);
    for task in tasks.flatten() {
        // A thread that ended since the listing is left out.
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
        threads += 1;
    }
    Some((Duration::from_nanos(ns), threads))
}

/// Runs `command` to its end, as [`Command::output`] does, and reads its
/// CPU time while it runs. Answers its output and how many cores it kept
/// busy on average between its first sample after [`WARM_UP`] and its
/// last one with as many threads as it ever ran (its load's threads end
/// before it prints its report); `None` when it ran too briefly for two
/// such samples, or without `/proc`.
pub(super) fn output_with_cores(command: &mut Command) -> std::io::Result<(Output, Option<f64>)> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<_>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<_>));
    let started = Instant::now();
    // The first sample, and the last one with the most threads seen.
    let mut window: Option<(Reading, Reading, usize)> = None;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= WARM_UP
            && let Some((cpu, threads)) = threads_cpu(child.id())
        {
            let now = (Instant::now(), cpu);
            window = match window {
                None => Some((now, now, threads)),
                Some((_, _, most)) if threads > most => Some((now, now, threads)),
                Some((first, _, most)) if threads == most => Some((first, now, most)),
                kept => kept,
            };
        }
        std::thread::sleep(SAMPLE_EVERY);
    };
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    Ok((output, window.and_then(|(a, b, _)| cores_between(a, b))))
}

/// A reading of a process: the wall clock, and its CPU time then.
type Reading = (Instant, Duration);

/// The cores kept busy between two readings.
fn cores_between(first: Reading, last: Reading) -> Option<f64> {
    let wall = last.0.checked_duration_since(first.0)?;
    let cpu = last.1.checked_sub(first.1)?;
    (wall > Duration::ZERO).then(|| cpu.as_secs_f64() / wall.as_secs_f64())
}

/// CPU time per request, in µs, of a process that kept `cores` busy while
/// serving `per_s` requests a second.
pub(super) fn per_request_us_at(cores: Option<f64>, per_s: f64) -> Option<f64> {
    let cores = cores?;
    (per_s > 0.0).then(|| cores * 1e6 / per_s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn a_busy_child_is_seen_busy_and_an_idle_one_idle() {
        if !std::path::Path::new("/proc/self/task").is_dir() {
            eprintln!("SKIPPED: no /proc here");
            return;
        }
        // One process that copies 40,000 MiB of zeros in the kernel (most
        // of a second at 50 GB/s, a few at 10), then one that sleeps.
        let (out, busy) = output_with_cores(Command::new("dd").args([
            "if=/dev/zero",
            "of=/dev/null",
            "bs=1M",
            "count=40000",
        ]))
        .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("40000+0 records out"));
        let busy = busy.unwrap();
        let (_, idle) = output_with_cores(Command::new("sleep").arg("0.6")).unwrap();
        let idle = idle.unwrap();
        assert!(idle < 0.05, "sleep kept {idle} cores busy");
        assert!(
            busy > idle + 0.1,
            "a spinning shell: {busy} cores, sleep: {idle}"
        );
    }

    #[test]
    fn per_request_cpu_is_the_cores_over_the_rate() {
        assert_eq!(per_request_us_at(Some(0.5), 100_000.0), Some(5.0));
        assert_eq!(per_request_us_at(Some(0.5), 0.0), None);
        assert_eq!(per_request_us_at(None, 10.0), None);
        let t = Instant::now();
        let later = t + Duration::from_secs(2);
        assert_eq!(
            cores_between((t, Duration::ZERO), (later, Duration::from_secs(1))),
            Some(0.5)
        );
        assert_eq!(
            cores_between((t, Duration::ZERO), (t, Duration::ZERO)),
            None
        );
    }
}
