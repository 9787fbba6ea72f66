//! `scripts/fetch-corpus.sh` (and `scripts/test.sh`'s first step), run with bash from a
//! copy of the checkout in a temp dir, so that no `../shared/corpus` is beside it. A
//! local bare git repository stands in for the public ones (there is no network here).

mod corpus;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const REPO: &str = "acme/mails";

/// A checkout copy (scripts and a corpus description), beside no shared corpus.
struct Layout {
    tmp: tempfile::TempDir,
}

impl Layout {
    fn new() -> Layout {
        let layout = Layout {
            tmp: tempfile::tempdir().expect("temp dir"),
        };
        let scripts = layout.checkout().join("scripts");
        fs::create_dir_all(&scripts).unwrap();
        for script in ["fetch-corpus.sh", "test.sh"] {
            let from = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scripts")
                .join(script);
            fs::copy(from, scripts.join(script)).unwrap();
        }
        layout
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.tmp.path().join(relative)
    }

    fn checkout(&self) -> PathBuf {
        self.path("checkout")
    }

    fn own(&self, relative: &str) -> PathBuf {
        self.checkout().join("tests/corpus-meta/own").join(relative)
    }

    fn cache(&self) -> PathBuf {
        self.path("cache/thulium-mail-bridge/corpus")
    }

    /// A script of the copy, with bash, told to fetch from `base` and cache in the temp dir.
    fn run(&self, script: &str, base: &str, env: &[(&str, &Path)]) -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg(self.checkout().join("scripts").join(script))
            .env_remove("THULIUM_CORPUS_DIR")
            .env("THULIUM_CORPUS_GIT_BASE", base)
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("HOME", self.tmp.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null");
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.output().expect("bash runs")
    }

    fn fetch(&self, base: &str) -> Output {
        self.run("fetch-corpus.sh", base, &[])
    }

    /// A base where no repository is: a machine without network or copy.
    fn nowhere(&self) -> String {
        format!("file://{}", self.path("no-such-remote").display())
    }
}

/// What a run printed, for assertion messages.
fn said(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(["-c", "init.defaultBranch=main", "-c", "core.autocrlf=false"])
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", said(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every file under `dir`, by relative path (spaces kept), with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(name, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A public repository's stand-in: commit A, then commit B changing a mail; and the
/// corpus description (as in tests/corpus-meta) naming files at both commits.
struct Upstream {
    layout: Layout,
    /// Corpus-relative path → the bytes the rebuilt corpus must hold.
    expected: BTreeMap<String, Vec<u8>>,
}

impl Upstream {
    fn new() -> Upstream {
        let layout = Layout::new();
        let work = layout.path("work");
        fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q"]);
        let mail_a = b"From: anna@customer.example\nSubject: one\n\nHello\n".to_vec();
        let spaced = b"Subject: two\r\n\r\nCRLF as sent\r\n".to_vec();
        let expected_yml = b"body: Hello\n".to_vec();
        write(&work.join("test/emails/a.eml"), &mail_a);
        write(&work.join("test/emails/with space.eml"), &spaced);
        write(&work.join("test/expected/a.yml"), &expected_yml);
        write(&work.join("src/not-corpus.rs"), b"fn main() {}\n");
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "mails, stored as they are"]);
        // Added after the mails (which stay as stored): a plain checkout would now turn
        // a.eml's LF line ends into CRLF. The corpus is byte-exact.
        write(&work.join(".gitattributes"), b"*.eml text eol=crlf\n");
        // Named, not -A: the CRLF mail, rehashed under the new attribute, would be
        // stored again with LF.
        git(&work, &["add", ".gitattributes"]);
        git(&work, &["commit", "-q", "-m", "A"]);
        let commit_a = git(&work, &["rev-parse", "HEAD"]);
        let mail_b = b"From: anna@customer.example\nSubject: one, later\n\nHello again\n".to_vec();
        write(&work.join("test/emails/a.eml"), &mail_b);
        git(&work, &["add", "test/emails/a.eml"]);
        git(&work, &["commit", "-q", "-m", "B"]);
        let commit_b = git(&work, &["rev-parse", "HEAD"]);
        let bare = layout.path(&format!("remotes/{REPO}"));
        fs::create_dir_all(bare.parent().unwrap()).unwrap();
        let parent = layout.tmp.path().to_path_buf();
        git(
            &parent,
            &["clone", "-q", "--bare", "work", bare.to_str().unwrap()],
        );
        // As GitHub does: a partial (blob-less) fetch is served as asked.
        git(&bare, &["config", "uploadpack.allowFilter", "true"]);

        // `mails`: one commit for the folder (SOURCE.txt), a later one for a subfolder
        // (its SOURCE.tsv), as zammad/upstream-additions; `perfile`: commits per file
        // only (SOURCE.tsv), as discourse-subset.
        let mails_source = format!(
            "Source repository : https://github.com/{REPO}\n\
             Commit            : {commit_a} (2025-01-01 00:00:00 +0000)\n\
             Extracted paths   : test/\n"
        );
        let additions =
            format!("file\trepo\tcommit\tpath\na.eml\t{REPO}\t{commit_b}\ttest/emails/a.eml\n");
        let perfile_source = format!(
            "Source repository : https://github.com/{REPO}\n\
             Commit            : per file, see SOURCE.tsv\n"
        );
        let perfile_tsv = format!(
            "file\trepo\tcommit\tpath\tbytes\n\
             a.eml\t{REPO}\t{commit_a}\ttest/emails/a.eml\t{}\n",
            mail_a.len()
        );
        let index = format!(
            "corpus\tpath\tkind\tbytes\tdetected_tags\n\
             mails\ttest/emails/a.eml\traw-mail\t{}\tplain-only\n\
             mails\ttest/emails/with space.eml\traw-mail\t{}\tplain-only\n\
             mails\tadditions/test/emails/a.eml\traw-mail\t{}\tplain-only\n\
             perfile\ttest/emails/a.eml\traw-mail\t{}\tplain-only\n",
            mail_a.len(),
            spaced.len(),
            mail_b.len(),
            mail_a.len()
        );
        let extra = format!(
            "corpus\tpath\tbytes\nmails\ttest/expected/a.yml\t{}\n",
            expected_yml.len()
        );
        let own: Vec<(&str, Vec<u8>)> = vec![
            ("INDEX.tsv", index.into_bytes()),
            ("README.md", b"# Test corpus\n".to_vec()),
            ("mails/SOURCE.txt", mails_source.into_bytes()),
            ("mails/LICENSE", b"MIT\n".to_vec()),
            ("mails/additions/SOURCE.tsv", additions.into_bytes()),
            ("perfile/SOURCE.txt", perfile_source.into_bytes()),
            ("perfile/SOURCE.tsv", perfile_tsv.into_bytes()),
            ("perfile/LICENSE", b"GPL\n".to_vec()),
        ];
        let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (path, data) in own {
            write(&layout.own(path), &data);
            expected.insert(path.into(), data);
        }
        write(
            &layout
                .checkout()
                .join("tests/corpus-meta/UPSTREAM-EXTRA.tsv"),
            extra.as_bytes(),
        );
        expected.insert("mails/test/emails/a.eml".into(), mail_a.clone());
        expected.insert("mails/test/emails/with space.eml".into(), spaced);
        expected.insert("mails/test/expected/a.yml".into(), expected_yml);
        expected.insert("mails/additions/test/emails/a.eml".into(), mail_b);
        expected.insert("perfile/test/emails/a.eml".into(), mail_a);
        Upstream { layout, expected }
    }

    fn base(&self) -> String {
        format!("file://{}", self.layout.path("remotes").display())
    }
}

