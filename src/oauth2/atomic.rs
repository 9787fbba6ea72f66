//! Writing a secret file so that a crash leaves either the old or the new
//! content, never an empty or half-written file: a temp file in the same
//! directory (same file system), fsync, rename over, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, fchown};
use std::path::Path;

/// Replaces `path` atomically with `contents` and a newline, mode 0600,
/// owned by the directory's owner when we may (root running `oauth2 login`
/// for the service user's state directory).
pub(super) fn write_private_file(path: &Path, contents: &str) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}-{:08x}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The umask can only take bits away; set them exactly anyway.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        let owner = fs::metadata(dir)?;
        if file.metadata()?.uid() != owner.uid() {
            // Only root may give a file away; anyone else keeps it, which is right for them.
            let _ = fchown(&file, Some(owner.uid()), Some(owner.gid()));
        }
        file.write_all(contents.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // The rename itself must survive a crash too.
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_with_mode_0600_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refresh_token");
        fs::write(&path, "old\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private_file(&path, "new-token").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new-token\n");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["refresh_token"]);
    }

    #[test]
    fn root_gives_the_file_to_the_directorys_owner() {
        let dir = tempfile::tempdir().unwrap();
        // Only root can hand the directory to someone else; others have nothing to test here.
        if std::os::unix::fs::chown(dir.path(), Some(12345), Some(12345)).is_err() {
            return;
        }
        let path = dir.path().join("rt");
        write_private_file(&path, "t").unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (12345, 12345));
    }

    #[test]
    fn a_failed_write_leaves_the_old_content_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // A rename over a non-empty directory fails after the temp file was written.
        let path = dir.path().join("rt");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("keep"), "old").unwrap();
        assert!(write_private_file(&path, "new").is_err());
        assert_eq!(fs::read_to_string(path.join("keep")).unwrap(), "old");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["rt"]);
        assert!(write_private_file(&dir.path().join("missing").join("rt"), "x").is_err());
        assert!(write_private_file(Path::new("/"), "x").is_err());
    }
}
