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
#[derive(Clone)]
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
}

/// What wraps and unwraps the per-record data keys: the local [`Keyring`] today. An external KMS
/// (AWS KMS, Vault transit, ...) implements the same three calls, and nothing above it changes:
/// the store only ever sees `v1.<key id>.<wrapped data key>.<ciphertext>`.
pub trait KeyWrapper: Send + Sync {
    /// The key new data keys are wrapped with.
    fn current_key_id(&self) -> String;
    /// Wraps `dek` under the current key; returns that key's id and the wrapped bytes.
    fn wrap(&self, dek: &[u8], aad: &[u8]) -> Result<(String, Vec<u8>), CryptoError>;
    /// Unwraps a data key wrapped under `key_id`.
    fn unwrap(&self, key_id: &str, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
}

/// The master keys this process holds: the current one (new data keys are wrapped with it) and
/// retired ones that still open older records. Keys can be added and the current one switched
/// while the process serves (a rotation), so the set sits behind a lock; it is read only when a
/// secret is sealed or opened, never per request (decrypted credentials are cached).
#[derive(Debug)]
pub struct Keyring {
    keys: std::sync::RwLock<Keys>,
}

#[derive(Debug)]
struct Keys {
    current: String,
    all: Vec<MasterKey>,
}

fn nonce() -> [u8; 12] {
    let mut n = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

fn encrypt(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let n = nonce();
    let ct = Aes256Gcm::new(key.into()).encrypt(Nonce::from_slice(&n), Payload { msg: plaintext, aad }).map_err(|_| CryptoError::Authentication)?;
    Ok([n.as_slice(), &ct].concat())
}

fn decrypt(key: &[u8], sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < 12 || key.len() != 32 {
        return Err(CryptoError::Malformed);
    }
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(&sealed[..12]), Payload { msg: &sealed[12..], aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Authentication)
}

/// The four dot-separated parts of a sealed secret, decoded.
struct Envelope<'a> {
    kid: &'a str,
    wrapped: Vec<u8>,
    ciphertext: &'a str,
}

impl<'a> Envelope<'a> {
    fn parse(sealed: &'a str) -> Result<Self, CryptoError> {
        let mut parts = sealed.split('.');
        let (Some(VERSION), Some(kid), Some(wrapped), Some(ciphertext), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Malformed);
        };
        // Undecodable: empty, which fails as Malformed once the key id is known to be held, so
        // that an unknown key id is what gets reported first.
        let wrapped = URL_SAFE_NO_PAD.decode(wrapped).unwrap_or_default();
        Ok(Self { kid, wrapped, ciphertext })
    }
}

/// Seals `plaintext` bound to `aad` with a fresh data key wrapped by `wrapper`:
/// `v1.<key id>.<wrapped data key>.<ciphertext>`.
pub fn seal_with(wrapper: &dyn KeyWrapper, plaintext: &[u8], aad: &[u8]) -> Result<String, CryptoError> {
    let mut dek = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(dek.as_mut());
    let ct = encrypt(&dek, plaintext, aad)?;
    let (kid, wrapped) = wrapper.wrap(dek.as_ref(), aad)?;
    Ok(format!("{VERSION}.{kid}.{}.{}", URL_SAFE_NO_PAD.encode(wrapped), URL_SAFE_NO_PAD.encode(ct)))
}

/// Opens what [`seal_with`] made; fails unless `aad` is the one it was sealed with.
pub fn open_with(wrapper: &dyn KeyWrapper, sealed: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let env = Envelope::parse(sealed)?;
    let dek = wrapper.unwrap(env.kid, &env.wrapped, aad)?;
    let ct = URL_SAFE_NO_PAD.decode(env.ciphertext).map_err(|_| CryptoError::Malformed)?;
    decrypt(&dek, &ct, aad)
}

/// Re-wraps a sealed secret's data key under `wrapper`'s current key. The ciphertext itself is
/// kept byte for byte: only the 60-byte wrapped key changes, and the data key never leaves memory.
pub fn rewrap_with(wrapper: &dyn KeyWrapper, sealed: &str, aad: &[u8]) -> Result<String, CryptoError> {
    let env = Envelope::parse(sealed)?;
    // Authenticate the whole envelope before re-wrapping, so a damaged ciphertext is reported
    // now rather than carried forward under the new key.
    let dek = wrapper.unwrap(env.kid, &env.wrapped, aad)?;
    let ct = URL_SAFE_NO_PAD.decode(env.ciphertext).map_err(|_| CryptoError::Malformed)?;
    decrypt(&dek, &ct, aad)?;
    let (kid, wrapped) = wrapper.wrap(&dek, aad)?;
    Ok(format!("{VERSION}.{kid}.{}.{}", URL_SAFE_NO_PAD.encode(wrapped), env.ciphertext))
}

impl KeyWrapper for Keyring {
    fn current_key_id(&self) -> String {
        self.current_id()
    }

    fn wrap(&self, dek: &[u8], aad: &[u8]) -> Result<(String, Vec<u8>), CryptoError> {
        let keys = self.read();
        let current = keys.all.iter().find(|k| k.id == keys.current).ok_or_else(|| CryptoError::UnknownKeyId(keys.current.clone()))?;
        Ok((current.id.clone(), encrypt(&current.key, dek, &wrap_aad(&current.id, aad))?))
    }

    fn unwrap(&self, key_id: &str, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let keys = self.read();
        let master = keys.all.iter().find(|k| k.id == key_id).ok_or_else(|| CryptoError::UnknownKeyId(key_id.to_owned()))?;
        let dek = decrypt(master.key.as_ref(), wrapped, &wrap_aad(key_id, aad))?;
        if dek.len() != 32 {
            return Err(CryptoError::Malformed);
        }
        Ok(dek)
    }
}

