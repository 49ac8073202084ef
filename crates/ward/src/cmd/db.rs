//! Opening the finding database for `ward agent` and `ward serve`: integrity checked, and a
//! corrupt file refused (or, with `--recreate-corrupt-db`, moved aside and started afresh).

use anyhow::Result;
use std::path::Path;
use ward_store::{SqliteStore, StoreError};

/// Opens `path` read-write after `PRAGMA quick_check`. A corrupt store is an error saying so,
/// unless `recreate_corrupt`: then it is moved to `<path>.corrupt-<UTC time>` (with its WAL)
/// and an empty store takes its place, and stderr says where the old one went.
pub fn open_store(path: &Path, recreate_corrupt: bool) -> Result<SqliteStore> {
    if !recreate_corrupt {
        return SqliteStore::open(path).map_err(|e| match e {
            StoreError::CorruptDatabase { .. } => anyhow::anyhow!(
                "{e}; move it aside, or start with --recreate-corrupt-db to have it moved to {}.corrupt-<time> and an empty store created",
                path.display()
            ),
            e => e.into(),
        });
    }
    let (store, moved) = SqliteStore::open_or_recreate(path)?;
    if let Some((to, detail)) = moved {
        eprintln!(
            "ward: database {} was corrupt ({detail}); moved it to {} and created an empty store",
            path.display(),
            to.display()
        );
    }
    Ok(store)
}
