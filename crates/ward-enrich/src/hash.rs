//! Binary hashing off the hot path.
//!
//! At exec the caller opens `/proc/PID/exe` (a handle on the very file the process runs:
//! deleting or replacing the path afterwards does not change what is read) and checks that the
//! handle's device and inode are the ones the kernel reported. The handle goes to a worker
//! thread through a bounded queue; results are cached by file identity (dev, inode, size,
//! mtime, ctime), so a binary is hashed once until it changes. Files larger than
//! `max_bytes` are hashed over their first `max_bytes` (`partiallyHashed`).

use sha2::{Digest, Sha256 as Hasher};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use ward_event::Sha256;

/// What identifies a file's contents well enough to reuse a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// ns since the epoch
    pub mtime: u64,
    /// ns since the epoch
    pub ctime: u64,
}

/// A finished hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashResult {
    pub sha256: Sha256,
    /// Bytes covered by the hash.
    pub hashed_size: u64,
    /// True when the file is larger than what was hashed.
    pub partial: bool,
}

#[derive(Debug, Clone)]
pub struct HashConfig {
    /// Files larger than this are hashed over their first `max_bytes` bytes.
    pub max_bytes: u64,
    /// Worker threads for any file.
    pub workers: usize,
    /// One more worker takes only files up to this size (0 = no such lane), so a small dropped
    /// binary is never stuck behind a large binary seen for the first time.
    pub small_lane_max: u64,
    /// Jobs waiting beyond this are refused (counted as misses).
    pub queue: usize,
    /// Cached results; the cache is emptied when full.
    pub cache_entries: usize,
}

