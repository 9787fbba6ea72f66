//! Child processes that cannot outlive the test binary.
//!
//! A Dovecot kept in a `static` is never dropped, and a test binary killed by
//! a timeout drops nothing. So children get `PR_SET_PDEATHSIG`, which fires
//! when the *thread* that forked them ends: they are forked from one thread
//! that lives as long as the process. Each child leads its own process group,
//! so stopping it also reaches the workers it forked.

use std::fs;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

type Request = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from the long-lived spawner thread, in a new process group,
/// with SIGTERM as its parent-death signal.
pub(crate) fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        thread::Builder::new()
            .name("testbed-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the testbed spawner thread");
        Mutex::new(tx)
    });
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .map_err(|_| io::Error::other("spawner lock poisoned"))?
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

/// Sends `signal` to one process.
pub(crate) fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Sends `signal` to every process of the group led by `pid`.
pub(crate) fn signal_group(pid: u32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

/// SIGTERM, then waits for the child; SIGKILL when it takes longer than
/// `grace`. Finally kills whatever is left of its group.
pub(crate) fn stop(child: &mut Child, grace: Duration) {
    let pid = child.id();
    if grace > Duration::ZERO {
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
    // Orphaned workers become zombies of init, which may reap them slowly;
    // they hold no ports or files, so nothing waits for them.
    signal_group(pid, libc::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
}

/// The last 8 KiB of a (log) file, for error messages; empty if unreadable.
pub(crate) fn read_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let start = text.len().saturating_sub(8192);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}
