//! The model file: a versioned, checksummed binary with a JSON manifest.
//!
//! Layout (little endian):
//! `b"WARDMDL\0"`, `u32 format_version`, `u32 manifest_len`, manifest JSON, `u32 dim`,
//! `f32 bias`, `dim × f32 weights`, then the 32-byte SHA-256 of everything before it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::features::{self, FeatureVector, DIM, HASH_BITS, N_SIGNALS};
use crate::MlError;

/// Version of the model file format. The loader refuses any other.
pub const MODEL_FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"WARDMDL\0";

/// One input of the training data, pinned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataSource {
    /// What it is (e.g. `malicious-pack`, `wheel`, `stdlib`, `runtime-templates`).
    pub kind: String,
    /// Name and version or path.
    pub name: String,
    /// SHA-256 of the source (file bytes; for directories, of the sorted list of file hashes).
    pub sha256: String,
    /// Number of scripts taken from it.
    pub scripts: usize,
}

/// Manifest stored inside the model file (and next to it as `manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Model file format version ([`MODEL_FORMAT_VERSION`]).
    pub format_version: u32,
    /// Model name, e.g. `ward-python-v1`.
    pub name: String,
    /// [`features::feature_set_hash`] of the code that trained it.
    pub feature_set_hash: String,
    /// Feature-set version tag.
    pub feature_set_version: String,
    /// Hashed-space bits.
    pub hash_bits: u32,
    /// Number of dense signals.
    pub n_signals: usize,
    /// Decision threshold on the score.
    pub threshold: f32,
    /// How the threshold was chosen.
    pub threshold_rule: String,
    /// Training hyper-parameters, seed included.
    pub training: serde_json::Value,
    /// Data provenance.
    pub data: Vec<DataSource>,
    /// Evaluation figures (grouped cross-validation), as written by `evaluate`.
    pub metrics: serde_json::Value,
}

/// A loaded model.
#[derive(Debug, Clone)]
pub struct Model {
    /// The manifest.
    pub manifest: Manifest,
    /// Bias term.
    pub bias: f32,
    /// Weights, length [`DIM`].
    pub weights: Vec<f32>,
    id: String,
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

impl Model {
    /// Builds a model from trained parameters.
    pub fn new(manifest: Manifest, bias: f32, weights: Vec<f32>) -> Self {
        let mut m = Model {
            manifest,
            bias,
            weights,
            id: String::new(),
        };
        let bytes = m.to_bytes();
        m.id = Self::make_id(&m.manifest.name, &bytes);
        m
    }

    fn make_id(name: &str, bytes: &[u8]) -> String {
        let h = hex::encode(Sha256::digest(bytes));
        format!("{name} (sha256:{})", &h[..16])
    }

    /// Identifier: name and the file's SHA-256 prefix.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The raw linear score (log-odds).
    pub fn margin(&self, fv: &FeatureVector) -> f32 {
        let mut z = self.bias;
        for (&i, &v) in fv.idx.iter().zip(&fv.val) {
            if let Some(w) = self.weights.get(i as usize) {
                z += w * v;
            }
        }
        z
    }

    /// Score in `[0, 1]`.
    pub fn score(&self, fv: &FeatureVector) -> f32 {
        sigmoid(self.margin(fv))
    }

    /// Per-feature contributions `w_i x_i`, largest first, positive only, at most `k`.
    pub fn top_contributions(&self, fv: &FeatureVector, k: usize) -> Vec<(u32, f32)> {
        let mut c: Vec<(u32, f32)> = fv
            .idx
            .iter()
            .zip(&fv.val)
            .filter_map(|(&i, &v)| {
                let w = *self.weights.get(i as usize)?;
                let c = w * v;
                (c > 0.0).then_some((i, c))
            })
            .collect();
        c.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        c.truncate(k);
        c
    }

