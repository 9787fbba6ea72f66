//! Where the CPU went during a run besides the bridge: Dovecot (its master's process
//! group: master, login, auth and the bridge's `imap` process, living or reaped) and
//! this process (the fake API; the benchmark itself only waits meanwhile).

use std::fs;
use std::path::Path;
use std::time::Duration;

/// CPU time used so far by every process of Dovecot's process group, reaped
/// children included; `None` when the master's pid cannot be read.
pub(crate) fn dovecot(base: &Path) -> Option<Duration> {
    let pid: i32 = fs::read_to_string(base.join("run").join("master.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let mut ticks = 0u64;
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{name}/stat")) else {
            continue;
        };
        // After "(comm)": state ppid pgrp ... utime(14) stime cutime cstime (1-based).
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        if field(5) == Some(pid as u64) {
            ticks += (14..=17).filter_map(field).sum::<u64>();
        }
    }
    Some(from_ticks(ticks))
}

/// CPU time used so far by a PostgreSQL whose data dir is `data`: the postmaster with
/// the backends it reaped, and those still alive; `None` when its pid cannot be read.
pub(crate) fn postgres(data: &Path) -> Option<Duration> {
    // postmaster.pid's first line is the postmaster's pid.
    let pid: u64 = fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    let mut ticks = 0u64;
    for (this, fields) in processes() {
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        if this == pid || field(4) == Some(pid) {
            ticks += (14..=17).filter_map(field).sum::<u64>();
        }
    }
    Some(from_ticks(ticks))
}

/// Every process's pid and its `/proc/<pid>/stat` fields after "(comm) ".
fn processes() -> Vec<(u64, Vec<String>)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let pid: u64 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = stat.rsplit_once(") ")?.1;
            Some((pid, rest.split(' ').map(str::to_string).collect()))
        })
        .collect()
}

/// CPU time of this process so far (all threads).
pub(crate) fn this_process() -> Duration {
    // SAFETY: an all-zero rusage is a valid value, and the pointer is valid for writes.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn from_ticks(ticks: u64) -> Duration {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Duration::from_micros(ticks * 1_000_000 / hz)
}
