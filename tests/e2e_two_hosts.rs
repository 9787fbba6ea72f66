//! Two bridge processes, one config, one Dovecot, one real PostgreSQL ledger: each
//! mailbox is led by one of them at a time, and replies arriving while one dies or
//! freezes are posted once, in date order, by whichever leads. Each POST is attributed
//! to its instance by the User-Agent the fake API records.

#[macro_use]
mod support;

use std::path::PathBuf;
use std::time::Duration;
use support::*;
use testbed::RecordedRequest;

const MAILBOXES: u64 = 4;
/// `lease` in the test configs (`World::shared_ledger_toml`).
const LEASE: Duration = Duration::from_secs(6);

struct TwoHosts {
    w: World,
    configs: [PathBuf; 2],
    logs: [PathBuf; 2],
    daemons: [Option<Daemon>; 2],
}

const NAMES: [&str; 2] = ["host-a", "host-b"];

impl TwoHosts {
    async fn start(mailboxes: u64) -> TwoHosts {
        let w = World::start().await;
        let opts: Vec<MailboxOpts> = (1..=mailboxes)
            .map(|i| {
                let user = format!("mb{i}");
                w.dovecot.add_user(&user, PASSWORD).expect("user added");
                MailboxOpts::of_user(&user, PASSWORD)
            })
            .collect();
        let mut configs = Vec::new();
        for name in NAMES {
            let first = w.config_with(&opts, "concurrency = 4", &format!("instance = {name:?}\n"));
            let text = std::fs::read_to_string(&first).expect("config");
            // Each host has its own state.dir (the instance lock), the ledger is shared.
            let state = w.dir.path().join("state").display().to_string();
            let own = text.replace(&state, &format!("{state}-{name}"));
            let path = w.dir.path().join(format!("{name}.toml"));
            std::fs::write(&path, own).expect("config written");
            configs.push(path);
        }
        let logs = NAMES.map(|n| w.dir.path().join(format!("{n}.log")));
        let [a, b] = [configs[0].clone(), configs[1].clone()];
        TwoHosts {
            w,
            configs: [a, b],
            logs,
            daemons: [None, None],
        }
    }

    fn run(&mut self, i: usize) {
        self.daemons[i] = Some(spawn_run(&self.configs[i], &self.logs[i]));
    }

    fn daemon(&mut self, i: usize) -> &mut Daemon {
        self.daemons[i].as_mut().expect("running")
    }

    /// Replies `first..first+n` to ticket `t` of mailbox `t % MAILBOXES + 1`.
    fn arrive(&self, tickets: u64, first: u32, n: u32) {
        for k in first..first + n {
            for t in 1..=tickets {
                let user = format!("mb{}", (t - 1) % MAILBOXES + 1);
                let raw = reply(t, k, &format!("reply {k} to {t}"));
                self.w
                    .dovecot
                    .append(&user, "INBOX", &raw, &[])
                    .expect("appended");
            }
        }
    }

    fn inboxes_empty(&self) -> bool {
        (1..=MAILBOXES).all(|i| {
            self.w
                .dovecot
                .folder_mails(&format!("mb{i}"), "INBOX")
                .is_ok_and(|m| m.is_empty())
        })
    }

    /// The mailboxes an instance's log says it leads now.
    fn led_by(&self, i: usize) -> usize {
        let log = read(&self.logs[i]);
        (1..=MAILBOXES)
            .filter(|m| leads_now(&log, &format!("mailbox=mb{m}")))
            .count()
    }
}

/// Whether the last lease event of `mailbox` in `log` is taking it.
fn leads_now(log: &str, mailbox: &str) -> bool {
    log.lines()
        .rfind(|l| l.contains("leases:") && l.split_whitespace().any(|w| w == mailbox))
        .is_some_and(|l| l.contains("leading this mailbox"))
}

/// POSTs of replies, by instance.
fn posts_by(api: &testbed::FakeThulium, instance: &str) -> Vec<RecordedRequest> {
    api.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.status.is_some_and(|s| s < 300))
        .filter(|r| {
            r.user_agent
                .as_deref()
                .is_some_and(|a| a.contains(&format!("(instance {instance})")))
        })
        .collect()
}

/// `(missing, duplicates)`; fails unless every ticket's replies were stored in order.
fn audit(w: &World, tickets: u64, per_ticket: u32) -> (usize, usize) {
    let (mut missing, mut duplicates) = (0, 0);
    for t in 1..=tickets {
        let bodies: Vec<String> = w
            .api
            .posted(t)
            .iter()
            .map(|r| r.body.trim().to_string())
            .collect();
        let order: Vec<u32> = bodies
            .iter()
            .filter_map(|b| b.strip_prefix("reply ")?.split(' ').next()?.parse().ok())
            .collect();
        assert!(
            order.is_sorted(),
            "ticket {t}: stored out of date order: {order:?}"
        );
        for n in 0..per_ticket {
            match bodies
                .iter()
                .filter(|b| **b == format!("reply {n} to {t}"))
                .count()
            {
                0 => missing += 1,
                1 => {}
                k => duplicates += k - 1,
            }
        }
    }
    (missing, duplicates)
}

