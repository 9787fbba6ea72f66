//! Seeding goes straight into the maildir; one IMAP `SELECT` then lets Dovecot index
//! the new files, as it would have while they arrived one by one. The benchmark
//! measures the bridge on a mailbox that holds the mails, not Dovecot's first scan.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Logs in on the plain port, selects `folder`, logs out.
pub(crate) fn select(port: u16, user: &str, password: &str, folder: &str) -> Result<()> {
    let stream = TcpStream::connect(("127.0.0.1", port)).context("connect to Dovecot")?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let commands = [
        format!("a LOGIN \"{user}\" \"{password}\""),
        format!("b SELECT \"{folder}\""),
        "c LOGOUT".to_string(),
    ];
    for command in commands {
        let tag = &command[..1];
        writer.write_all(format!("{command}\r\n").as_bytes())?;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                bail!("Dovecot closed the connection during {command:?}");
            }
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                if !rest.starts_with("OK") {
                    bail!("Dovecot answered {command:?} with {}", line.trim_end());
                }
                break;
            }
        }
    }
    Ok(())
}

/// A second IMAP connection in IDLE on `folder` that notes when Dovecot announces new
/// mail (`* N EXISTS`), in Unix milliseconds: the server's share of the latency.
pub(crate) struct IdleWatch {
    times: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    stream: TcpStream,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IdleWatch {
    pub(crate) fn start(port: u16, user: &str, password: &str, folder: &str) -> Result<IdleWatch> {
        let stream = TcpStream::connect(("127.0.0.1", port)).context("connect to Dovecot")?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        for command in [
            format!("a LOGIN \"{user}\" \"{password}\""),
            format!("b SELECT \"{folder}\""),
            "c IDLE".to_string(),
        ] {
            let done = if command.ends_with("IDLE") {
                "+"
            } else {
                &command[..2]
            };
            writer.write_all(format!("{command}\r\n").as_bytes())?;
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    bail!("Dovecot closed the connection during {command:?}");
                }
                if line.starts_with(done) {
                    break;
                }
            }
        }
        let times = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = times.clone();
        let thread = std::thread::spawn(move || {
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line.starts_with("* ") && line.trim_end().ends_with(" EXISTS") => {
                        if let Ok(mut t) = sink.lock() {
                            t.push(crate::scenario::now_ms());
                        }
                    }
                    Ok(_) => {}
                }
            }
        });
        Ok(IdleWatch {
            times,
            stream,
            thread: Some(thread),
        })
    }

    /// Ends the watch; returns the times EXISTS arrived.
    pub(crate) fn stop(mut self) -> Vec<u64> {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.times.lock().map(|t| t.clone()).unwrap_or_default()
    }
}