    /// Serializes the model file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let manifest = serde_json::to_vec(&self.manifest).unwrap_or_default();
        let mut out = Vec::with_capacity(64 + manifest.len() + self.weights.len() * 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.manifest.format_version.to_le_bytes());
        out.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
        out.extend_from_slice(&manifest);
        out.extend_from_slice(&(self.weights.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.bias.to_le_bytes());
        for w in &self.weights {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Writes the model file and `manifest.json` beside it.
    pub fn save(&self, path: &Path) -> Result<(), MlError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| MlError::io("create dir", dir, e))?;
            }
        }
        std::fs::write(path, self.to_bytes()).map_err(|e| MlError::io("write", path, e))?;
        let mpath = path.with_file_name("manifest.json");
        let json = serde_json::to_string_pretty(&self.manifest).map_err(|e| MlError::Json {
            what: "manifest".into(),
            source: e,
        })?;
        std::fs::write(&mpath, json + "\n").map_err(|e| MlError::io("write", &mpath, e))?;
        Ok(())
    }

    /// Loads and validates a model file.
    pub fn load(path: &Path) -> Result<Self, MlError> {
        let bytes = std::fs::read(path).map_err(|e| MlError::io("read", path, e))?;
        Self::from_bytes(&bytes).map_err(|why| MlError::BadModel {
            path: path.to_path_buf(),
            why,
        })
    }

    /// Parses and validates model bytes: magic, format version, checksum, feature-set hash and
    /// dimensions must all match this code.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < MAGIC.len() + 8 + 32 || &bytes[..8] != MAGIC {
            return Err("not a ward model file (bad magic)".into());
        }
        let body = &bytes[..bytes.len() - 32];
        if Sha256::digest(body).as_slice() != &bytes[bytes.len() - 32..] {
            return Err("checksum mismatch (corrupt file)".into());
        }
        let rd = |off: usize| -> Result<u32, String> {
            body.get(off..off + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| "truncated".to_string())
        };
        let version = rd(8)?;
        if version != MODEL_FORMAT_VERSION {
            return Err(format!(
                "format version {version}, this code reads {MODEL_FORMAT_VERSION}"
            ));
        }
        let mlen = rd(12)? as usize;
        let mjson = body.get(16..16 + mlen).ok_or("truncated manifest")?;
        let manifest: Manifest =
            serde_json::from_slice(mjson).map_err(|e| format!("manifest: {e}"))?;
        if manifest.format_version != MODEL_FORMAT_VERSION {
            return Err("manifest format version mismatch".into());
        }
        let fsh = features::feature_set_hash();
        if manifest.feature_set_hash != fsh {
            return Err(format!(
                "feature-set hash {} does not match this code's {} (retrain the model)",
                manifest.feature_set_hash, fsh
            ));
        }
        if manifest.hash_bits != HASH_BITS || manifest.n_signals != N_SIGNALS {
            return Err("feature dimensions do not match this code".into());
        }
        let off = 16 + mlen;
        let dim = rd(off)? as usize;
        if dim != DIM {
            return Err(format!("weight count {dim}, expected {DIM}"));
        }
        let bias_b = body.get(off + 4..off + 8).ok_or("truncated bias")?;
        let bias = f32::from_le_bytes([bias_b[0], bias_b[1], bias_b[2], bias_b[3]]);
        let wb = body
            .get(off + 8..off + 8 + dim * 4)
            .ok_or("truncated weights")?;
        if off + 8 + dim * 4 != body.len() {
            return Err("trailing bytes after weights".into());
        }
        let weights: Vec<f32> = wb
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if !bias.is_finite() || weights.iter().any(|w| !w.is_finite()) {
            return Err("non-finite weights".into());
        }
        let id = Self::make_id(&manifest.name, bytes);
        Ok(Model {
            manifest,
            bias,
            weights,
            id,
        })
    }
}

/// A manifest with the current code's feature identity and empty provenance/metrics.
pub fn blank_manifest(name: &str, threshold: f32) -> Manifest {
    Manifest {
        format_version: MODEL_FORMAT_VERSION,
        name: name.to_string(),
        feature_set_hash: features::feature_set_hash(),
        feature_set_version: features::FEATURE_SET_VERSION.to_string(),
        hash_bits: HASH_BITS,
        n_signals: N_SIGNALS,
        threshold,
        threshold_rule: String::new(),
        training: serde_json::Value::Null,
        data: Vec::new(),
        metrics: serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_refusals() {
        let m = Model::new(blank_manifest("t", 0.5), 0.25, vec![0.5; DIM]);
        let b = m.to_bytes();
        let m2 = Model::from_bytes(&b).unwrap();
        assert_eq!(m2.bias, 0.25);
        assert_eq!(m2.id(), m.id());
        // Corrupt one weight byte: checksum refuses.
        let mut c = b.clone();
        let n = c.len();
        c[n - 40] ^= 1;
        assert!(Model::from_bytes(&c).unwrap_err().contains("checksum"));
        // Wrong feature-set hash: refused even with a valid checksum.
        let mut man = blank_manifest("t", 0.5);
        man.feature_set_hash = "0".repeat(64);
        let bad = Model::new(man, 0.0, vec![0.0; DIM]).to_bytes();
        assert!(Model::from_bytes(&bad)
            .unwrap_err()
            .contains("feature-set hash"));
        // Wrong format version.
        let mut man = blank_manifest("t", 0.5);
        man.format_version = 99;
        let mut bad = Model::new(man, 0.0, vec![0.0; DIM]).to_bytes();
        bad[8] = 99;
        let body_len = bad.len() - 32;
        let sum = Sha256::digest(&bad[..body_len]);
        bad[body_len..].copy_from_slice(&sum);
        assert!(Model::from_bytes(&bad)
            .unwrap_err()
            .contains("format version"));
        assert!(Model::from_bytes(b"garbage").is_err());
    }
}
