//! Signed commands: the commands topic is a trust boundary.
//!
//! The API signs every command it produces with HMAC-SHA256 under a key only the API and the
//! command worker hold; the worker applies only commands whose signature verifies and
//! dead-letters the rest (reason `unauthenticated`). Anyone else who can write to the topic
//! cannot forge a command (for example one with `fleet_scope ["*"]`).
//!
//! The signature travels in the Kafka header [`HEADER`] as `v1:<key id>:<hex MAC>`, over a
//! domain tag, the Kafka key (length-prefixed) and the exact message value (the
//! Confluent-framed Avro bytes), so neither the record nor the entity it is keyed by can be
//! changed without the key.
//!
//! Keys are configured as `command_signing.keys = "id:secret[,id:secret…]"` (environment
//! `ATLASMESH_COMMAND_SIGNING__KEYS`). The first key signs; every listed key verifies. To
//! rotate: (1) prepend the new key on the workers (they accept both), (2) prepend it on the
//! APIs (they sign with it), (3) once the old key's commands are consumed, remove it
//! everywhere.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The Kafka header carrying the signature.
pub const HEADER: &str = "atlasmesh-signature";
/// Shortest secret accepted (bytes): HMAC-SHA256 wants at least its output size.
pub const MIN_SECRET_LEN: usize = 32;
const DOMAIN: &[u8] = b"atlasmesh.command.v1\0";
const VERSION: &str = "v1";

type HmacSha256 = Hmac<Sha256>;

/// Why a command's signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("unsigned: no {HEADER} header")]
    Missing,
    #[error("malformed {HEADER} header (expected v1:<key id>:<hex MAC>)")]
    Malformed,
    #[error("signed with key {0:?}, which this worker does not hold")]
    UnknownKey(String),
    #[error("bad signature: the command was altered or signed with another secret")]
    Mismatch,
}

/// The configured signing keys: the first signs, all verify.
#[derive(Clone, Default)]
pub struct SigningKeys {
    keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SigningKeys")
            .field("ids", &ids)
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Parses `id:secret[,id:secret…]`. Ids are 1..=64 of `[A-Za-z0-9._-]` and unique;
    /// secrets at least [`MIN_SECRET_LEN`] bytes. An empty spec is no keys.
    pub fn parse(spec: &str) -> Result<SigningKeys, String> {
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for (i, entry) in spec.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let (id, secret) = entry
                .split_once(':')
                .ok_or_else(|| format!("key {} is not id:secret", i + 1))?;
            let valid_id = !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !valid_id {
                return Err(format!(
                    "key {}: id must be 1..=64 of A-Z a-z 0-9 . _ -",
                    i + 1
                ));
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(format!(
                    "key {id:?}: secret must be at least {MIN_SECRET_LEN} bytes"
                ));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(format!("key {id:?} is listed twice"));
            }
            keys.push((id.to_string(), secret.as_bytes().to_vec()));
        }
        Ok(SigningKeys { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The id of the key that signs.
    pub fn active_id(&self) -> Option<&str> {
        self.keys.first().map(|(id, _)| id.as_str())
    }

    fn mac(secret: &[u8], kafka_key: Option<&[u8]>, value: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(DOMAIN);
        match kafka_key {
            None => mac.update(&[0]),
            Some(k) => {
                mac.update(&[1]);
                mac.update(&(k.len() as u64).to_be_bytes());
                mac.update(k);
            }
        }
        mac.update(value);
        mac
    }

    /// The header value signing a message with `kafka_key` and `value`; `None` without keys.
    pub fn sign(&self, kafka_key: Option<&[u8]>, value: &[u8]) -> Option<String> {
        let (id, secret) = self.keys.first()?;
        let tag = Self::mac(secret, kafka_key, value).finalize().into_bytes();
        Some(format!("{VERSION}:{id}:{}", hex::encode(tag)))
    }

    /// Checks the signature header of a message (in constant time).
    pub fn verify(
        &self,
        header: Option<&[u8]>,
        kafka_key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let text = std::str::from_utf8(header).map_err(|_| SignatureError::Malformed)?;
        let mut parts = text.splitn(3, ':');
        let (Some(VERSION), Some(id), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SignatureError::Malformed);
        };
        let tag = hex::decode(tag).map_err(|_| SignatureError::Malformed)?;
        let (_, secret) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| SignatureError::UnknownKey(id.chars().take(64).collect()))?;
        Self::mac(secret, kafka_key, value)
            .verify_slice(&tag)
            .map_err(|_| SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a:0123456789abcdef0123456789abcdef";
    const B: &str = "b:fedcba9876543210fedcba9876543210";

    #[test]
    fn parse_checks_ids_and_secrets() {
        assert!(SigningKeys::parse("").unwrap().is_empty());
        let k = SigningKeys::parse(&format!("{B}, {A}")).unwrap();
        assert_eq!(k.active_id(), Some("b"));
        assert!(SigningKeys::parse("nocolon").is_err());
        assert!(SigningKeys::parse("a:short")
            .unwrap_err()
            .contains("at least 32"));
        assert!(SigningKeys::parse(&format!("{A},{A}"))
            .unwrap_err()
            .contains("twice"));
        assert!(SigningKeys::parse("a b:0123456789abcdef0123456789abcdef").is_err());
        // Secrets never show in Debug output.
        assert!(!format!("{k:?}").contains("0123"));
    }

    #[test]
    fn sign_then_verify_and_every_tamper_fails() {
        let keys = SigningKeys::parse(A).unwrap();
        let sig = keys.sign(Some(b"agg-1"), b"\0\0\0\0\x01value").unwrap();
        assert!(sig.starts_with("v1:a:"));
        let h = Some(sig.as_bytes());
        assert_eq!(keys.verify(h, Some(b"agg-1"), b"\0\0\0\0\x01value"), Ok(()));
        // Another value, another key, no key.
        assert_eq!(
            keys.verify(h, Some(b"agg-1"), b"\0\0\0\0\x01valuf"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            keys.verify(h, Some(b"agg-2"), b"\0\0\0\0\x01value"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            keys.verify(h, None, b"\0\0\0\0\x01value"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(keys.verify(None, None, b"x"), Err(SignatureError::Missing));
        for bad in ["", "v1:a", "v2:a:00", "v1:a:zz", "\u{0}"] {
            assert_eq!(
                keys.verify(Some(bad.as_bytes()), None, b"x"),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
        // Signed by a key the verifier does not hold, or the same id with another secret.
        let other = SigningKeys::parse(B).unwrap();
        let sig_b = other.sign(None, b"x").unwrap();
        assert_eq!(
            keys.verify(Some(sig_b.as_bytes()), None, b"x"),
            Err(SignatureError::UnknownKey("b".into()))
        );
        let forged = SigningKeys::parse("a:ffffffffffffffffffffffffffffffff").unwrap();
        let sig_f = forged.sign(None, b"x").unwrap();
        assert_eq!(
            keys.verify(Some(sig_f.as_bytes()), None, b"x"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn rotation_accepts_both_keys_while_signing_with_the_first() {
        let old = SigningKeys::parse(A).unwrap();
        let both = SigningKeys::parse(&format!("{B},{A}")).unwrap();
        let by_old = old.sign(None, b"x").unwrap();
        let by_new = both.sign(None, b"x").unwrap();
        assert!(by_new.starts_with("v1:b:"));
        assert_eq!(both.verify(Some(by_old.as_bytes()), None, b"x"), Ok(()));
        assert_eq!(both.verify(Some(by_new.as_bytes()), None, b"x"), Ok(()));
    }
}
