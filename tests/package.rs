//! The Debian package holds what README promises: the binary, the unit (neither enabled
//! nor started), the config as a conffile, the man page, bash/zsh/fish completions, the
//! alert rules and the dashboard. Built the one way README says, `scripts/package.sh`
//! (a release build and cargo-deb; incremental when `target/release` is warm), into a
//! temporary folder, and read with `dpkg-deb` as an admin would before installing it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NAME: &str = "thulium-mail-bridge";

fn checkout() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Builds the package with `scripts/package.sh`; the path of the `.deb` it wrote.
fn package(into: &Path) -> PathBuf {
    let out = run(Command::new(checkout().join("scripts/package.sh"))
        .arg("--output")
        .arg(into)
        .current_dir(checkout()));
    // The script's last line is the package's path.
    let said = stdout(&out);
    let deb = PathBuf::from(said.lines().last().unwrap_or_default().trim());
    assert!(deb.is_file(), "no package at {}:\n{said}", deb.display());
    deb
}

/// The systemd unit, installed neither enabled nor started.
const UNIT: &str = "/usr/lib/systemd/system/thulium-mail-bridge.service";

/// What is in it, with each file's mode (`-rwxr-xr-x root/root … ./usr/bin/…`).
fn every_file_is_there_with_its_mode(deb: &Path) {
    let listing = stdout(&run(Command::new("dpkg-deb").arg("-c").arg(deb)));
    let mode_of = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_string)
    };
    for (path, mode) in [
        ("/usr/bin/thulium-mail-bridge", "-rwxr-xr-x"),
        (UNIT, "-rw-r--r--"),
        ("/etc/thulium-mail-bridge/config.toml", "-rw-r--r--"),
        ("/usr/share/man/man1/thulium-mail-bridge.1.gz", "-rw-r--r--"),
        (
            "/usr/share/bash-completion/completions/thulium-mail-bridge",
            "-rw-r--r--",
        ),
        (
            "/usr/share/zsh/vendor-completions/_thulium-mail-bridge",
            "-rw-r--r--",
        ),
        (
            "/usr/share/fish/vendor_completions.d/thulium-mail-bridge.fish",
            "-rw-r--r--",
        ),
        ("/usr/share/thulium-mail-bridge/alerts.yml", "-rw-r--r--"),
        (
            "/usr/share/thulium-mail-bridge/alerts.test.yml",
            "-rw-r--r--",
        ),
        (
            "/usr/share/thulium-mail-bridge/dashboard.json",
            "-rw-r--r--",
        ),
    ] {
        assert_eq!(
            mode_of(path).as_deref(),
            Some(mode),
            "{path} in:\n{listing}"
        );
    }
}

/// The control part: the name, procps among the dependencies, and the config as a
/// conffile (kept on upgrade and removal, removed on purge: dpkg's rule for conffiles).
/// Returns the folder the control part is unpacked in.
fn the_config_is_a_conffile(deb: &Path, dir: &Path) -> PathBuf {
    let info = stdout(&run(Command::new("dpkg-deb").arg("-I").arg(deb)));
    assert!(info.contains(&format!(" Package: {NAME}\n")), "{info}");
    let depends = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .unwrap_or_default();
    assert!(
        depends.contains("procps"),
        "ExecReload= runs /bin/kill: {info}"
    );
    let control = dir.join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    assert_eq!(
        String::from_utf8_lossy(&read(&control.join("conffiles"))),
        "/etc/thulium-mail-bridge/config.toml\n"
    );
    control
}

/// What `postinst` asks of systemd when the package is installed fresh (`configure`)
/// and upgraded (`configure OLD-VERSION`) by an admin who never enabled the unit,
/// recorded by stand-ins for systemd's tools that answer as Debian's do then, and as
/// if systemd were running (the script checks for /run/systemd/system).
fn postinst_neither_enables_nor_starts_the_unit(dir: &Path, control: &Path) {
    let running = dir.join("run-systemd-system");
    std::fs::create_dir_all(&running).expect("mkdir");
    let postinst = dir.join("postinst");
    std::fs::write(
        &postinst,
        String::from_utf8_lossy(&read(&control.join("postinst")))
            .replace("/run/systemd/system", &running.display().to_string()),
    )
    .expect("written");
    for args in [&["configure"][..], &["configure", "0.0.9-1"][..]] {
        let calls = systemd_calls(dir, &postinst, args);
        assert!(
            calls.contains("systemctl --system daemon-reload"),
            "the stand-ins heard the script: {calls}"
        );
        let enabled_or_started: Vec<&str> = calls
            .lines()
            .filter(|c| {
                c.contains(" enable ")
                    || c.contains(" start ")
                    || c.contains("--now")
                    || (c.contains("restart") && args.len() == 1)
            })
            .collect();
        assert!(
            enabled_or_started.is_empty(),
            "postinst {args:?} enables or starts the unit: {enabled_or_started:?}\n{calls}"
        );
    }
}

