//! Secrets at rest and Keyway's own API keys.
//!
//! * [`Keyring`] does envelope encryption: every record gets a fresh random 256-bit data key
//!   (AES-256-GCM), the data key is wrapped by the master key, and the master key's id is stored
//!   beside it so that the master key can be rotated. The caller's associated data (record id and
//!   workspace) is bound into both layers, so a ciphertext copied to another row fails to open.
//! * [`generate_api_key`] / [`hash_api_key`]: random `kw-` keys and the SHA-256 digest the store
//!   keeps. Keys carry 238 bits of entropy, so a fast hash is enough (no password stretching).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::distributions::Alphanumeric;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("master key must be 32 bytes (base64 of 32 bytes), got {0} bytes")]
    BadMasterKeyLength(usize),
    #[error("master key is not valid base64")]
    BadMasterKeyEncoding,
    #[error("sealed secret is malformed")]
    Malformed,
    #[error("sealed secret was made with master key `{0}`, which this keyring does not hold")]
    UnknownKeyId(String),
    #[error("sealed secret failed authentication (wrong key, or moved to another record)")]
    Authentication,
}

const VERSION: &str = "v1";

/// A 256-bit master key and its short public id (a digest prefix, never the key).
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self::from_bytes(key)
    }

    pub fn from_bytes(key: Zeroizing<[u8; 32]>) -> Self {
        let digest = Sha256::digest(Sha256::digest(key.as_ref()));
        Self { id: hex::encode(&digest[..6]), key }
    }

    pub fn from_base64(s: &str) -> Result<Self, CryptoError> {
        let raw = Zeroizing::new(STANDARD.decode(s.trim()).map_err(|_| CryptoError::BadMasterKeyEncoding)?);
        let arr: [u8; 32] = raw.as_slice().try_into().map_err(|_| CryptoError::BadMasterKeyLength(raw.len()))?;
        Ok(Self::from_bytes(Zeroizing::new(arr)))
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.key.as_ref()))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.key.as_ref().into())
    }
}

/// The current master key plus retired ones that can still open old records.
#[derive(Debug)]
pub struct Keyring {
    current: MasterKey,
    retired: Vec<MasterKey>,
}

fn nonce() -> [u8; 12] {
    let mut n = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

impl Keyring {
    pub fn new(current: MasterKey) -> Self {
        Self { current, retired: Vec::new() }
    }

    pub fn with_retired(mut self, old: MasterKey) -> Self {
        self.retired.push(old);
        self
    }

    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    fn key(&self, id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current).chain(&self.retired).find(|k| k.id == id)
    }

    /// Seals `plaintext` bound to `aad`: `v1.<key id>.<wrapped data key>.<ciphertext>`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, CryptoError> {
        let mut dek = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(dek.as_mut());
        let data_cipher = Aes256Gcm::new(dek.as_ref().into());
        let n1 = nonce();
        let ct = data_cipher
            .encrypt(Nonce::from_slice(&n1), Payload { msg: plaintext, aad })
            .map_err(|_| CryptoError::Authentication)?;
        let wrap_aad = wrap_aad(self.current.id(), aad);
        let n2 = nonce();
        let wrapped = self
            .current
            .cipher()
            .encrypt(Nonce::from_slice(&n2), Payload { msg: dek.as_ref(), aad: &wrap_aad })
            .map_err(|_| CryptoError::Authentication)?;
        Ok(format!(
            "{VERSION}.{}.{}.{}",
            self.current.id(),
            URL_SAFE_NO_PAD.encode([n2.as_slice(), &wrapped].concat()),
            URL_SAFE_NO_PAD.encode([n1.as_slice(), &ct].concat())
        ))
    }

    /// Opens a sealed secret; fails unless `aad` is the one it was sealed with.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let mut parts = sealed.split('.');
        let (Some(VERSION), Some(kid), Some(wrapped), Some(ct), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Malformed);
        };
        let master = self.key(kid).ok_or_else(|| CryptoError::UnknownKeyId(kid.to_owned()))?;
        let wrapped = URL_SAFE_NO_PAD.decode(wrapped).map_err(|_| CryptoError::Malformed)?;
        let ct = URL_SAFE_NO_PAD.decode(ct).map_err(|_| CryptoError::Malformed)?;
        if wrapped.len() < 12 || ct.len() < 12 {
            return Err(CryptoError::Malformed);
        }
        let dek = Zeroizing::new(
            master
                .cipher()
                .decrypt(Nonce::from_slice(&wrapped[..12]), Payload { msg: &wrapped[12..], aad: &wrap_aad(kid, aad) })
                .map_err(|_| CryptoError::Authentication)?,
        );
        if dek.len() != 32 {
            return Err(CryptoError::Malformed);
        }
        let data_cipher = Aes256Gcm::new(dek.as_slice().into());
        data_cipher
            .decrypt(Nonce::from_slice(&ct[..12]), Payload { msg: &ct[12..], aad })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Authentication)
    }

    /// The master key id a sealed secret was made with.
    pub fn key_id_of(sealed: &str) -> Option<&str> {
        sealed.split('.').nth(1)
    }

    /// Re-wraps a sealed secret's data key under the current master key (rotation).
    pub fn reseal(&self, sealed: &str, aad: &[u8]) -> Result<String, CryptoError> {
        let plain = self.open(sealed, aad)?;
        self.seal(&plain, aad)
    }
}

