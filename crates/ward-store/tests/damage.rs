//! A damaged store is refused at open with what is wrong, once (issue 16, item 10): real SQLite
//! files with overwritten pages, a read-only directory (a read-only bind mount) and a full
//! disk (a small tmpfs). The mounts need root; without it those two tests say SKIPPED.

mod common;

use common::*;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use ward_event::Category;
use ward_store::{FindingStore, ListQuery, SqliteStore, StoreError};

/// A store of 400 findings (about 100 pages), checkpointed so everything is in the main file.
fn filled(path: &Path) {
    let store = SqliteStore::open(path).unwrap();
    let batch: Vec<_> = (0..400)
        .map(|i| finding(&format!("f{i}"), Category::ReverseShell, T0 + i * SEC, &WEB))
        .collect();
    store.upsert_many(&batch).unwrap();
    drop(store);
    checkpoint(path);
}

/// Moves the WAL's pages into the main file, so overwriting the file damages what is read.
fn checkpoint(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

/// Overwrites `len` bytes at `offset` with a pattern that is no valid b-tree page.
fn overwrite(path: &Path, offset: u64, len: usize) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&vec![0xA5u8; len]).unwrap();
    f.sync_all().unwrap();
}

fn corrupt_detail(e: StoreError, path: &Path) -> String {
    let text = e.to_string();
    match e {
        StoreError::CorruptDatabase { path: p, detail } => {
            assert_eq!(p, path);
            assert_eq!(
                text,
                format!("database {} is corrupt: {detail}", path.display())
            );
            detail
        }
        other => panic!("expected CorruptDatabase, got {other:?}: {text}"),
    }
}

#[test]
fn overwritten_pages_are_refused_at_open_and_can_be_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("findings.db");
    filled(&path);
    let pages = std::fs::metadata(&path).unwrap().len() / 4096;
    assert!(pages > 20, "{pages} pages");
    // Pages 3 to 10 (the first tables' roots and leaves), not the header.
    overwrite(&path, 2 * 4096, 8 * 4096);
    let detail = corrupt_detail(SqliteStore::open(&path).err().unwrap(), &path);
    assert!(detail.starts_with("quick_check: "), "{detail}");
    let damaged = std::fs::read(&path).unwrap();
    // A further handle (as `ward agent --serve` opens after checking) skips the check.
    assert!(SqliteStore::open_again(&path).is_ok());

    let (store, moved) = SqliteStore::open_or_recreate(&path).unwrap();
    let (to, why) = moved.expect("moved aside");
    assert_eq!(why, detail);
    let name = to.file_name().unwrap().to_str().unwrap();
    // findings.db.corrupt-20261201T223000Z
    assert!(name.starts_with("findings.db.corrupt-20"), "{name}");
    assert!(name.ends_with('Z') && name.len() == "findings.db.corrupt-".len() + 16);
    assert_eq!(
        std::fs::read(&to).unwrap(),
        damaged,
        "the corrupt file is kept"
    );
    // The new store is empty and writable.
    assert_eq!(store.count("").unwrap(), 0);
    store
        .upsert(&finding("new", Category::ReverseShell, T0, &WEB))
        .unwrap();
    assert_eq!(store.list(&ListQuery::default()).unwrap().findings.len(), 1);
    drop(store);
    checkpoint(&path);
    // A second corrupt file within the same second does not overwrite the first.
    overwrite(&path, 0, 100);
    let (_, moved) = SqliteStore::open_or_recreate(&path).unwrap();
    let (to2, _) = moved.unwrap();
    assert_ne!(to2, to);
    assert!(to.exists() && to2.exists());
}

#[test]
fn a_garbage_header_is_corrupt_and_a_sound_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("findings.db");
    filled(&path);
    // Sound: opens (quick_check passes) with its findings.
    assert_eq!(SqliteStore::open(&path).unwrap().count("").unwrap(), 400);
    overwrite(&path, 0, 100);
    let detail = corrupt_detail(SqliteStore::open(&path).err().unwrap(), &path);
    assert_eq!(detail, "file is not a database");
    // A normal store's open does not move anything.
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("corrupt")));
}

/// A mount for the length of a test (root only); unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn new(args: &[&str], at: &Path) -> Option<Mount> {
        let st = Command::new("mount")
            .args(args)
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        st.success().then(|| Mount(at.to_path_buf()))
    }

    /// A new empty directory `name` in a temporary directory, when running as root (the
    /// mounts need it); else None after saying SKIPPED.
    fn dir(name: &str) -> Option<(tempfile::TempDir, PathBuf)> {
        let root = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
        if !root {
            eprintln!("SKIPPED: needs root to mount");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join(name);
        std::fs::create_dir(&at).unwrap();
        Some((dir, at))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_directory_is_named_once() {
    let Some((_dir, ro)) = Mount::dir("ro") else {
        return;
    };
    filled(&ro.join("old.db"));
    let _bind = Mount::new(&["--bind", ro.to_str().unwrap()], &ro).expect("bind mount");
    let remount = Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(&ro)
        .status()
        .unwrap();
    assert!(remount.success(), "remount read-only");
    let why = format!(
        "the directory {} is on a read-only file system",
        ro.display()
    );
    // A new store, and an existing one, in a read-only directory.
    for (file, context) in [
        ("new.db", "cannot open database"),
        ("old.db", "cannot check the integrity of database"),
    ] {
        let path = ro.join(file);
        let e = SqliteStore::open(&path).err().unwrap();
        assert!(matches!(e, StoreError::Sqlite { .. }), "{e:?}");
        let text = e.to_string();
        assert_eq!(
            text,
            format!(
                "{context} {}: {why} (unable to open database file)",
                path.display()
            )
        );
        // Said once: the error has no source chain repeating it in `{:#}` printers beyond
        // SQLite's own code.
        assert_eq!(text.matches("unable to open").count(), 1, "{text}");
        assert_eq!(text.matches(path.to_str().unwrap()).count(), 1, "{text}");
    }
}

#[test]
fn a_full_disk_is_named_at_open_and_on_write() {
    let Some((_dir, mnt)) = Mount::dir("small") else {
        return;
    };
    let _tmpfs = Mount::new(&["-t", "tmpfs", "-o", "size=2m", "tmpfs"], &mnt).expect("tmpfs");
    let path = mnt.join("findings.db");
    let store = SqliteStore::open(&path).unwrap();
    store
        .upsert(&finding("first", Category::ReverseShell, T0, &WEB))
        .unwrap();
    // Fill the file system.
    let mut filler = std::fs::File::create(mnt.join("filler")).unwrap();
    let chunk = vec![1u8; 64 * 1024];
    while filler.write_all(&chunk).is_ok() {}
    let _ = filler.sync_all();
    // Writes fail saying the disk is full; the batch is large enough to need new pages.
    let batch: Vec<_> = (0..400)
        .map(|i| finding(&format!("f{i}"), Category::ReverseShell, T0 + i * SEC, &API))
        .collect();
    let e = store.upsert_many(&batch).expect_err("write on a full disk");
    let text = e.to_string();
    assert!(text.contains(path.to_str().unwrap()), "{text}");
    assert!(text.contains("the disk is full"), "{text}");
    assert_eq!(text.matches("full").count(), 2, "{text}"); // ours + SQLite's, once each
    drop(store);
    // Opening a new store there fails the same way.
    let e = SqliteStore::open(mnt.join("other.db")).err().unwrap();
    let text = e.to_string();
    assert!(text.contains("the disk is full"), "{text}");
}
