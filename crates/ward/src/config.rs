//! Ward's configuration file (TOML). The documented defaults are `config/ward.toml`.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use ward_detect::{DetectorsConfig, EngineConfig};

/// The documented default configuration, embedded.
pub const DEFAULT_TOML: &str = include_str!("../../../config/ward.toml");

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WardConfig {
    pub engine: EngineConfig,
    pub detectors: DetectorsConfig,
    /// `ward agent`: metrics, runtime sockets, waits, hashing.
    pub agent: crate::cmd::agent::config::AgentConfig,
    /// `ward serve` (and the API inside the agent): listen address, tokens, TLS, limits.
    pub api: ward_api::ApiConfig,
}

impl WardConfig {
    /// Parses TOML text; errors name `origin` and the line and column at fault.
    pub fn parse(text: &str, origin: &str) -> Result<WardConfig> {
        toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            anyhow::anyhow!("{origin}:{line}:{col}: {}", e.message())
        })
    }

    pub fn load(path: &Path) -> Result<WardConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn load_or_default(path: Option<&Path>) -> Result<WardConfig> {
        match path {
            Some(p) => Self::load(p),
            None => Ok(WardConfig::default()),
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_equal_the_code_defaults() {
        let parsed = WardConfig::parse(DEFAULT_TOML, "config/ward.toml").unwrap();
        assert_eq!(parsed, WardConfig::default());
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let text = "[engine]\nmax_processes = 10\n\n[detectors.compiler]\nenabeld = true\n";
        let e = WardConfig::parse(text, "my.toml").unwrap_err().to_string();
        assert!(e.starts_with("my.toml:5:1:"), "{e}");
        assert!(e.contains("enabeld"), "{e}");
        let e = WardConfig::parse("[engine]\naggregation_window = \"soon\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:2:"), "{e}");
        let e = WardConfig::parse("[api]\nlisten = \"127.0.0.1:1\"\nlisen = 2\n", "a.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a.toml:3:1:") && e.contains("lisen"), "{e}");
        let api = WardConfig::parse(
            "[api]\nlisten = \"0.0.0.0:9443\"\n[[api.tokens]]\nname = \"ci\"\nscope = \"read\"\ntoken = \"0123456789abcdef-read\"\n[api.tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n",
            "a.toml",
        )
        .unwrap()
        .api;
        assert_eq!(api.listen.port(), 9443);
        assert_eq!(api.tokens.len(), 1);
        api.validate().unwrap();
        let partial = WardConfig::parse("[detectors.added_binary]\nenabled = true\n", "p").unwrap();
        assert!(partial.detectors.added_binary.enabled);
        assert!(
            partial.detectors.compiler.enabled,
            "unset keys keep defaults"
        );
    }
}
