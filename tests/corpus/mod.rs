//! The real-world corpora for conformance tests, found where `scripts/fetch-corpus.sh`
//! puts them.
#![allow(dead_code, reason = "each test file uses a part of it")]

use std::path::{Path, PathBuf};

/// The corpus folder. Missing, it fails the test that asked: a conformance test
/// that passes without its corpus proves nothing.
pub(crate) fn dir() -> PathBuf {
    locate().unwrap_or_else(|missing| panic!("{missing}"))
}

/// The corpus folder, or None: for a benchmark, which has built-in mails to fall back on.
pub(crate) fn find() -> Option<PathBuf> {
    locate().ok()
}

/// The one place that knows where the corpus is, in `scripts/fetch-corpus.sh`'s order:
/// `THULIUM_CORPUS_DIR` (a copy, which must then hold INDEX.tsv: no silent fallback),
/// `../shared/corpus` beside the checkout, then the cache the script rebuilds into.
fn locate() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("THULIUM_CORPUS_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if dir.join("INDEX.tsv").is_file() {
            Ok(dir)
        } else {
            Err(format!(
                "THULIUM_CORPUS_DIR={} holds no INDEX.tsv: it must name a copy of the \
                 real-world corpus",
                dir.display()
            ))
        };
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let cache = cache_dir();
    for dir in [Some(shared.clone()), cache.clone()].into_iter().flatten() {
        if dir.join("INDEX.tsv").is_file() {
            return Ok(dir);
        }
    }
    Err(format!(
        "the real-world corpus is missing (the conformance tests need it): not in \
         THULIUM_CORPUS_DIR (unset), {}, nor {}. Run scripts/fetch-corpus.sh to rebuild it \
         from its public repositories, or set THULIUM_CORPUS_DIR to a copy",
        shared.display(),
        cache.map_or("the cache ($HOME unset)".into(), |c| c
            .display()
            .to_string()),
    ))
}

/// `${XDG_CACHE_HOME:-~/.cache}/thulium-mail-bridge/corpus`, as the script has it.
fn cache_dir() -> Option<PathBuf> {
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let base = non_empty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("thulium-mail-bridge/corpus"))
}

/// A file of the corpus, which must exist (a renamed or lost sample fails the test).
pub(crate) fn file(relative: &str) -> PathBuf {
    let path = dir().join(relative);
    assert!(path.is_file(), "corpus file missing: {}", path.display());
    path
}

/// A mail as `decide` reads it (CR-only line ends become LF).
pub(crate) fn normalize(raw: Vec<u8>) -> Vec<u8> {
    thulium_mail_bridge::mail::normalize_line_ends(&raw).into_owned()
}

/// Every `raw-mail` row of INDEX.tsv, as a path.
pub(crate) fn raw_mails(dir: &Path) -> Vec<PathBuf> {
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
