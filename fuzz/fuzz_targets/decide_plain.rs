//! `decide` over arbitrary bytes with quotes and signatures stripped and the plain
//! text part preferred: never a panic, never a hang.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;
use thulium_mail_bridge::config::default_rules;
use thulium_mail_bridge::mail::content::Prefer;
use thulium_mail_bridge::mail::decide::{NoReferences, Rules, decide};

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let mut rules = default_rules().expect("default rules");
    rules.content.prefer = Prefer::Plain;
    rules.content.strip_quotes = true;
    rules.content.strip_signatures = true;
    rules
});

fuzz_target!(|raw: &[u8]| {
    common::run(|| {
        let d = decide(raw, &RULES, &NoReferences, common::internal_date());
        common::check(&d);
    });
});