impl Default for HashConfig {
    fn default() -> Self {
        HashConfig {
            max_bytes: 64 << 20,
            workers: 1,
            small_lane_max: 1 << 20,
            queue: 1024,
            cache_entries: 16384,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashStats {
    /// Answered from the cache.
    pub cache_hits: u64,
    /// Files hashed.
    pub hashed: u64,
    /// Bytes read for hashing.
    pub bytes: u64,
    /// Refused because the queue was full.
    pub queue_full: u64,
    /// Read errors in the worker.
    pub errors: u64,
}

/// Outcome of [`HashService::submit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submit {
    Cached(HashResult),
    /// Queued now or already in flight: the answer comes through [`HashService::drain`].
    Pending,
    /// The queue is full: no hash for this one.
    Refused,
}

type Done = (FileKey, Result<HashResult, String>);

/// A file to hash. The queue serves the smallest file first (then the oldest job): a small
/// dropped binary is not stuck behind a large runtime binary seen for the first time.
struct Job {
    key: FileKey,
    file: File,
    seq: u64,
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Job {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: the smallest size, then the lowest sequence number.
        other
            .key
            .size
            .cmp(&self.key.size)
            .then(other.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
struct Queue {
    jobs: Mutex<(BinaryHeap<Job>, bool)>,
    ready: Condvar,
}

/// Worker threads hashing opened files, and the cache of their results (owned by the caller's
/// thread; no locks).
pub struct HashService {
    queue: Arc<Queue>,
    capacity: usize,
    seq: u64,
    rx: Receiver<Done>,
    cache: HashMap<FileKey, HashResult>,
    inflight: HashSet<FileKey>,
    cache_entries: usize,
    stats: HashStats,
}

impl std::fmt::Debug for HashService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashService")
            .field("cached", &self.cache.len())
            .field("inflight", &self.inflight.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl HashService {
    pub fn start(cfg: &HashConfig) -> HashService {
        let queue = Arc::new(Queue::default());
        let (res_tx, rx) = mpsc::channel::<Done>();
        let lanes = (0..cfg.workers.max(1))
            .map(|_| u64::MAX)
            .chain((cfg.small_lane_max > 0).then_some(cfg.small_lane_max));
        for (i, lane_max) in lanes.enumerate() {
            let queue = queue.clone();
            let res_tx = res_tx.clone();
            let max = cfg.max_bytes.max(1);
            let _ = std::thread::Builder::new()
                .name(format!("ward-hash-{i}"))
                .spawn(move || loop {
                    let job = {
                        let Ok(mut g) = queue.jobs.lock() else { return };
                        loop {
                            if g.1 {
                                return;
                            }
                            // The heap's top is the smallest file.
                            if g.0.peek().is_some_and(|j| j.key.size <= lane_max) {
                                if let Some(j) = g.0.pop() {
                                    break j;
                                }
                            }
                            g = match queue.ready.wait(g) {
                                Ok(g) => g,
                                Err(_) => return,
                            };
                        }
                    };
                    let r = hash_file(job.file, max).map_err(|e| e.to_string());
                    if res_tx.send((job.key, r)).is_err() {
                        return;
                    }
                });
        }
        HashService {
            queue,
            capacity: cfg.queue.max(1),
            seq: 0,
            rx,
            cache: HashMap::new(),
            inflight: HashSet::new(),
            cache_entries: cfg.cache_entries.max(16),
            stats: HashStats::default(),
        }
    }

    pub fn stats(&self) -> HashStats {
        self.stats
    }

    /// The cached hash of `key`, if any.
    pub fn cached(&self, key: &FileKey) -> Option<HashResult> {
        self.cache.get(key).copied()
    }

    /// Whether a job for `key` is queued or running.
    pub fn is_pending(&self, key: &FileKey) -> bool {
        self.inflight.contains(key)
    }

    /// The hash of `key` from the cache, or queues `open()`'s file for hashing. `open` is
    /// called only when the file must be hashed; `None` from it means the file is gone.
    pub fn submit(&mut self, key: FileKey, open: impl FnOnce() -> Option<File>) -> Submit {
        if let Some(r) = self.cache.get(&key) {
            self.stats.cache_hits += 1;
            return Submit::Cached(*r);
        }
        if self.inflight.contains(&key) {
            return Submit::Pending;
        }
        let Some(file) = open() else {
            return Submit::Refused;
        };
        let Ok(mut g) = self.queue.jobs.lock() else {
            return Submit::Refused;
        };
        if g.0.len() >= self.capacity {
            self.stats.queue_full += 1;
            return Submit::Refused;
        }
        self.seq += 1;
        g.0.push(Job {
            key,
            file,
            seq: self.seq,
        });
        drop(g);
        // Wake every worker: the one that is free may be a lane that cannot take this job.
        self.queue.ready.notify_all();
        self.inflight.insert(key);
        Submit::Pending
    }

    /// Takes in finished jobs.
    pub fn drain(&mut self) {
        while let Ok((key, r)) = self.rx.try_recv() {
            self.inflight.remove(&key);
            match r {
                Ok(h) => {
                    self.stats.hashed += 1;
                    self.stats.bytes += h.hashed_size;
                    if self.cache.len() >= self.cache_entries {
                        self.cache.clear();
                    }
                    self.cache.insert(key, h);
                }
                Err(e) => {
                    self.stats.errors += 1;
                    tracing::debug!(error = %e, ?key, "hashing failed");
                }
            }
        }
    }
}

impl Drop for HashService {
    fn drop(&mut self) {
        if let Ok(mut g) = self.queue.jobs.lock() {
            g.1 = true;
            g.0.clear();
        }
        self.queue.ready.notify_all();
    }
}

/// SHA-256 of the first `max` bytes of `file`, read by offset (`pread`): the handle's own
/// offset is neither used nor moved, so a duplicate of a handle kept elsewhere hashes right.
pub fn hash_file(file: File, max: u64) -> std::io::Result<HashResult> {
    use std::os::unix::fs::FileExt;
    let size = file.metadata()?.len();
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut done: u64 = 0;
    while done < max {
        let want = (max - done).min(buf.len() as u64) as usize;
        let n = match file.read_at(&mut buf[..want], done) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        done += n as u64;
    }
    Ok(HashResult {
        sha256: Sha256(h.finalize().into()),
        hashed_size: done,
        partial: done < size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{Duration, Instant};

    fn key_of(f: &File) -> FileKey {
        use std::os::unix::fs::MetadataExt;
        let m = f.metadata().unwrap();
        FileKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime() as u64 * 1_000_000_000 + m.mtime_nsec() as u64,
            ctime: m.ctime() as u64 * 1_000_000_000 + m.ctime_nsec() as u64,
        }
    }

    fn wait(svc: &mut HashService, key: FileKey) -> HashResult {
        let start = Instant::now();
        loop {
            svc.drain();
            if let Some(r) = svc.cached(&key) {
                return r;
            }
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn hashes_through_a_handle_after_the_path_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin");
        std::fs::write(&p, b"hello").unwrap();
        let handle = File::open(&p).unwrap();
        let key = key_of(&handle);
        // Deleted and replaced right after the exec: the handle still reads the old bytes.
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b"other").unwrap();
        let mut svc = HashService::start(&HashConfig::default());
        let mut handle = Some(handle);
        assert_eq!(svc.submit(key, || handle.take()), Submit::Pending);
        assert_eq!(svc.submit(key, || panic!("not reopened")), Submit::Pending);
        let r = wait(&mut svc, key);
        assert_eq!(
            r.sha256.to_hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!((r.hashed_size, r.partial), (5, false));
        assert!(matches!(svc.submit(key, || None), Submit::Cached(_)));
        assert_eq!(svc.stats().cache_hits, 1);
    }

    #[test]
    fn large_files_are_partially_hashed() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[7u8; 10_000]).unwrap();
        let mut f2 = tempfile::NamedTempFile::new().unwrap();
        f2.write_all(&[7u8; 4096]).unwrap();
        let r = hash_file(File::open(f2.path()).unwrap(), 4096).unwrap();
        assert!(!r.partial);
        let whole = r.sha256;
        use std::io::Seek;
        f.rewind().unwrap();
        let r = hash_file(f, 4096).unwrap();
        assert_eq!((r.hashed_size, r.partial), (4096, true));
        assert_eq!(r.sha256, whole, "the prefix's hash");
    }

    #[test]
    fn smallest_first() {
        let mk = |size, seq| Job {
            key: FileKey {
                dev: 0,
                ino: seq,
                size,
                mtime: 0,
                ctime: 0,
            },
            file: File::open("/dev/null").unwrap(),
            seq,
        };
        let mut h = BinaryHeap::new();
        h.push(mk(40 << 20, 1));
        h.push(mk(231, 3));
        h.push(mk(231, 2));
        h.push(mk(5000, 4));
        let order: Vec<u64> = std::iter::from_fn(|| h.pop().map(|j| j.seq)).collect();
        assert_eq!(order, [2, 3, 4, 1]);
    }

    #[test]
    fn small_files_are_not_stuck_behind_a_large_one() {
        let mut svc = HashService::start(&HashConfig {
            max_bytes: 1 << 40,
            ..HashConfig::default()
        });
        // The general worker is busy for long: an endless /dev/zero claiming to be large.
        let big = FileKey {
            dev: 0,
            ino: 1,
            size: 1 << 30,
            mtime: 0,
            ctime: 0,
        };
        assert_eq!(
            svc.submit(big, || Some(File::open("/dev/zero").unwrap())),
            Submit::Pending
        );
        std::thread::sleep(Duration::from_millis(20));
        let mut small = tempfile::NamedTempFile::new().unwrap();
        small.write_all(b"hello").unwrap();
        let f = File::open(small.path()).unwrap();
        let key = key_of(&f);
        let mut f = Some(f);
        assert_eq!(svc.submit(key, || f.take()), Submit::Pending);
        let start = Instant::now();
        let r = wait(&mut svc, key);
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(r.hashed_size, 5);
    }

    #[test]
    fn full_queue_is_refused_and_counted() {
        let mut svc = HashService::start(&HashConfig {
            queue: 1,
            workers: 1,
            small_lane_max: 0,
            ..HashConfig::default()
        });
        // Stall the worker on a pipe that never ends... use /dev/zero with a huge cap.
        let zero = || Some(File::open("/dev/zero").unwrap());
        let mk = |i| FileKey {
            dev: 0,
            ino: i,
            size: 0,
            mtime: 0,
            ctime: 0,
        };
        let mut refused = 0;
        for i in 0..50 {
            if svc.submit(mk(i), zero) == Submit::Refused {
                refused += 1;
            }
        }
        assert!(refused > 0);
        assert_eq!(svc.stats().queue_full, refused);
    }
}
