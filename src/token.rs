//! The bearer token of `watch`'s mutating API (`POST /v1/repair`): parsed once, compared in
//! constant time, never printed.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// The bearer token of the mutating API. Never printed: `Debug` hides it.
#[derive(Clone)]
pub struct ApiToken(Arc<str>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl std::str::FromStr for ApiToken {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("the API token is empty".into());
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the API token contains whitespace".into());
        }
        Ok(Self(t.into()))
    }
}

impl ApiToken {
    /// Read a token file (Docker/Compose secrets: `/run/secrets/NAME`); surrounding whitespace
    /// is ignored.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the API token file {}: {e}", path.display()))?;
        text.parse()
            .map_err(|e| format!("{e} (file {})", path.display()))
    }

    /// Constant-time comparison (of SHA-256 digests, so the length does not leak either).
    pub fn matches(&self, presented: &str) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(presented.as_bytes());
        let diff = a
            .iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(diff) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compare_and_redaction() {
        let t: ApiToken = " s3cret\n".parse().unwrap();
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches("s3cretx"));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "ApiToken(<redacted>)");
        assert!("".parse::<ApiToken>().is_err());
        assert!("a b".parse::<ApiToken>().is_err());
    }
}