#[test]
fn the_corpus_is_rebuilt_from_the_repositories_and_commits_it_names() {
    let upstream = Upstream::new();
    let layout = &upstream.layout;
    let out = layout.fetch(&upstream.base());
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(rebuilt)"),
        "{}",
        said(&out)
    );

    // The same files, the same bytes (so the same sizes): each at its own commit, with
    // no line-end conversion, and nothing else of the repository.
    let got = files(&layout.cache());
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&got), names(&upstream.expected));
    for (name, data) in &upstream.expected {
        assert_eq!(&got[name], data, "{name}");
    }

    // Once there, it is used as it is: no repository needed any more.
    let again = layout.fetch(&layout.nowhere());
    assert!(again.status.success(), "{}", said(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("(cached)"),
        "{}",
        said(&again)
    );
}

#[test]
fn a_size_other_than_the_index_says_fails_naming_the_file() {
    let upstream = Upstream::new();
    let layout = &upstream.layout;
    let index = fs::read_to_string(layout.own("INDEX.tsv")).unwrap();
    let spaced = upstream.expected["mails/test/emails/with space.eml"].len();
    let wrong = index.replace(
        &format!("with space.eml\traw-mail\t{spaced}\t"),
        &format!("with space.eml\traw-mail\t{}\t", spaced + 1),
    );
    assert_ne!(index, wrong);
    fs::write(layout.own("INDEX.tsv"), wrong).unwrap();

    let out = layout.fetch(&upstream.base());
    assert!(!out.status.success(), "{}", said(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "mails/test/emails/with space.eml: {spaced} bytes, expected {}",
            spaced + 1
        )),
        "{}",
        said(&out)
    );
    assert!(!layout.cache().exists(), "nothing is put in the cache");
}

