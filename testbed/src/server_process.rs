//! One server run as our child under a small shell supervisor, for the
//! servers that drop root (Cyrus's master becomes `cyrus`, which clears the
//! parent-death signal) or start helpers (Courier's authdaemond): the shell
//! stays root and tied to us, and takes its children down when it goes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::ports;
use crate::process;

/// How long a start may take before we call it failed.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `sh -c SUPERVISOR sh CMD ARGS...`: runs CMD as its child and forwards
/// TERM (ours on drop, or the parent-death signal) to it.
pub(crate) const SUPERVISOR: &str = r#"
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM INT HUP
wait "$child"
"#;

/// How long a stop waits for the killed processes to let go of the ports.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// A start failed because another process took one of our ports meanwhile.
const PORT_TAKEN: &str = "a port was taken meanwhile";

/// Runs `try_start` up to three times: again (with new ports) when a port it had chosen
/// was taken by another process meanwhile.
pub(crate) fn start_retrying<T>(what: &str, try_start: impl Fn() -> Result<T>) -> Result<T> {
    let mut last_error = None;
    for _ in 0..3 {
        match try_start() {
            Ok(server) => return Ok(server),
            Err(e) if format!("{e:#}").contains(PORT_TAKEN) => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("{what} did not start")))
}

/// A server's process tree; killed (whole process group) on drop.
pub(crate) struct ServerProcess {
    name: &'static str,
    child: Mutex<Option<Child>>,
    output: PathBuf,
    /// Its listening ports: a stop returns once they are free again.
    ports: Vec<u16>,
}

impl ServerProcess {
    /// Spawns `cmd` tied to this process, its stdout and stderr appended to
    /// `output` (a restarted server keeps its earlier log); it is to listen on `ports`.
    pub(crate) fn spawn(
        name: &'static str,
        mut cmd: Command,
        output: &Path,
        ports: &[u16],
    ) -> Result<Self> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(output)
            .with_context(|| format!("open {}", output.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = process::spawn_tied(cmd).with_context(|| format!("start {name}"))?;
        Ok(ServerProcess {
            name,
            child: Mutex::new(Some(child)),
            output: output.to_path_buf(),
            ports: ports.to_vec(),
        })
    }

    /// [`wait_ready`](Self::wait_ready) for an IMAP server on two ports; a failure
    /// because a port was taken meanwhile is one [`start_retrying`] tries again.
    pub(crate) fn wait_imap(&self, plain_port: u16, tls_port: u16) -> Result<()> {
        if let Err(e) = self.wait_ready(plain_port, "* OK", &[tls_port]) {
            self.kill(Duration::ZERO);
            if !(ports::port_free(plain_port) && ports::port_free(tls_port)) {
                bail!("{PORT_TAKEN}: {e:#}");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Waits until every port in `tls_ports` accepts and `plain_port` greets
    /// with `greeting`; kills the server and fails on exit or timeout.
    pub(crate) fn wait_ready(
        &self,
        plain_port: u16,
        greeting: &str,
        tls_ports: &[u16],
    ) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.exit_status() {
                bail!(
                    "{} exited at start ({status}):\n{}",
                    self.name,
                    self.output()
                );
            }
            let tls_up = tls_ports
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if tls_up && ports::greets(plain_port, greeting) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill(Duration::ZERO);
                bail!(
                    "{} did not answer on port {plain_port} within {START_TIMEOUT:?}:\n{}",
                    self.name,
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server printed so far (the tail).
    pub(crate) fn output(&self) -> String {
        process::read_tail(&self.output)
    }

    fn exit_status(&self) -> Option<String> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        match child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Err(e)) => Some(e.to_string()),
            None => Some("stopped".to_string()),
            Some(Ok(None)) => None,
        }
    }

    /// Whether the supervisor (and so the server) still runs.
    pub(crate) fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL to the whole group;
    /// returns once the ports are released (killed processes close their
    /// sockets a moment after the signal), or after a few seconds.
    pub(crate) fn kill(&self, grace: Duration) {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            process::stop(&mut child, grace);
            let deadline = Instant::now() + RELEASE_TIMEOUT;
            while !self.ports.iter().all(|p| ports::port_free(*p)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill(Duration::ZERO);
    }
}
