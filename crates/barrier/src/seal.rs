//! Seals: where the unseal key comes from.
//!
//! - **Shamir** (the default): the key is split at `sys/init` and recombined from shares
//!   typed in through `sys/unseal`; see [`crate::shamir`].
//! - **Static** (auto-unseal, as GitLab's OpenBao chart deploys it): the key is read from a
//!   file or environment variable at start. A previous key may be configured beside the
//!   current one so the key can be rotated: if the root key is still wrapped by the previous
//!   key, unsealing rewraps it under the current one.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Barrier, BarrierError, UnsealKey};

/// What is stored (in clear, no key material) at [`crate::SEAL_CONFIG_PATH`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SealConfig {
    /// `shamir` or `static`.
    #[serde(rename = "type")]
    pub kind: String,
    pub secret_shares: u8,
    pub secret_threshold: u8,
}

/// A static unseal key, with an optional previous key for rotation.
pub struct StaticSeal {
    pub current_key_id: String,
    pub current: UnsealKey,
    pub previous: Option<(String, UnsealKey)>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key from {0}: {1}")]
    Read(String, String),
    #[error("key in {0} must be 32 bytes: raw, 64 hex characters, or base64")]
    Length(String),
}

/// Parse key material: 32 raw bytes, or hex, or base64 (surrounding whitespace ignored).
pub fn parse_key_material(source: &str, raw: &[u8]) -> Result<UnsealKey, KeyFileError> {
    use base64::Engine;
    if raw.len() == 32 {
        return Ok(UnsealKey::from_bytes(raw.to_vec()));
    }
    let text = std::str::from_utf8(raw)
        .map_err(|_| KeyFileError::Length(source.into()))?
        .trim();
    if let Ok(b) = hex::decode(text) {
        if b.len() == 32 {
            return Ok(UnsealKey::from_bytes(b));
        }
    }
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        if let Ok(b) = engine.decode(text) {
            if b.len() == 32 {
                return Ok(UnsealKey::from_bytes(b));
            }
        }
    }
    Err(KeyFileError::Length(source.into()))
}

/// Load key material named as `file:///path`, `env://VAR`, or a bare path.
pub fn load_key(spec: &str) -> Result<UnsealKey, KeyFileError> {
    if let Some(var) = spec.strip_prefix("env://") {
        let v = Zeroizing::new(
            std::env::var(var).map_err(|e| KeyFileError::Read(spec.into(), e.to_string()))?,
        );
        return parse_key_material(spec, v.as_bytes());
    }
    let path = spec.strip_prefix("file://").unwrap_or(spec);
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|e| KeyFileError::Read(path.into(), e.to_string()))?,
    );
    parse_key_material(path, &bytes)
}

impl StaticSeal {
    /// Unseal `barrier`; if only the previous key opens the root key, rewrap it under the
    /// current key. Returns whether a rewrap happened.
    pub async fn unseal(&self, barrier: &Barrier) -> Result<bool, BarrierError> {
        match barrier.unseal(&self.current).await {
            Ok(()) => Ok(false),
            Err(BarrierError::InvalidKey) => {
                let Some((_, prev)) = &self.previous else {
                    return Err(BarrierError::InvalidKey);
                };
                barrier.unseal(prev).await?;
                barrier.rewrap_root_key(&self.current).await?;
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use strongroom_storage::MemoryStorage;

    #[test]
    fn previous_key_is_rewrapped() {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let store = Arc::new(MemoryStorage::new());
                let old = [1u8; 32];
                let new = [2u8; 32];
                let b = Barrier::new(store.clone());
                b.initialize(&UnsealKey::from_bytes(old.to_vec()))
                    .await
                    .unwrap();
                b.put("x", b"y").await.unwrap();
                b.seal();
                let seal = StaticSeal {
                    current_key_id: "k2".into(),
                    current: UnsealKey::from_bytes(new.to_vec()),
                    previous: Some(("k1".into(), UnsealKey::from_bytes(old.to_vec()))),
                };
                assert!(seal.unseal(&b).await.unwrap(), "rewrapped");
                b.seal();
                // now the new key alone works
                b.unseal(&UnsealKey::from_bytes(new.to_vec()))
                    .await
                    .unwrap();
                assert_eq!(b.get("x").await.unwrap().unwrap(), b"y");
            });
    }

    #[test]
    fn key_material_formats() {
        let k = [0xabu8; 32];
        assert_eq!(parse_key_material("t", &k).unwrap().expose(), &k);
        assert_eq!(
            parse_key_material("t", hex::encode(k).as_bytes())
                .unwrap()
                .expose(),
            &k
        );
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(k) + "\n";
        assert_eq!(
            parse_key_material("t", b64.as_bytes()).unwrap().expose(),
            &k
        );
        assert!(parse_key_material("t", b"short").is_err());
    }
}
