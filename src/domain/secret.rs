//! Secrets at rest: OIDC client secrets and signing keys are sealed with AES-256-GCM under the
//! operator's key (`ROLEGATE_SECRET_KEY`), each beside the id of the key that sealed it, so a
//! rotation finds what an old key still seals and a start without the key can say why it stops.
//!
//! Pure: the nonce comes from the caller (the edge draws it from the OS), nothing here reads a
//! file or the environment.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

/// The length of a key, in bytes.
pub const KEY_LEN: usize = 32;

/// One key: 32 bytes, and an id derived from them (so the id cannot disagree with the key).
#[derive(Clone)]
pub struct SecretKey {
    id: String,
    bytes: [u8; KEY_LEN],
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "a secret key is base64 of exactly 32 random bytes (e.g. `openssl rand -base64 32`): {0}"
    )]
    BadKey(String),
    #[error(
        "a secret is sealed under key {0}, which is neither ROLEGATE_SECRET_KEY nor one of \
         ROLEGATE_SECRET_KEY_OLD"
    )]
    UnknownKey(String),
    #[error("a sealed secret did not open under key {0}: it was altered or belongs elsewhere")]
    Corrupt(String),
}

impl SecretKey {
    /// A key from its base64 text (standard alphabet, padding optional, whitespace trimmed).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|e| SecretError::BadKey(e.to_string()))?;
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| SecretError::BadKey(format!("got {} bytes", b.len())))?;
        Ok(SecretKey::from_bytes(bytes))
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        // Not the key, nor a plain hash of it: a labelled hash, so the id says nothing usable.
        let digest = Sha256::new()
            .chain_update(b"rolegate secret key id\0")
            .chain_update(bytes)
            .finalize();
        let id = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        SecretKey { id, bytes }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// 32 bytes for one purpose, named by `label`, derived from this key (HMAC-SHA256 as a
    /// PRF: the single-block HKDF-Expand). Nothing else derived or sealed with the key tells
    /// anything about them.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(ring::hmac::sign(&key, label).as_ref());
        out
    }

    fn aead(&self) -> Result<LessSafeKey, SecretError> {
        UnboundKey::new(&AES_256_GCM, &self.bytes)
            .map(LessSafeKey::new)
            .map_err(|_| SecretError::BadKey("not an AES-256 key".into()))
    }
}

/// A secret as stored: the id of the key that sealed it and `nonce || ciphertext || tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

/// The current key, which seals, and older ones, which still open during a rotation.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    current: Option<SecretKey>,
    old: Vec<SecretKey>,
}

impl Keyring {
    pub fn new(current: Option<SecretKey>, old: Vec<SecretKey>) -> Self {
        Keyring { current, old }
    }

    /// No key at all: nothing can be sealed or opened.
    pub fn is_empty(&self) -> bool {
        self.current.is_none()
    }

    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(SecretKey::id)
    }

    /// Every key: the current one first, then the old ones.
    pub fn keys(&self) -> impl Iterator<Item = &SecretKey> {
        self.current.iter().chain(self.old.iter())
    }

    /// Whether a secret sealed under `key_id` can be opened.
    pub fn knows(&self, key_id: &str) -> bool {
        self.key(key_id).is_some()
    }

    fn key(&self, key_id: &str) -> Option<&SecretKey> {
        self.current
            .iter()
            .chain(self.old.iter())
            .find(|k| k.id == key_id)
    }

    /// Seals `plain` under the current key. `context` is bound to the ciphertext (the row's
    /// id): the sealed bytes open only for it. `nonce` must never repeat under one key: the
    /// caller draws 12 random bytes for each seal.
    pub fn seal(
        &self,
        context: &[u8],
        plain: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Sealed, SecretError> {
        let key = self.current.as_ref().ok_or_else(|| {
            SecretError::BadKey("ROLEGATE_SECRET_KEY is not set: nothing can be sealed".into())
        })?;
        let mut in_out = plain.to_vec();
        key.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut in_out,
            )
            .map_err(|_| SecretError::Corrupt(key.id.clone()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&in_out);
        Ok(Sealed {
            key_id: key.id.clone(),
            bytes,
        })
    }

    /// Opens a sealed secret with whichever known key sealed it.
    pub fn open(&self, context: &[u8], sealed: &Sealed) -> Result<Vec<u8>, SecretError> {
        let key = self
            .key(&sealed.key_id)
            .ok_or_else(|| SecretError::UnknownKey(sealed.key_id.clone()))?;
        let corrupt = || SecretError::Corrupt(sealed.key_id.clone());
        if sealed.bytes.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, body) = sealed.bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut in_out = body.to_vec();
        let plain = key
            .aead()?
            .open_in_place(nonce, Aad::from(context), &mut in_out)
            .map_err(|_| corrupt())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_bytes([n; KEY_LEN])
    }

    #[test]
    fn a_key_is_base64_of_32_bytes_and_its_id_is_derived_from_it() {
        let text = STANDARD.encode([7u8; KEY_LEN]);
        let parsed = SecretKey::parse(&format!(" {text}\n")).unwrap();
        assert_eq!(parsed.id(), key(7).id());
        assert_ne!(key(7).id(), key(8).id());
        assert_eq!(parsed.id().len(), 12);
        assert!(SecretKey::parse(&STANDARD.encode([7u8; 16])).is_err());
        assert!(SecretKey::parse("not base64!").is_err());
        assert!(!format!("{parsed:?}").contains(&text));
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_their_context() {
        let ring = Keyring::new(Some(key(1)), vec![]);
        let sealed = ring
            .seal(b"row-1", b"client-secret", [9; NONCE_LEN])
            .unwrap();
        assert_eq!(sealed.key_id, key(1).id());
        assert!(!sealed.bytes.windows(13).any(|w| w == b"client-secret"));
        assert_eq!(ring.open(b"row-1", &sealed).unwrap(), b"client-secret");
        assert!(matches!(
            ring.open(b"row-2", &sealed),
            Err(SecretError::Corrupt(_))
        ));
        let mut altered = sealed.clone();
        let last = altered.bytes.len() - 1;
        altered.bytes[last] ^= 1;
        assert!(matches!(
            ring.open(b"row-1", &altered),
            Err(SecretError::Corrupt(_))
        ));
        let other = Keyring::new(Some(key(2)), vec![]);
        assert!(matches!(
            other.open(b"row-1", &sealed),
            Err(SecretError::UnknownKey(_))
        ));
    }

    #[test]
    fn an_old_key_still_opens_during_a_rotation_and_the_new_one_seals() {
        let before = Keyring::new(Some(key(1)), vec![]);
        let sealed = before.seal(b"r", b"s", [1; NONCE_LEN]).unwrap();
        let during = Keyring::new(Some(key(2)), vec![key(1)]);
        assert_eq!(during.open(b"r", &sealed).unwrap(), b"s");
        let resealed = during.seal(b"r", b"s", [2; NONCE_LEN]).unwrap();
        assert_eq!(resealed.key_id, key(2).id());
        assert!(during.knows(key(1).id()) && during.knows(key(2).id()));
        assert!(!Keyring::default().knows(key(1).id()));
        assert!(Keyring::default().seal(b"r", b"s", [0; NONCE_LEN]).is_err());
    }
}
