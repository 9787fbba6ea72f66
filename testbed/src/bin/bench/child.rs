//! The bridge as a child process, measured by the kernel: wall time, CPU time and
//! peak RSS of that one process (`wait4`'s rusage), never Dovecot's or the fake API's.
//!
//! Linux carries a parent's peak RSS into a child it spawns (the high-water mark of
//! the address space being replaced at `exec` is kept in `ru_maxrss`), and this
//! process is large: it holds the fake API and everything it stored. So the bridge is
//! started by a small helper, this binary re-executed as `bench __measure BIN ARGS…`,
//! which spawns it, reports its pid, reaps it with `wait4` and prints the figures.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The helper's `argv[1]`.
pub(crate) const MEASURE: &str = "__measure";

/// What the kernel says about a finished child.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Usage {
    pub exit_code: Option<i32>,
    pub wall: Duration,
    /// User plus system CPU time.
    pub cpu: Duration,
    pub peak_rss_kib: u64,
}

impl Usage {
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

/// A running bridge under its measuring helper.
pub(crate) struct Bridge {
    helper: Child,
    out: BufReader<ChildStdout>,
    pid: u32,
}

impl Bridge {
    /// Starts `bin --config CONFIG ARGS…` with its log (stderr) appended to `log`.
    pub(crate) fn spawn(bin: &Path, config: &Path, args: &[&str], log: &Path) -> Result<Bridge> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        let mut helper = Command::new(std::env::current_exe()?)
            .arg(MEASURE)
            .arg(bin)
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("THULIUM_MAIL_BRIDGE_CONFIG")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .context("run the measuring helper")?;
        let mut out = BufReader::new(helper.stdout.take().context("helper stdout")?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        let pid = line
            .strip_prefix("pid ")
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("the helper said {line:?}, not its child's pid"))?;
        Ok(Bridge { helper, out, pid })
    }

    /// The bridge's own pid (for `/proc/<pid>/status`).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Asks the bridge to stop (SIGTERM: it finishes the mail in hand and exits 0).
    pub(crate) fn terminate(&self) {
        signal(self.pid, libc::SIGTERM);
    }

    /// Waits for the bridge's exit (blocking), killing it after `limit`.
    pub(crate) fn wait_at_most(mut self, limit: Duration) -> Result<Usage> {
        let pid = self.pid;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if rx.recv_timeout(limit).is_err() {
                signal(pid, libc::SIGKILL);
            }
        });
        let mut line = String::new();
        let read = self.out.read_line(&mut line);
        let _ = tx.send(());
        let _ = watchdog.join();
        let _ = self.helper.wait();
        read?;
        let usage = parse_usage(&line)?;
        if usage.exit_code.is_none() {
            bail!("the bridge was killed (no exit within {limit:?})");
        }
        Ok(usage)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if matches!(self.helper.try_wait(), Ok(None)) {
            signal(self.pid, libc::SIGKILL);
            let _ = self.helper.wait();
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// The helper: `bench __measure BIN ARGS…`. Prints `pid N`, then after the exit
/// `usage EXIT WALL_US CPU_US MAXRSS_KIB` (EXIT is -1 when killed by a signal).
pub(crate) fn measure_main(args: &[String]) -> Result<()> {
    let (bin, rest) = args.split_first().context("__measure BIN ARGS…")?;
    // BENCH_WRAP="perf record -g -o /tmp/bridge.perf --" profiles the bridge (the
    // figures then include the wrapper).
    let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
    let mut command: Vec<&str> = wrap.split_whitespace().collect();
    command.push(bin);
    let started = Instant::now();
    let child = Command::new(command[0])
        .args(&command[1..])
        .args(rest)
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("run {bin}"))?;
    let pid = child.id();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "pid {pid}")?;
    stdout.flush()?;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are valid for writes for the duration of the call.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == pid as libc::pid_t {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4");
        }
    }
    let wall = started.elapsed();
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    let exit = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    writeln!(
        stdout,
        "usage {exit} {} {} {}",
        wall.as_micros(),
        micros(usage.ru_utime) + micros(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        usage.ru_maxrss
    )?;
    stdout.flush()?;
    drop(child);
    Ok(())
}

fn parse_usage(line: &str) -> Result<Usage> {
    let fields: Vec<i64> = line
        .strip_prefix("usage ")
        .with_context(|| format!("the helper said {line:?}, not the usage"))?
        .split_whitespace()
        .map(|f| f.parse::<i64>())
        .collect::<Result<_, _>>()?;
    let [exit, wall_us, cpu_us, rss_kib] = fields[..] else {
        bail!("the helper said {line:?}");
    };
    Ok(Usage {
        exit_code: (exit >= 0).then_some(exit as i32),
        wall: Duration::from_micros(wall_us as u64),
        cpu: Duration::from_micros(cpu_us as u64),
        peak_rss_kib: rss_kib as u64,
    })
}
