//! Bearer-token authentication with read and write scopes.
//!
//! Tokens are kept as SHA-256 digests and a presented token is compared with every configured
//! one in constant time (`subtle`), so neither the comparison time nor the token length tells
//! an attacker anything. The policy:
//!
//! * writes (`POST`) always need a token with the `write` scope;
//! * reads need a token (read or write) whenever any token is configured; the server refuses
//!   to start off loopback without tokens ([`crate::ConfigError::TokensRequired`]);
//! * with no configured token (loopback only) the server makes an ephemeral write token at
//!   start ([`Auth::ephemeral`]) and prints a console link carrying it in the URL fragment.

use crate::config::{ConfigError, Scope, TokenConfig, MIN_TOKEN_LEN};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    scope: Scope,
    name: String,
}

/// The resolved token set.
#[derive(Clone)]
pub struct Auth {
    entries: Vec<Entry>,
    /// Reads need a token (true when tokens were configured).
    reads_need_token: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.entries.len())
            .field("reads_need_token", &self.reads_need_token)
            .finish()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or not a known token (401).
    Unauthenticated,
    /// A known token without the needed scope (403).
    Forbidden,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Auth {
    /// Resolves configured tokens (reading token files).
    pub fn from_config(tokens: &[TokenConfig]) -> Result<Auth, ConfigError> {
        let mut entries = Vec::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            let name = if t.name.is_empty() {
                format!("token #{}", i + 1)
            } else {
                t.name.clone()
            };
            let secret = match (&t.token, &t.token_file) {
                (Some(s), None) => s.trim().to_string(),
                (None, Some(p)) => std::fs::read_to_string(p)
                    .map_err(|source| ConfigError::Read {
                        what: "token file",
                        path: p.clone(),
                        source,
                    })?
                    .trim()
                    .to_string(),
                (None, None) => return Err(ConfigError::TokenMissing { name }),
                (Some(_), Some(_)) => return Err(ConfigError::TokenTwice { name }),
            };
            let len = secret.chars().count();
            if len < MIN_TOKEN_LEN {
                return Err(ConfigError::TokenTooShort { name, len });
            }
            entries.push(Entry {
                digest: digest(&secret),
                scope: t.scope,
                name,
            });
        }
        Ok(Auth {
            reads_need_token: !entries.is_empty(),
            entries,
        })
    }

    /// A fresh random write token (32 bytes from the OS, hex) for a loopback server started
    /// without configured tokens. Reads stay open; writes need this token.
    pub fn ephemeral() -> Result<(Auth, String), ConfigError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| ConfigError::Random(e.to_string()))?;
        let secret = hex::encode(bytes);
        Ok((
            Auth {
                entries: vec![Entry {
                    digest: digest(&secret),
                    scope: Scope::Write,
                    name: "ephemeral".into(),
                }],
                reads_need_token: false,
            },
            secret,
        ))
    }

    pub fn reads_need_token(&self) -> bool {
        self.reads_need_token
    }

    /// The scope of a presented token, or `None`. Compares with every token, always.
    pub fn scope_of(&self, presented: &str) -> Option<(Scope, &str)> {
        let d = digest(presented);
        let mut found: Option<(Scope, &str)> = None;
        for e in &self.entries {
            let eq: bool = e.digest.ct_eq(&d).into();
            if eq && found.is_none_or(|(s, _)| e.scope > s) {
                found = Some((e.scope, e.name.as_str()));
            }
        }
        found
    }

    /// Decides a request needing `needed`, given the `Authorization` header value.
    pub fn check(&self, authorization: Option<&str>, needed: Scope) -> Result<(), Denied> {
        let token = authorization.and_then(|h| {
            let (scheme, rest) = h.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim())
                .filter(|t| !t.is_empty())
        });
        match token {
            None => {
                if needed == Scope::Read && !self.reads_need_token {
                    Ok(())
                } else {
                    Err(Denied::Unauthenticated)
                }
            }
            Some(t) => match self.scope_of(t) {
                None => Err(Denied::Unauthenticated),
                Some((have, _)) if have >= needed => Ok(()),
                Some(_) => Err(Denied::Forbidden),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(scope: Scope, s: &str) -> TokenConfig {
        TokenConfig {
            name: String::new(),
            scope,
            token: Some(s.into()),
            token_file: None,
        }
    }

    #[test]
    fn scopes() {
        let a = Auth::from_config(&[
            tok(Scope::Read, "reader-0123456789"),
            tok(Scope::Write, "writer-0123456789"),
        ])
        .unwrap();
        assert!(a.reads_need_token());
        assert_eq!(a.check(None, Scope::Read), Err(Denied::Unauthenticated));
        assert_eq!(
            a.check(Some("Bearer reader-0123456789"), Scope::Read),
            Ok(())
        );
        assert_eq!(
            a.check(Some("Bearer reader-0123456789"), Scope::Write),
            Err(Denied::Forbidden)
        );
        assert_eq!(
            a.check(Some("bearer writer-0123456789"), Scope::Write),
            Ok(())
        );
        assert_eq!(
            a.check(Some("Bearer writer-012345678"), Scope::Read),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            a.check(Some("Basic writer-0123456789"), Scope::Read),
            Err(Denied::Unauthenticated)
        );
    }

    #[test]
    fn ephemeral_leaves_reads_open_and_guards_writes() {
        let (a, secret) = Auth::ephemeral().unwrap();
        assert_eq!(secret.len(), 64);
        assert_eq!(a.check(None, Scope::Read), Ok(()));
        assert_eq!(a.check(None, Scope::Write), Err(Denied::Unauthenticated));
        assert_eq!(
            a.check(Some(&format!("Bearer {secret}")), Scope::Write),
            Ok(())
        );
    }

    #[test]
    fn short_or_missing_tokens_are_config_errors() {
        assert!(matches!(
            Auth::from_config(&[tok(Scope::Read, "short")]),
            Err(ConfigError::TokenTooShort { len: 5, .. })
        ));
        let none = TokenConfig {
            name: "x".into(),
            scope: Scope::Read,
            token: None,
            token_file: None,
        };
        assert!(matches!(
            Auth::from_config(&[none]),
            Err(ConfigError::TokenMissing { .. })
        ));
    }
}
