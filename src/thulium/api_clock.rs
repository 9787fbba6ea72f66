//! Which clock the API's `created_at` keeps, learned from replies the bridge knows it
//! posted.
//!
//! The documentation shows `"created_at": "2014-07-08 08:05"` with no zone and does not
//! say whether it is the `date` sent or the storage time (SPEC "The Thulium API"). A
//! reading is one meaning in one zone: the account's zone shifted by a fixed offset, a
//! fixed offset from UTC, or a named zone with its own DST rules. Before anything is
//! learned every reading is possible; each message the bridge posted and later sees on a
//! ticket keeps only the readings that could have written it. The newest observations
//! win: when an older one contradicts them (the API moved, or a clock changed), it is
//! dropped.

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use std::collections::VecDeque;

/// Slack around a posting window, for clocks that disagree a little.
const CLOCK_SLACK_SECS: i64 = 60;
/// Observations kept: enough to tell readings apart, few enough to re-learn at once.
pub const KEPT: usize = 64;
/// Offsets from UTC the world uses (−12 h to +14 h), in quarter hours.
const UTC_OFFSETS: std::ops::RangeInclusive<i32> = -48..=56;
/// Offsets from the account's zone: any zone's offset minus any other's.
const ACCOUNT_SHIFTS: std::ops::RangeInclusive<i32> = -104..=104;

/// What `created_at` stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meaning {
    /// The `date` the client sent, as the API renders it.
    DateSent,
    /// When the API stored the message.
    StorageTime,
}

/// The zone `created_at` is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Zone {
    /// The account's zone (`thulium.timezone`) shifted by this many minutes.
    AccountPlus(i32),
    /// This many minutes east of UTC, all year.
    Utc(i32),
    /// A named zone, with its own DST rules.
    Named(Tz),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reading {
    meaning: Meaning,
    zone: Zone,
}

/// What is known of one posted reply: the date it sent (`YYYY-MM-DD HH:MM` in the
/// account's zone) and the unix seconds between which the API stored it.
#[derive(Clone, Copy, Debug)]
pub struct Posting<'a> {
    pub date_sent: &'a str,
    pub from: u64,
    pub to: u64,
}

/// A message on a ticket that the ledger knows the bridge posted, and what the bridge
/// knows of that post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub created_at: String,
    pub date_sent: String,
    pub from: u64,
    pub to: u64,
}

impl Observation {
    fn posting(&self) -> Posting<'_> {
        Posting {
            date_sent: &self.date_sent,
            from: self.from,
            to: self.to,
        }
    }
}

/// The readings of `created_at` still possible, and the observations that left them.
#[derive(Clone, Debug)]
pub struct ApiClock {
    account: Tz,
    readings: Vec<Reading>,
    /// Oldest first, at most [`KEPT`].
    observations: VecDeque<Observation>,
    /// How many of the newest observations the readings agree with.
    agreeing: usize,
}

impl ApiClock {
    /// Learned from `observations` (oldest first) for an account in `account`.
    pub fn learn(account: Tz, observations: impl IntoIterator<Item = Observation>) -> ApiClock {
        let mut clock = ApiClock {
            account,
            readings: every_reading(),
            observations: VecDeque::new(),
            agreeing: 0,
        };
        for o in observations {
            if clock.possible(&o) && !clock.observations.contains(&o) {
                clock.observations.push_back(o);
            }
        }
        while clock.observations.len() > KEPT {
            clock.observations.pop_front();
        }
        clock.relearn();
        clock
    }

    /// Keeps only the readings the newest observations agree on, newest first, stopping
    /// at the first one that would leave none.
    fn relearn(&mut self) {
        let mut readings = every_reading();
        let mut agreeing = 0;
        for o in self.observations.iter().rev() {
            let created = minute(&o.created_at);
            let left: Vec<Reading> = readings
                .iter()
                .copied()
                .filter(|r| created.is_some_and(|c| self.fits(*r, c, o.posting())))
                .collect();
            if left.is_empty() {
                break;
            }
            readings = left;
            agreeing += 1;
        }
        self.readings = readings;
        self.agreeing = agreeing;
    }

    /// Both meanings in the account's zone, as if learned.
    #[cfg(test)]
    pub fn account_zone(account: Tz) -> ApiClock {
        ApiClock {
            account,
            readings: [Meaning::DateSent, Meaning::StorageTime]
                .map(|meaning| Reading {
                    meaning,
                    zone: Zone::AccountPlus(0),
                })
                .to_vec(),
            observations: VecDeque::new(),
            agreeing: 1,
        }
    }

