//! Container metadata from podman's on-disk container store (containers/storage), for podman
//! hosts that run no API service (`podman system service`): `overlay-containers/containers.json`
//! lists each container's id, names, image id and a metadata string holding the image
//! reference; `overlay-images/images.json` names the image when that string does not.
//!
//! What the store lacks is left empty: labels, and so pod identity, live in podman's own
//! database (BoltDB or SQLite), which this module does not read.

use serde_json::Value;
use std::path::{Path, PathBuf};
use ward_event::ContainerMeta;

/// Why a store could not be read (its absence is `Ok(None)`, not an error).
#[derive(Debug, thiserror::Error)]
pub enum StoreReadError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not the JSON list podman writes: {detail}", path.display())]
    Malformed { path: PathBuf, detail: String },
}

fn read_list(path: &Path) -> Result<Option<Vec<Value>>, StoreReadError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreReadError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(list)) => Ok(Some(list)),
        Ok(_) => Err(StoreReadError::Malformed {
            path: path.to_path_buf(),
            detail: "not a list".into(),
        }),
        Err(e) => Err(StoreReadError::Malformed {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The first name of a `names` list.
fn first_name(v: &Value) -> &str {
    v.get("names")
        .and_then(Value::as_array)
        .and_then(|n| n.first())
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Metadata of container `id` from the store rooted at `root` (e.g.
/// `/var/lib/containers/storage`); `Ok(None)` when the store or the container is not there.
pub fn lookup(root: &Path, id: &str) -> Result<Option<ContainerMeta>, StoreReadError> {
    let Some(containers) = read_list(&root.join("overlay-containers/containers.json"))? else {
        return Ok(None);
    };
    let Some(c) = containers.iter().find(|c| str_of(c, "id") == id) else {
        return Ok(None);
    };
    // `metadata` is a JSON document in a string: image-name, image-id, name, created-at.
    let meta: Value = serde_json::from_str(str_of(c, "metadata")).unwrap_or(Value::Null);
    let image_id = str_of(c, "image");
    let mut image = str_of(&meta, "image-name").to_string();
    if image.is_empty() && !image_id.is_empty() {
        // A missing or unreadable image list only costs the reference, not the lookup.
        if let Ok(Some(images)) = read_list(&root.join("overlay-images/images.json")) {
            if let Some(i) = images.iter().find(|i| str_of(i, "id") == image_id) {
                image = first_name(i).to_string();
            }
        }
    }
    let mut name = first_name(c).to_string();
    if name.is_empty() {
        name = str_of(&meta, "name").to_string();
    }
    Ok(Some(ContainerMeta {
        name,
        image,
        image_id: if image_id.is_empty() {
            String::new()
        } else {
            format!("sha256:{image_id}")
        },
        created: ward_event::time::parse_rfc3339(str_of(c, "created")),
        ..ContainerMeta::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "7a6b53e927728372fed988270fedb363719467c090c877738e691f2ec07b1efe";
    const IMAGE: &str = "628625e9c0ec86153ae4e3569a2fe04ece343c0b71baa9b9cadc051959a01e3e";

    fn store(containers: &str, images: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("overlay-containers")).unwrap();
        std::fs::write(
            dir.path().join("overlay-containers/containers.json"),
            containers,
        )
        .unwrap();
        if let Some(images) = images {
            std::fs::create_dir_all(dir.path().join("overlay-images")).unwrap();
            std::fs::write(dir.path().join("overlay-images/images.json"), images).unwrap();
        }
        dir
    }

    /// The shape podman 4.3 writes (copied from this machine, ids kept).
    #[test]
    fn reads_name_image_and_created_from_containers_json() {
        let containers = format!(
            r#"[{{"id":"{ID}","names":["web"],"image":"{IMAGE}","layer":"28b2","metadata":"{{\"image-name\":\"localhost/ward-test-debian:latest\",\"image-id\":\"{IMAGE}\",\"name\":\"web\",\"created-at\":1796166362}}","created":"2026-12-01T23:06:02.999208863Z","flags":{{}}}}]"#
        );
        let dir = store(&containers, None);
        let m = lookup(dir.path(), ID).unwrap().unwrap();
        assert_eq!(m.name, "web");
        assert_eq!(m.image, "localhost/ward-test-debian:latest");
        assert_eq!(m.image_id, format!("sha256:{IMAGE}"));
        assert_eq!(
            m.created,
            ward_event::time::parse_rfc3339("2026-12-01T23:06:02.999208863Z")
        );
        assert_eq!(m.note, None);
        assert_eq!(lookup(dir.path(), &"0".repeat(64)).unwrap(), None);
    }

    #[test]
    fn image_name_from_images_json_and_absent_or_broken_stores() {
        let containers =
            format!(r#"[{{"id":"{ID}","names":["db"],"image":"{IMAGE}","metadata":""}}]"#);
        let images = format!(r#"[{{"id":"{IMAGE}","names":["docker.io/library/postgres:16"]}}]"#);
        let dir = store(&containers, Some(&images));
        let m = lookup(dir.path(), ID).unwrap().unwrap();
        assert_eq!(
            (m.name.as_str(), m.image.as_str()),
            ("db", "docker.io/library/postgres:16")
        );
        // No store at all: not an error.
        assert_eq!(lookup(Path::new("/nonexistent/storage"), ID).unwrap(), None);
        // A store that is not podman's JSON: an error naming the file.
        let dir = store("{\"not\": \"a list\"}", None);
        let e = lookup(dir.path(), ID).unwrap_err().to_string();
        assert!(
            e.contains("containers.json") && e.contains("not a list"),
            "{e}"
        );
    }
}