fn seed_tickets(w: &World, tickets: u64) {
    for t in 1..=tickets {
        w.api.add_ticket(t, CUSTOMER);
    }
}

/// Who posted last before `at` and who first after it: the takeover time.
fn takeover(api: &testbed::FakeThulium, old: &str, new: &str, at_ms: u64) -> Option<u64> {
    let last_old = posts_by(api, old)
        .iter()
        .filter(|r| r.at_unix_ms <= at_ms)
        .map(|r| r.at_unix_ms)
        .max()?;
    let first_new = posts_by(api, new)
        .iter()
        .filter(|r| r.at_unix_ms > at_ms)
        .map(|r| r.at_unix_ms)
        .min()?;
    Some(first_new.saturating_sub(last_old))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The first time (unix ms) at or after `after_ms` that `log` says it leads a mailbox.
fn first_lead_after(log: &str, after_ms: u64) -> Option<u64> {
    log.lines()
        .filter(|l| l.contains("leading this mailbox"))
        .filter_map(|l| {
            let stamp = l.split_whitespace().next()?;
            let t = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
            u64::try_from(t.timestamp_millis()).ok()
        })
        .find(|&t| t >= after_ms)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_spread_the_mailboxes_and_survive_kill_9_and_a_frozen_leader() {
    on_postgres(async {
        let tickets = 16;
        let mut h = TwoHosts::start(MAILBOXES).await;
        seed_tickets(&h.w, tickets);
        h.run(0);
        h.run(1);
        // Spread: each leads 2 of the 4 once settled.
        assert!(
            eventually(Duration::from_secs(60), || h.led_by(0) == 2 && h.led_by(1) == 2).await,
            "not spread 2/2: a leads {}, b leads {}\na:\n{}\nb:\n{}",
            h.led_by(0),
            h.led_by(1),
            read(&h.logs[0]),
            read(&h.logs[1])
        );

        // (a) kill -9 of host a while replies arrive, three times; it comes back each time.
        let mut per_ticket = 0;
        let mut kill_takeovers = Vec::new();
        for round in 0..3 {
            h.arrive(tickets, per_ticket, 3);
            per_ticket += 3;
            tokio::time::sleep(Duration::from_millis(300 + 400 * round)).await;
            let killed_at = now_ms();
            signal(h.daemon(0), "KILL");
            let _ = wait_exit(h.daemon(0), Duration::from_secs(5)).await;
            h.arrive(tickets, per_ticket, 2);
            per_ticket += 2;
            assert!(
                eventually(Duration::from_secs(90), || h.inboxes_empty()).await,
                "round {round}: mails left after the kill\nb:\n{}",
                read(&h.logs[1])
            );
            kill_takeovers.extend(takeover(&h.w.api, NAMES[0], NAMES[1], killed_at));
            h.run(0);
        }

        // (b) host b frozen for twice the lease while replies arrive, then woken.
        assert!(eventually(Duration::from_secs(60), || h.led_by(0) >= 1 && h.led_by(1) >= 1).await);
        h.arrive(tickets, per_ticket, 3);
        per_ticket += 3;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stopped_at = now_ms();
        signal(h.daemon(1), "STOP");
        tokio::time::sleep(LEASE * 2).await;
        let woken_at = now_ms();
        signal(h.daemon(1), "CONT");
        h.arrive(tickets, per_ticket, 2);
        per_ticket += 2;
        assert!(
            eventually(Duration::from_secs(90), || h.inboxes_empty()).await,
            "mails left after the freeze\na:\n{}\nb:\n{}",
            read(&h.logs[0]),
            read(&h.logs[1])
        );
        // Until it leads again, the woken process posts nothing.
        let leads_again = first_lead_after(&read(&h.logs[1]), woken_at).unwrap_or(u64::MAX);
        let after_waking = posts_by(&h.w.api, NAMES[1])
            .iter()
            .filter(|r| r.at_unix_ms >= woken_at && r.at_unix_ms < leads_again)
            .count();
        let freeze_takeover = takeover(&h.w.api, NAMES[1], NAMES[0], stopped_at);

        let (missing, duplicates) = audit(&h.w, tickets, per_ticket);
        println!(
            "two hosts: {} replies; kill -9 takeovers (ms): {kill_takeovers:?}; SIGSTOP takeover (ms): {freeze_takeover:?}; \
             posts by the frozen leader after waking, before it led again: {after_waking}; {missing} missing, {duplicates} duplicates; \
             posts by a: {}, by b: {}",
            tickets * u64::from(per_ticket),
            posts_by(&h.w.api, NAMES[0]).len(),
            posts_by(&h.w.api, NAMES[1]).len(),
        );
        assert_eq!((missing, duplicates), (0, 0));
        assert_eq!(after_waking, 0);
        assert!(!posts_by(&h.w.api, NAMES[0]).is_empty() && !posts_by(&h.w.api, NAMES[1]).is_empty());
        for i in 0..2 {
            let log = h.logs[i].clone();
            terminate_ok(h.daemon(i), &log).await;
        }
    })
    .await
}