    /// Adds what a ticket showed of one of our posts. False (and nothing kept) when it
    /// was kept before, or when no reading at all could have written it: a message that
    /// is not what it seemed.
    pub fn observe(&mut self, o: Observation) -> bool {
        if !self.possible(&o) {
            return false;
        }
        if self.observations.contains(&o) {
            return false;
        }
        self.observations.push_back(o);
        if self.observations.len() > KEPT {
            self.observations.pop_front();
        }
        self.relearn();
        true
    }

    /// Whether any reading at all could have written this observation.
    fn possible(&self, o: &Observation) -> bool {
        minute(&o.created_at).is_some_and(|c| {
            every_reading()
                .into_iter()
                .any(|r| self.fits(r, c, o.posting()))
        })
    }

    pub fn observations(&self) -> impl Iterator<Item = &Observation> {
        self.observations.iter()
    }

    /// Whether anything has been learned yet.
    pub fn learned(&self) -> bool {
        self.agreeing > 0
    }

    /// How many of the newest observations agree on the readings left.
    pub fn agreeing(&self) -> usize {
        self.agreeing
    }

    pub fn account(&self) -> Tz {
        self.account
    }

    /// Whether a message with this `created_at` could be the post described.
    pub fn could_show(&self, created_at: &str, posting: Posting<'_>) -> bool {
        let Some(created) = minute(created_at) else {
            return false;
        };
        self.readings
            .iter()
            .any(|r| self.fits(*r, created, posting))
    }

    /// The earliest day (`YYYY-MM-DD`) any reading could write for an instant: a
    /// `_from` filter in the API's own clock that misses nothing stored since then.
    pub fn earliest_day(&self, unix_secs: i64) -> String {
        let Some(at) = DateTime::<Utc>::from_timestamp(unix_secs, 0) else {
            return String::new();
        };
        let mut zones: Vec<Zone> = self.readings.iter().map(|r| r.zone).collect();
        zones.dedup();
        zones
            .into_iter()
            .filter_map(|z| self.local(z, at))
            .min()
            .unwrap_or_else(|| at.naive_utc())
            .format("%Y-%m-%d")
            .to_string()
    }

    /// What is known, in words: "… the storage time, UTC+00:00 (learned from 3 replies)".
    pub fn describe(&self) -> String {
        if !self.learned() {
            return self.summary();
        }
        let n = self.agreeing;
        format!(
            "{} (learned from {n} repl{})",
            self.summary(),
            if n == 1 { "y" } else { "ies" }
        )
    }

    /// [`ApiClock::describe`] without the count, which changes with every observation.
    pub fn summary(&self) -> String {
        if !self.learned() {
            return "not learned yet (no reply the bridge posted has been read back); until it is, a message \
                    with the reply's text counts as the reply when its created_at fits any clock \
                    (the date sent or the posting time, at any offset)"
                .into();
        }
        let meaning = |m: Meaning| self.readings.iter().any(|r| r.meaning == m);
        let what = match (meaning(Meaning::DateSent), meaning(Meaning::StorageTime)) {
            (true, false) => "the date sent",
            (false, true) => "the storage time",
            _ => "the date sent or the storage time (not told apart yet)",
        };
        format!(
            "the API writes created_at as {what}, {}",
            self.zone_in_words()
        )
    }

    /// The zone most readings would name: the account's zone, UTC with an offset, a
    /// named zone, or the account's zone shifted.
    fn zone_in_words(&self) -> String {
        let has = |z: Zone| self.readings.iter().any(|r| r.zone == z);
        if has(Zone::AccountPlus(0)) {
            return format!("in the account's zone ({})", self.account.name());
        }
        if let Some(o) = self.readings.iter().find_map(|r| match r.zone {
            Zone::Utc(o) => Some(o),
            _ => None,
        }) {
            return format!("UTC{}", offset_in_words(o));
        }
        if let Some(tz) = self.readings.iter().find_map(|r| match r.zone {
            Zone::Named(tz) => Some(tz),
            _ => None,
        }) {
            let offset = tz
                .offset_from_utc_datetime(&Utc::now().naive_utc())
                .fix()
                .local_minus_utc()
                / 60;
            return format!("{} (UTC{} now)", tz.name(), offset_in_words(offset));
        }
        match self.readings.first().map(|r| r.zone) {
            Some(Zone::AccountPlus(d)) => {
                format!(
                    "the account's zone ({}) {}",
                    self.account.name(),
                    offset_in_words(d)
                )
            }
            _ => "in an unknown zone".into(),
        }
    }

