//! The real-world corpora beside the checkout (`../shared/corpus`), for conformance tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The corpus folder. Missing, it fails the test that asked: a conformance test
/// that passes without its corpus proves nothing.
pub fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(
        dir.join("INDEX.tsv").is_file(),
        "the real-world corpus is missing: {} (with its INDEX.tsv) must sit beside the \
         checkout as ../shared/corpus; the conformance tests need it",
        dir.display()
    );
    dir
}

/// A file of the corpus, which must exist (a renamed or lost sample fails the test).
pub fn file(relative: &str) -> PathBuf {
    let path = dir().join(relative);
    assert!(path.is_file(), "corpus file missing: {}", path.display());
    path
}

/// A mail as `decide` reads it (CR-only line ends become LF).
pub fn normalize(raw: Vec<u8>) -> Vec<u8> {
    thulium_mail_bridge::mail::normalize_line_ends(&raw).into_owned()
}

/// Every `raw-mail` row of INDEX.tsv, as a path.
pub fn raw_mails(dir: &Path) -> Vec<PathBuf> {
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).unwrap_or_default();
    index
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 3 && f[2] == "raw-mail").then(|| dir.join(f[0]).join(f[1]))
        })
        .collect()
}
