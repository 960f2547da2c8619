//! CPU time and memory of this process (or another one), read from `/proc`, for the benches:
//! they report CPU time per event or request, which survives a noisy machine better than
//! wall time.

use std::time::Duration;

use anyhow::Context;
use nix::time::{clock_gettime, ClockId};

/// This thread's CPU time so far, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_ns() -> u64 {
    cpu_clock_ns(ClockId::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of this process so far, every thread (those that ended included), in nanoseconds
/// (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu_ns() -> u64 {
    cpu_clock_ns(ClockId::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock_ns(clock: ClockId) -> u64 {
    clock_gettime(clock).map_or(0, |t| {
        (t.tv_sec() as u64).saturating_mul(1_000_000_000) + t.tv_nsec() as u64
    })
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat` (10 ms steps).
pub fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unreadable /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        f.get(i - 3)
            .context("short /proc stat")?
            .parse::<u64>()
            .context("unreadable /proc stat field")
    };
    // utime and stime (fields 14 and 15) in USER_HZ ticks, 100 per second on Linux.
    Ok(Duration::from_millis((ticks(14)? + ticks(15)?) * 10))
}

/// The process's resident set, in bytes.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
