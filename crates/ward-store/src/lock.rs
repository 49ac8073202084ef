//! One writer of findings per store: an advisory lock on a file next to the database.
//!
//! Two agents on one database would each write the same events, and each aggregates them in
//! its own memory, so one reverse shell would be stored several times. [`WriterLock`] takes an
//! exclusive `flock(2)` on `<db>.lock` (released by the kernel when the process dies, also on
//! SIGKILL, so a stale file never blocks a restart) and writes who holds it into the file, so
//! the second writer's error names the first. Readers (`ward serve`, `ward findings`) take no
//! lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the writer lock could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "database {} is already used by another writer ({holder}); lock file {}. Stop that process or use another --db",
        db.display(),
        lock.display()
    )]
    Held {
        db: PathBuf,
        lock: PathBuf,
        /// What the holder wrote into the lock file, e.g. `pid 4242 (ward agent) since …`.
        holder: String,
    },
    #[error("cannot use lock file {}: {source}", lock.display())]
    Io {
        lock: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held while the process writes findings into the database; released on drop or exit.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
    path: PathBuf,
}

/// The lock file of database `db`: `<db>.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

impl WriterLock {
    /// Takes the lock of `db` for `what` (e.g. `ward agent`), or says who holds it.
    pub fn acquire(db: &Path, what: &str) -> Result<WriterLock, LockError> {
        let path = lock_path(db);
        let io = |source| LockError::Io {
            lock: path.clone(),
            source,
        };
        if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    db: db.to_path_buf(),
                    lock: path.clone(),
                    holder: if holder.is_empty() {
                        "a process that has not written its name yet".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let since = ward_event::time::format_rfc3339(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        );
        let me = format!("pid {} ({what}) since {since}\n", std::process::id());
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(me.as_bytes()))
            .and_then(|_| file.flush())
            .map_err(io)?;
        Ok(WriterLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ward.db");
        let first = WriterLock::acquire(&db, "ward agent").unwrap();
        assert_eq!(first.path(), dir.path().join("ward.db.lock"));
        // flock locks belong to the open file description: a second open in this process is
        // refused like another process would be.
        let err = WriterLock::acquire(&db, "ward replay").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{msg}");
        assert!(
            msg.contains(&format!("pid {} (ward agent)", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("ward.db.lock"), "{msg}");
        drop(first);
        let again = WriterLock::acquire(&db, "ward replay").unwrap();
        let text = std::fs::read_to_string(again.path()).unwrap();
        assert!(text.starts_with(&format!("pid {} (ward replay)", std::process::id())));
        assert_eq!(text.lines().count(), 1, "{text:?}");
    }

    #[test]
    fn an_unwritable_place_is_an_io_error_naming_the_lock_file() {
        let err = WriterLock::acquire(Path::new("/proc/ward-no-such/ward.db"), "x").unwrap_err();
        assert!(matches!(err, LockError::Io { .. }));
        assert!(err.to_string().contains("/proc/ward-no-such/ward.db.lock"));
    }
}