/// What the stand-ins for systemd's tools heard from `postinst <args>`.
fn systemd_calls(dir: &Path, postinst: &Path, args: &[&str]) -> String {
    let fresh = args.len() == 1;
    let bin = dir.join("stand-ins");
    let calls = dir.join("calls");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let _ = std::fs::remove_file(&calls);
    // deb-systemd-helper: `debian-installed` is false on a fresh install;
    // `was-enabled` is true there (nothing recorded yet) and false after an admin
    // left the unit disabled.
    let (installed, was_enabled) = if fresh { (1, 0) } else { (0, 1) };
    for tool in ["deb-systemd-helper", "deb-systemd-invoke", "systemctl"] {
        let script = format!(
            "#!/bin/sh\necho \"{tool} $*\" >> '{}'\n\
             case \"$*\" in *debian-installed*) exit {installed};; *was-enabled*) exit {was_enabled};; esac\nexit 0\n",
            calls.display()
        );
        let path = bin.join(tool);
        std::fs::write(&path, script).expect("stand-in written");
        run(Command::new("chmod").arg("+x").arg(&path));
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run(Command::new("sh")
        .arg(postinst)
        .args(args)
        .env("PATH", path));
    std::fs::read_to_string(&calls).unwrap_or_default()
}

/// The files themselves are the checkout's.
fn the_files_are_the_checkouts(deb: &Path, dir: &Path) {
    let root = dir.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
    let installed = |path: &str| read(&root.join(path.trim_start_matches('/')));
    for (path, source) in [
        (
            "/etc/thulium-mail-bridge/config.toml",
            "config.example.toml",
        ),
        (UNIT, "systemd/thulium-mail-bridge.service"),
        (
            "/usr/share/thulium-mail-bridge/alerts.yml",
            "monitoring/alerts.yml",
        ),
        (
            "/usr/share/thulium-mail-bridge/dashboard.json",
            "monitoring/dashboard.json",
        ),
    ] {
        assert!(
            installed(path) == read(&checkout().join(source)),
            "{path} is {source}"
        );
    }
    let bin = root.join("usr/bin/thulium-mail-bridge");
    let version = stdout(&run(Command::new(&bin).arg("--version")));
    assert_eq!(
        version.trim(),
        format!("{NAME} {}", env!("CARGO_PKG_VERSION"))
    );
    let man = stdout(&run(
        Command::new("zcat").arg(root.join("usr/share/man/man1/thulium-mail-bridge.1.gz"))
    ));
    assert!(
        man.starts_with(".ie") || man.contains(".TH"),
        "a man page: {man:.200}"
    );
    for (path, says) in [
        (
            "/usr/share/bash-completion/completions/thulium-mail-bridge",
            "complete -F",
        ),
        (
            "/usr/share/zsh/vendor-completions/_thulium-mail-bridge",
            "#compdef thulium-mail-bridge",
        ),
        (
            "/usr/share/fish/vendor_completions.d/thulium-mail-bridge.fish",
            "complete -c thulium-mail-bridge",
        ),
    ] {
        let text = String::from_utf8_lossy(&installed(path)).into_owned();
        assert!(
            text.contains(says) && text.contains("explain"),
            "{path}: {text:.200}"
        );
    }
}

#[test]
fn the_package_holds_what_the_readme_says() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deb = package(dir.path());
    let arch = stdout(&run(Command::new("dpkg").arg("--print-architecture")));
    assert_eq!(
        deb.file_name().and_then(|n| n.to_str()),
        Some(format!("{NAME}_{}-1_{}.deb", env!("CARGO_PKG_VERSION"), arch.trim()).as_str()),
        "the name README's install line matches"
    );
    every_file_is_there_with_its_mode(&deb);
    let control = the_config_is_a_conffile(&deb, dir.path());
    postinst_neither_enables_nor_starts_the_unit(dir.path(), &control);
    the_files_are_the_checkouts(&deb, dir.path());
}