#[test]
fn without_a_copy_or_network_the_script_and_test_sh_stop_at_once_saying_how() {
    let layout = Layout::new();
    write(
        &layout.own("INDEX.tsv"),
        b"corpus\tpath\tkind\tbytes\tdetected_tags\nmails\ta.eml\traw-mail\t1\t\n",
    );
    write(
        &layout.own("mails/SOURCE.txt"),
        format!(
            "Source repository : https://github.com/{REPO}\n\
             Commit            : {} (2025-01-01)\n",
            "a".repeat(40)
        )
        .as_bytes(),
    );
    write(
        &layout
            .checkout()
            .join("tests/corpus-meta/UPSTREAM-EXTRA.tsv"),
        b"corpus\tpath\tbytes\n",
    );
    // Anything test.sh would run after the corpus step leaves a mark.
    let bin = layout.path("bin");
    let mark = layout.path("ran");
    for tool in ["cargo", "apt-get", "dovecot", "rustup", "systemd-analyze"] {
        write(
            &bin.join(tool),
            format!("#!/bin/sh\necho {tool} >>'{}'\n", mark.display()).as_bytes(),
        );
        Command::new("chmod")
            .arg("+x")
            .arg(bin.join(tool))
            .status()
            .unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let path = PathBuf::from(path);

    for script in ["fetch-corpus.sh", "test.sh"] {
        let started = Instant::now();
        let out = layout.run(script, &layout.nowhere(), &[("PATH", &path)]);
        assert!(!out.status.success(), "{script}: {}", said(&out));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{script}: at once"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        // One message: what is missing, and both ways to provide it.
        assert_eq!(
            stderr.matches("fetch-corpus.sh:").count(),
            1,
            "{}",
            said(&out)
        );
        for needed in [
            "the real-world corpus is missing",
            "set THULIUM_CORPUS_DIR to a copy",
            "allow network access",
        ] {
            assert!(
                stderr.contains(needed),
                "{script}: {needed}: {}",
                said(&out)
            );
        }
        assert!(out.stdout.is_empty(), "{script}: {}", said(&out));
        assert!(
            !mark.exists(),
            "{script} ran {:?}",
            fs::read_to_string(&mark)
        );
        assert!(!layout.cache().exists());
    }
}

#[test]
fn a_copy_named_by_thulium_corpus_dir_is_only_checked() {
    let layout = Layout::new();
    let copy = layout.path("copy");
    write(&copy.join("INDEX.tsv"), b"corpus\tpath\tkind\tbytes\n");
    let out = layout.run(
        "fetch-corpus.sh",
        &layout.nowhere(),
        &[("THULIUM_CORPUS_DIR", &copy)],
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&copy.display().to_string()));
    assert!(!layout.cache().exists(), "nothing fetched");

    let empty = layout.path("empty");
    fs::create_dir_all(&empty).unwrap();
    let out = layout.run(
        "fetch-corpus.sh",
        &layout.nowhere(),
        &[("THULIUM_CORPUS_DIR", &empty)],
    );
    assert!(!out.status.success(), "{}", said(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("THULIUM_CORPUS_DIR="));
}

#[test]
fn a_corpus_beside_the_checkout_is_used_without_network() {
    let layout = Layout::new();
    let shared = layout.path("shared/corpus");
    write(&shared.join("INDEX.tsv"), b"corpus\tpath\tkind\tbytes\n");
    let out = layout.fetch(&layout.nowhere());
    assert!(out.status.success(), "{}", said(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("beside the checkout"),
        "{}",
        said(&out)
    );
    assert!(!layout.cache().exists(), "nothing fetched");

    // --where (for the fuzz scripts) names the same folder.
    let out = Command::new("bash")
        .arg(layout.checkout().join("scripts/fetch-corpus.sh"))
        .arg("--where")
        .env_remove("THULIUM_CORPUS_DIR")
        .output()
        .unwrap();
    let named = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(
        named.canonicalize().ok(),
        shared.canonicalize().ok(),
        "{}",
        said(&out)
    );
}

/// tests/corpus-meta is what a rebuild is made of: it must describe the corpus the
/// tests read (a corpus updated beside the checkout without it would rebuild stale).
#[test]
fn the_committed_description_matches_the_corpus_in_use() {
    let corpus = corpus::dir();
    let meta = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus-meta");
    let own = files(&meta.join("own"));
    for (name, data) in &own {
        let there = fs::read(corpus.join(name)).unwrap_or_default();
        assert!(&there == data, "{name} differs from tests/corpus-meta/own");
    }
    let mut problems = Vec::new();
    let index = fs::read_to_string(meta.join("own/INDEX.tsv")).unwrap();
    let extra = fs::read_to_string(meta.join("UPSTREAM-EXTRA.tsv")).unwrap();
    let rows = index
        .lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c.len() >= 4).then(|| (c[0], c[1], c[3]))
        })
        .chain(extra.lines().skip(1).filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c.len() >= 3).then(|| (c[0], c[1], c[2]))
        }));
    let mut listed = 0;
    for (folder, path, bytes) in rows {
        listed += 1;
        let size = fs::metadata(corpus.join(folder).join(path)).map(|m| m.len().to_string());
        if size.as_deref().ok() != Some(bytes) {
            problems.push(format!("{folder}/{path}: {size:?}, listed {bytes}"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let all = files(&corpus).len();
    assert_eq!(
        own.len() + listed,
        all,
        "every file of the corpus is in tests/corpus-meta (own/, INDEX.tsv, UPSTREAM-EXTRA.tsv)"
    );
    println!(
        "tests/corpus-meta describes {all} files: {} own, {listed} upstream",
        own.len()
    );
}