fn wrap_aad(kid: &str, aad: &[u8]) -> Vec<u8> {
    [b"keyway-dek:", kid.as_bytes(), b":", aad].concat()
}

/// The prefix of management keys; inference keys are `kw-` followed directly by the random part.
pub const MANAGEMENT_PREFIX: &str = "kw-mgmt-";
pub const INFERENCE_PREFIX: &str = "kw-";

/// A fresh random key: `kw-<40 alphanumerics>` or `kw-mgmt-<40 alphanumerics>`.
pub fn generate_api_key(management: bool) -> Zeroizing<String> {
    let body: String = rand::rngs::OsRng.sample_iter(&Alphanumeric).take(40).map(char::from).collect();
    Zeroizing::new(format!("{}{body}", if management { MANAGEMENT_PREFIX } else { INFERENCE_PREFIX }))
}

/// The digest stored for a key (lowercase hex SHA-256); also the key's public `hash`.
pub fn hash_api_key(key: &str) -> String {
    // Written a byte at a time into a sized string: `hex::encode` collects an iterator of chars,
    // ~1.7k instructions of every authenticated request.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(2 * digest.len());
    for b in digest {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Constant-time comparison of two digests or tokens.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_key_hash_is_the_lowercase_hex_sha256() {
        for key in ["", "kw-abc", "kw-0123456789abcdef0123456789abcdef", "ünïcødé"] {
            assert_eq!(hash_api_key(key), hex::encode(Sha256::digest(key.as_bytes())), "{key}");
        }
        assert_eq!(hash_api_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn seal_open_round_trip() {
        let ring = Keyring::new(MasterKey::generate());
        let s = ring.seal(b"sk-secret", b"ws1:rec1").unwrap();
        assert!(!s.contains("sk-secret"));
        assert_eq!(ring.open(&s, b"ws1:rec1").unwrap().as_slice(), b"sk-secret");
    }

    #[test]
    fn ciphertext_is_bound_to_its_record() {
        let ring = Keyring::new(MasterKey::generate());
        let s = ring.seal(b"sk-secret", b"ws1:rec1").unwrap();
        assert_eq!(ring.open(&s, b"ws1:rec2"), Err(CryptoError::Authentication));
        assert_eq!(ring.open(&s, b"ws2:rec1"), Err(CryptoError::Authentication));
    }

    #[test]
    fn tampering_and_malformed_input_fail_cleanly() {
        let ring = Keyring::new(MasterKey::generate());
        let s = ring.seal(b"x", b"a").unwrap();
        let mut t = s.clone();
        t.pop();
        t.push(if s.ends_with('A') { 'B' } else { 'A' });
        assert!(ring.open(&t, b"a").is_err());
        assert_eq!(ring.open("garbage", b"a"), Err(CryptoError::Malformed));
        assert_eq!(ring.open("v1.k.!!.!!", b"a"), Err(CryptoError::UnknownKeyId("k".into())));
        let other = Keyring::new(MasterKey::generate());
        assert!(matches!(other.open(&s, b"a"), Err(CryptoError::UnknownKeyId(_))));
    }

    #[test]
    fn rotation_keeps_old_records_readable() {
        let old = MasterKey::generate();
        let old_b64 = old.to_base64();
        let ring = Keyring::new(old);
        let s = ring.seal(b"secret", b"r").unwrap();
        let rotated = Keyring::new(MasterKey::generate()).with_retired(MasterKey::from_base64(&old_b64).unwrap());
        assert_eq!(rotated.open(&s, b"r").unwrap().as_slice(), b"secret");
        let s2 = rotated.reseal(&s, b"r").unwrap();
        assert_eq!(Keyring::key_id_of(&s2), Some(rotated.current_id()));
        assert_ne!(Keyring::key_id_of(&s2), Keyring::key_id_of(&s));
    }

    #[test]
    fn master_key_parsing() {
        assert_eq!(MasterKey::from_base64("AAAA").unwrap_err(), CryptoError::BadMasterKeyLength(3));
        assert_eq!(MasterKey::from_base64("***").unwrap_err(), CryptoError::BadMasterKeyEncoding);
        let k = MasterKey::generate();
        assert_eq!(MasterKey::from_base64(&k.to_base64()).unwrap().id(), k.id());
        assert!(!format!("{k:?}").contains(k.to_base64().as_str()));
    }

    #[test]
    fn api_keys() {
        let k = generate_api_key(false);
        assert!(k.starts_with("kw-") && !k.starts_with("kw-mgmt-") && k.len() == 43);
        assert!(generate_api_key(true).starts_with("kw-mgmt-"));
        assert_eq!(hash_api_key("kw-x").len(), 64);
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"a", b"ab"));
    }
}
