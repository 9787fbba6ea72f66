//! `decide` with the default rules over arbitrary bytes: never a panic, never a hang.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use thulium_mail_bridge::config::default_rules;
use thulium_mail_bridge::mail::decide::{NoReferences, Rules, decide};

static RULES: LazyLock<Rules> = LazyLock::new(|| default_rules().expect("default rules"));

fuzz_target!(|raw: &[u8]| {
    common::run(|| {
        let d = decide(raw, &RULES, &NoReferences, common::internal_date());
        common::check(&d);
    });
});