    /// Whether reading `r` writes `created` (to the minute) for the post described.
    fn fits(&self, r: Reading, created: NaiveDateTime, p: Posting<'_>) -> bool {
        match r.meaning {
            Meaning::DateSent => {
                let Some(sent) = minute(p.date_sent) else {
                    return false;
                };
                let sent = self.account.from_local_datetime(&sent);
                [sent.earliest(), sent.latest()]
                    .into_iter()
                    .flatten()
                    .any(|t| self.local(r.zone, t.with_timezone(&Utc)) == Some(created))
            }
            Meaning::StorageTime => {
                let from = i64::try_from(p.from).unwrap_or(i64::MAX) - CLOCK_SLACK_SECS;
                let to = i64::try_from(p.to).unwrap_or(i64::MAX) + CLOCK_SLACK_SECS;
                self.instants(r.zone, created)
                    .into_iter()
                    .flatten()
                    .any(|t| t + 59 >= from && t <= to)
            }
        }
    }

    /// `at` on the wall clock of `zone`, to the minute.
    fn local(&self, zone: Zone, at: DateTime<Utc>) -> Option<NaiveDateTime> {
        let local = match zone {
            Zone::AccountPlus(d) => {
                at.with_timezone(&self.account).naive_local() + Duration::minutes(i64::from(d))
            }
            Zone::Utc(o) => at.naive_utc() + Duration::minutes(i64::from(o)),
            Zone::Named(tz) => at.with_timezone(&tz).naive_local(),
        };
        local.with_second(0)?.with_nanosecond(0)
    }

    /// The unix seconds a wall-clock minute of `zone` stands for (two when DST ends).
    fn instants(&self, zone: Zone, local: NaiveDateTime) -> [Option<i64>; 2] {
        let both = |r: chrono::LocalResult<DateTime<Tz>>| {
            [r.earliest(), r.latest()].map(|t| t.map(|t| t.timestamp()))
        };
        match zone {
            Zone::AccountPlus(d) => both(
                self.account
                    .from_local_datetime(&(local - Duration::minutes(i64::from(d)))),
            ),
            Zone::Utc(o) => [Some(local.and_utc().timestamp() - i64::from(o) * 60), None],
            Zone::Named(tz) => both(tz.from_local_datetime(&local)),
        }
    }
}

/// Every reading: both meanings in every zone.
fn every_reading() -> Vec<Reading> {
    let zones = ACCOUNT_SHIFTS
        .map(|q| Zone::AccountPlus(q * 15))
        .chain(UTC_OFFSETS.map(|q| Zone::Utc(q * 15)))
        .chain(chrono_tz::TZ_VARIANTS.iter().map(|tz| Zone::Named(*tz)));
    zones
        .flat_map(|zone| {
            [Meaning::DateSent, Meaning::StorageTime].map(|meaning| Reading { meaning, zone })
        })
        .collect()
}

/// `YYYY-MM-DD HH:MM`, seconds (if any) dropped.
fn minute(text: &str) -> Option<NaiveDateTime> {
    let m = text.trim().get(..16)?;
    NaiveDateTime::parse_from_str(m, "%Y-%m-%d %H:%M").ok()
}