impl Keyring {
    pub fn new(current: MasterKey) -> Self {
        Self { keys: std::sync::RwLock::new(Keys { current: current.id.clone(), all: vec![current] }) }
    }

    pub fn with_retired(self, old: MasterKey) -> Self {
        self.add(old);
        self
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        // A panic while holding the lock can't leave the key list half-changed (every write is
        // one push or one assignment), so a poisoned lock is still safe to read.
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Keys> {
        self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn current_id(&self) -> String {
        self.read().current.clone()
    }

    /// Whether a key with this id is held.
    pub fn holds(&self, id: &str) -> bool {
        self.read().all.iter().any(|k| k.id == id)
    }

    /// Ids of every key held.
    pub fn key_ids(&self) -> Vec<String> {
        self.read().all.iter().map(|k| k.id.clone()).collect()
    }

    /// Adds a key that can open records (no-op when it is already held).
    pub fn add(&self, key: MasterKey) {
        let mut keys = self.write();
        if !keys.all.iter().any(|k| k.id == key.id) {
            keys.all.push(key);
        }
    }

    /// Makes a held key the one new records are sealed with.
    pub fn set_current(&self, id: &str) -> Result<(), CryptoError> {
        let mut keys = self.write();
        if !keys.all.iter().any(|k| k.id == id) {
            return Err(CryptoError::UnknownKeyId(id.to_owned()));
        }
        keys.current = id.to_owned();
        Ok(())
    }

    /// A copy of the held key `id` (to seal another key under it).
    pub fn key(&self, id: &str) -> Option<MasterKey> {
        self.read().all.iter().find(|k| k.id == id).cloned()
    }

    /// Seals `plaintext` bound to `aad`: `v1.<key id>.<wrapped data key>.<ciphertext>`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, CryptoError> {
        seal_with(self, plaintext, aad)
    }

    /// Opens a sealed secret; fails unless `aad` is the one it was sealed with.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open_with(self, sealed, aad)
    }

    /// The master key id a sealed secret was made with.
    pub fn key_id_of(sealed: &str) -> Option<&str> {
        sealed.split('.').nth(1)
    }

    /// Re-wraps a sealed secret's data key under the current master key (rotation).
    pub fn reseal(&self, sealed: &str, aad: &[u8]) -> Result<String, CryptoError> {
        rewrap_with(self, sealed, aad)
    }
}

impl MasterKey {
    /// This key sealed under `root` (a keyring key persisted in the store), bound to its own id.
    pub fn seal_under(&self, root: &MasterKey) -> Result<String, CryptoError> {
        Keyring::new(root.clone()).seal(self.key.as_ref(), &kek_aad(&self.id))
    }

    /// Opens what [`MasterKey::seal_under`] made; `id` is the id the row claims, checked against
    /// the key it holds.
    pub fn open_under(root: &MasterKey, id: &str, sealed: &str) -> Result<MasterKey, CryptoError> {
        let raw = Keyring::new(root.clone()).open(sealed, &kek_aad(id))?;
        let arr: [u8; 32] = raw.as_slice().try_into().map_err(|_| CryptoError::BadMasterKeyLength(raw.len()))?;
        let key = MasterKey::from_bytes(Zeroizing::new(arr));
        if key.id != id {
            return Err(CryptoError::Authentication);
        }
        Ok(key)
    }
}

fn kek_aad(id: &str) -> Vec<u8> {
    [b"keyway:keyring:".as_slice(), id.as_bytes()].concat()
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
        assert_eq!(Keyring::key_id_of(&s2), Some(rotated.current_id().as_str()));
        // Only the wrapped data key changed: the ciphertext part is the same bytes.
        assert_eq!(s.rsplit('.').next(), s2.rsplit('.').next());
        assert_eq!(rotated.open(&s2, b"r").unwrap().as_slice(), b"secret");
        assert_ne!(Keyring::key_id_of(&s2), Keyring::key_id_of(&s));
    }

    #[test]
    fn a_keyring_key_sealed_under_the_root_opens_only_there_and_only_as_itself() {
        let root = MasterKey::generate();
        let kek = MasterKey::generate();
        let sealed = kek.seal_under(&root).unwrap();
        assert!(!sealed.contains(kek.to_base64().as_str()));
        assert_eq!(MasterKey::open_under(&root, kek.id(), &sealed).unwrap().id(), kek.id());
        assert!(MasterKey::open_under(&root, "other", &sealed).is_err());
        assert!(MasterKey::open_under(&MasterKey::generate(), kek.id(), &sealed).is_err());
    }

    #[test]
    fn keys_added_and_switched_while_in_use() {
        let ring = Keyring::new(MasterKey::generate());
        let old = ring.seal(b"a", b"r").unwrap();
        let next = MasterKey::generate();
        let next_id = next.id().to_owned();
        assert!(ring.set_current(&next_id).is_err(), "only a held key can become current");
        ring.add(next);
        ring.set_current(&next_id).unwrap();
        let new = ring.seal(b"b", b"r").unwrap();
        assert_eq!(Keyring::key_id_of(&new), Some(next_id.as_str()));
        assert_eq!(ring.open(&old, b"r").unwrap().as_slice(), b"a");
        assert_eq!(ring.open(&new, b"r").unwrap().as_slice(), b"b");
        // A rewrap of a tampered envelope fails instead of carrying the damage forward.
        let mut bad = old.clone();
        bad.pop();
        bad.push(if old.ends_with('A') { 'B' } else { 'A' });
        assert!(ring.reseal(&bad, b"r").is_err());
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