/// `+05:30`, `-04:00`.
fn offset_in_words(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    const WARSAW: Tz = chrono_tz::Europe::Warsaw;

    /// How a test API writes `created_at`.
    #[derive(Clone, Copy)]
    enum Api {
        Fixed(i32),
        Named(Tz),
    }

    impl Api {
        fn render(self, unix: i64, seconds: bool) -> String {
            let at = DateTime::<Utc>::from_timestamp(unix, 0).unwrap();
            let form = if seconds {
                "%Y-%m-%d %H:%M:%S"
            } else {
                "%Y-%m-%d %H:%M"
            };
            match self {
                Api::Fixed(m) => at
                    .with_timezone(&FixedOffset::east_opt(m * 60).unwrap())
                    .format(form)
                    .to_string(),
                Api::Named(tz) => at.with_timezone(&tz).format(form).to_string(),
            }
        }
    }

    /// A post stored at `stored` (unix) of a mail dated `sent` (unix), as the ticket
    /// shows it under `meaning` in `api`.
    fn post(api: Api, meaning: Meaning, sent: i64, stored: i64, seconds: bool) -> Observation {
        let date_sent = DateTime::<Utc>::from_timestamp(sent, 0)
            .unwrap()
            .with_timezone(&WARSAW)
            .format("%Y-%m-%d %H:%M")
            .to_string();
        let created = match meaning {
            Meaning::DateSent => sent - sent % 60,
            Meaning::StorageTime => stored,
        };
        Observation {
            created_at: api.render(created, seconds),
            date_sent,
            from: (stored - 2) as u64,
            to: (stored + 3) as u64,
        }
    }

    fn shows(clock: &ApiClock, o: &Observation) -> bool {
        clock.could_show(&o.created_at, o.posting())
    }

    fn shifted(o: &Observation, minutes: i64) -> Observation {
        let t = minute(&o.created_at).unwrap() + Duration::minutes(minutes);
        Observation {
            created_at: t.format("%Y-%m-%d %H:%M").to_string(),
            ..o.clone()
        }
    }

    /// 2026-01-12 10:00 UTC, a Monday in winter.
    const JANUARY: i64 = 1_768_212_000;

    /// Three posts, each stored some hours after its date sent (so the two meanings
    /// differ), learned; then a fourth must be recognised and a time an hour off not.
    fn learned_then_recognised(api: Api, meaning: Meaning, seconds: bool) {
        let learned_from = (0..3).map(|i| {
            let stored = JANUARY + i * 7_000;
            post(api, meaning, stored - 3 * 3600 - i * 1_020, stored, seconds)
        });
        let clock = ApiClock::learn(WARSAW, learned_from);
        assert_eq!(clock.agreeing(), 3);
        let stored = JANUARY + 86_400;
        let next = post(api, meaning, stored - 5 * 3600, stored, seconds);
        assert!(shows(&clock, &next), "{meaning:?} {next:?}");
        assert!(
            !shows(&clock, &shifted(&next, 60)),
            "{meaning:?} {next:?} +1 h"
        );
        assert!(
            !shows(&clock, &shifted(&next, -30)),
            "{meaning:?} {next:?} -30 min"
        );
    }

    #[test]
    fn every_offset_from_minus_12_to_plus_14_hours_is_learned_for_both_meanings() {
        for half_hours in -24..=28 {
            for meaning in [Meaning::DateSent, Meaning::StorageTime] {
                for seconds in [false, true] {
                    learned_then_recognised(Api::Fixed(half_hours * 30), meaning, seconds);
                }
            }
        }
    }

    #[test]
    fn what_is_learned_is_said_in_words() {
        let learn = |api, meaning| {
            ApiClock::learn(
                WARSAW,
                (0..3).map(|i| {
                    post(
                        api,
                        meaning,
                        JANUARY - 9_000 - i * 600,
                        JANUARY + i * 60,
                        false,
                    )
                }),
            )
            .describe()
        };
        assert_eq!(
            learn(Api::Fixed(0), Meaning::StorageTime),
            "the API writes created_at as the storage time, UTC+00:00 (learned from 3 replies)"
        );
        assert_eq!(
            learn(Api::Fixed(330), Meaning::StorageTime),
            "the API writes created_at as the storage time, UTC+05:30 (learned from 3 replies)"
        );
        assert_eq!(
            learn(Api::Named(WARSAW), Meaning::DateSent),
            "the API writes created_at as the date sent, in the account's zone (Europe/Warsaw) (learned from 3 replies)"
        );
        assert!(
            ApiClock::learn(WARSAW, [])
                .describe()
                .starts_with("not learned yet")
        );
    }

    #[test]
    fn a_dst_change_of_either_zone_after_learning_is_no_surprise() {
        // Learned in mid-October 2026 (Warsaw +2, New York −4); read after Warsaw's
        // change (25 Oct) and New York's (1 Nov).
        let october = 1_792_058_400; // 2026-10-15 10:00 UTC
        let november = 1_794_304_800; // 2026-11-10 10:00 UTC
        let apis = [
            Api::Named(chrono_tz::America::New_York),
            Api::Named(chrono_tz::UTC),
            Api::Named(WARSAW),
        ];
        for api in apis {
            for meaning in [Meaning::DateSent, Meaning::StorageTime] {
                let clock = ApiClock::learn(
                    WARSAW,
                    (0..3).map(|i| {
                        post(
                            api,
                            meaning,
                            october - 4 * 3600 - i * 900,
                            october + i * 3600,
                            false,
                        )
                    }),
                );
                let later = post(api, meaning, november - 2 * 3600, november, false);
                assert!(shows(&clock, &later), "{meaning:?} {later:?}");
                assert!(
                    !shows(&clock, &shifted(&later, -120)),
                    "{meaning:?} {later:?}"
                );
            }
        }
        // The account in New York, the API in Warsaw.
        let clock = ApiClock::learn(
            chrono_tz::America::New_York,
            (0..3).map(|i| {
                let mut o = post(
                    Api::Named(WARSAW),
                    Meaning::StorageTime,
                    october - 9_000,
                    october + i * 3600,
                    false,
                );
                o.date_sent = "2026-10-15 01:00".into();
                o
            }),
        );
        let later = Api::Named(WARSAW).render(november, false);
        let posting = Posting {
            date_sent: "2026-11-10 01:00",
            from: november as u64,
            to: november as u64 + 5,
        };
        assert!(clock.could_show(&later, posting));
    }

    #[test]
    fn before_anything_is_learned_any_clock_counts() {
        let clock = ApiClock::learn(WARSAW, []);
        for api in [
            Api::Fixed(-720),
            Api::Fixed(0),
            Api::Fixed(330),
            Api::Fixed(840),
        ] {
            for meaning in [Meaning::DateSent, Meaning::StorageTime] {
                let o = post(api, meaning, JANUARY - 3600, JANUARY, true);
                assert!(shows(&clock, &o), "{o:?}");
            }
        }
        let o = post(Api::Fixed(0), Meaning::StorageTime, JANUARY, JANUARY, false);
        assert!(
            !shows(&clock, &shifted(&o, 2 * 24 * 60)),
            "two days off fits no clock"
        );
    }

    #[test]
    fn the_newest_observations_win_over_older_ones_that_contradict_them() {
        let utc = (0..3).map(|i| {
            post(
                Api::Fixed(0),
                Meaning::StorageTime,
                JANUARY - 9_000,
                JANUARY + i * 60,
                false,
            )
        });
        let kolkata = (3..5).map(|i| {
            post(
                Api::Fixed(330),
                Meaning::StorageTime,
                JANUARY - 9_000,
                JANUARY + i * 60,
                false,
            )
        });
        let clock = ApiClock::learn(WARSAW, utc.chain(kolkata));
        assert_eq!(clock.agreeing(), 2);
        assert!(
            clock.describe().contains("UTC+05:30"),
            "{}",
            clock.describe()
        );
    }

    #[test]
    fn an_observation_no_clock_explains_is_not_kept() {
        let mut clock = ApiClock::learn(WARSAW, []);
        let mut o = post(
            Api::Fixed(0),
            Meaning::StorageTime,
            JANUARY - 9_000,
            JANUARY,
            false,
        );
        o.created_at = "2020-01-01 00:00".into();
        assert!(!clock.observe(o));
        assert!(!clock.observe(Observation {
            created_at: "yesterday".into(),
            ..post(Api::Fixed(0), Meaning::StorageTime, JANUARY, JANUARY, false)
        }));
        let good = post(
            Api::Fixed(0),
            Meaning::StorageTime,
            JANUARY - 9_000,
            JANUARY,
            false,
        );
        assert!(clock.observe(good.clone()));
        assert!(!clock.observe(good), "kept once");
        assert_eq!(clock.agreeing(), 1);
    }

    #[test]
    fn the_earliest_day_covers_every_clock_still_possible() {
        // 2026-01-12 00:30 in Warsaw is 2026-01-11 23:30 UTC.
        let just_after_midnight = JANUARY - 10 * 3600 + 30 * 60 - 3600;
        let unknown = ApiClock::learn(WARSAW, []);
        assert_eq!(unknown.earliest_day(just_after_midnight), "2026-01-10");
        let account = ApiClock::account_zone(WARSAW);
        assert_eq!(account.earliest_day(just_after_midnight), "2026-01-12");
        let utc = ApiClock::learn(
            WARSAW,
            (0..3).map(|i| {
                post(
                    Api::Fixed(0),
                    Meaning::StorageTime,
                    JANUARY - 9_000 - i * 700,
                    JANUARY + i * 60,
                    false,
                )
            }),
        );
        assert_eq!(utc.earliest_day(just_after_midnight), "2026-01-11");
    }
}
