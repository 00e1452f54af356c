//! The encryption barrier: everything Strongroom persists passes through it.
//!
//! Three layers of keys, as in OpenBao:
//! - the **unseal key** (never stored): recombined from Shamir shares ([`shamir`]) or read
//!   from a static key file ([`seal::StaticSeal`]); it decrypts
//! - the **root key** (stored at `core/root-key`, wrapped by the unseal key), which decrypts
//! - the **keyring** (stored at `core/keyring`): AES-256-GCM data keys, one per *term*.
//!   New data is encrypted with the newest term; `rotate` adds a term; old terms stay to
//!   decrypt old data.
//!
//! Each value is encrypted with its storage path as AAD, so a ciphertext copied to another
//! key does not decrypt. Sealing drops (and zeroizes) every key held in memory.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use strongroom_barrier::{Barrier, UnsealKey};
//! use strongroom_storage::MemoryStorage;
//! let barrier = Barrier::new(Arc::new(MemoryStorage::new()));
//! let unseal = UnsealKey::generate();
//! barrier.initialize(&unseal).await.unwrap();
//! barrier.put("secret/a", b"hello").await.unwrap();
//! assert_eq!(barrier.get("secret/a").await.unwrap().unwrap(), b"hello");
//! barrier.seal();
//! assert!(barrier.get("secret/a").await.is_err());
//! # });
//! ```
//!
//! Architecture invariant: no plaintext leaves this crate toward storage except the seal
//! configuration (which holds no key). Key material lives in `Zeroizing` buffers or
//! aws-lc key objects, never in a `Debug`-printable type.

// Unsafe only in one test, which reads a wiped buffer's spare capacity.
#![cfg_attr(not(test), forbid(unsafe_code))]

pub mod cache;
mod value_cache;

pub use value_cache::KeyFence;
use value_cache::{Cached, ValueCache, Written};
pub mod seal;
pub mod secret;
pub mod shamir;

use secret::SecretBytes;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde::{Deserialize, Serialize};
use strongroom_storage::{Op, Storage, StorageError};
use zeroize::{Zeroize, Zeroizing};

/// Storage path of the root key, wrapped by the unseal key.
pub const ROOT_KEY_PATH: &str = "core/root-key";
/// Storage path of the keyring, encrypted by the root key.
pub const KEYRING_PATH: &str = "core/keyring";
/// Storage path of the seal configuration (no key material; stored in clear).
pub const SEAL_CONFIG_PATH: &str = "core/seal-config";

const CIPHERTEXT_VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    #[error("Vault is sealed")]
    Sealed,
    #[error("barrier is already initialized")]
    AlreadyInitialized,
    #[error("barrier is not initialized")]
    NotInitialized,
    #[error("invalid unseal key")]
    InvalidKey,
    #[error("failed to decrypt the value at {0:?}: wrong key or tampered data")]
    Decrypt(String),
    #[error(
        "value at {path:?} was encrypted with key term {term}, which this keyring does not have"
    )]
    UnknownTerm { path: String, term: u32 },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("corrupt barrier metadata: {0}")]
    Corrupt(String),
}

pub type Result<T, E = BarrierError> = std::result::Result<T, E>;

/// A 256-bit key that unwraps the root key. Zeroized on drop; no `Debug`.
pub struct UnsealKey(Zeroizing<Vec<u8>>);

impl UnsealKey {
    pub fn generate() -> Self {
        UnsealKey(random_key())
    }
    pub fn from_bytes(b: Vec<u8>) -> Self {
        UnsealKey(Zeroizing::new(b))
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// 32 random bytes from aws-lc's DRBG.
pub fn random_key() -> Zeroizing<Vec<u8>> {
    let mut k = Zeroizing::new(vec![0u8; 32]);
    fill_random(&mut k);
    k
}

pub fn fill_random(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("system RNG failed");
}

/// A fresh random AES-GCM nonce. Nonces are public, so each thread draws them from a
/// 1 KiB buffer of aws-lc DRBG output refilled when spent: one DRBG call (which re-keys
/// its AES on every call) per 85 nonces instead of one per seal. The bytes are the same
/// DRBG output a call per nonce would give, each used once.
fn random_nonce() -> [u8; NONCE_LEN] {
    use std::cell::RefCell;
    const POOL: usize = NONCE_LEN * 85;
    thread_local! {
        static NONCES: RefCell<([u8; POOL], usize)> = const { RefCell::new(([0u8; POOL], POOL)) };
    }
    NONCES.with(|p| {
        let (buf, used) = &mut *p.borrow_mut();
        if *used + NONCE_LEN > POOL {
            fill_random(buf);
            *used = 0;
        }
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(&buf[*used..*used + NONCE_LEN]);
        *used += NONCE_LEN;
        n
    })
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Seal with `key`, bind to `aad`. Output: version ‖ term ‖ nonce ‖ ciphertext ‖ tag.
fn seal_with(key: &LessSafeKey, term: u32, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = random_nonce();
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
    out.push(CIPHERTEXT_VERSION);
    out.extend_from_slice(&term.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    // Encrypted where it lies: no second buffer holding a copy of the plaintext.
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[HEADER_LEN..],
        )
        .expect("AES-GCM seal cannot fail for in-memory buffers");
    out.extend_from_slice(tag.as_ref());
    out
}

fn parse_header(ct: &[u8]) -> Option<(u32, [u8; NONCE_LEN], &[u8])> {
    if ct.len() < HEADER_LEN + 16 || ct[0] != CIPHERTEXT_VERSION {
        return None;
    }
    let term = u32::from_be_bytes(ct[1..5].try_into().ok()?);
    let nonce: [u8; NONCE_LEN] = ct[5..HEADER_LEN].try_into().ok()?;
    Some((term, nonce, &ct[HEADER_LEN..]))
}

fn open_with(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    body: &[u8],
) -> Option<Vec<u8>> {
    let mut buf = body.to_vec();
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .ok()?
        .len();
    buf.truncate(len);
    Some(buf)
}

fn aead_key(bytes: &[u8]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES key"))
}

/// Encrypt `plaintext` under a raw 32-byte key (used for key-wrapping outside the keyring).
pub fn wrap(key: &[u8], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_with(&aead_key(key), 0, aad, plaintext)
}

/// Inverse of [`wrap`]; `None` if the key or AAD is wrong or the data was altered.
pub fn unwrap(key: &[u8], aad: &[u8], ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if key.len() != 32 {
        return None;
    }
    let (_, nonce, body) = parse_header(ciphertext)?;
    open_with(&aead_key(key), nonce, aad, body).map(Zeroizing::new)
}

/// Persisted form of one keyring term.
#[derive(Serialize, Deserialize, Zeroize)]
#[zeroize(drop)]
struct StoredTerm {
    term: u32,
    key: Vec<u8>,
    install_time: i64,
}

/// NIST SP 800-38D caps AES-GCM with random nonces at 2^32 encryptions per key; like
/// OpenBao, rotate at 90% of that by default.
pub const DEFAULT_MAX_OPERATIONS: u64 = 3_865_470_566;

fn default_max_operations() -> u64 {
    DEFAULT_MAX_OPERATIONS
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RotationConfig {
    /// Rotate automatically after this many encryptions with one term (0 = never).
    #[serde(default = "default_max_operations")]
    pub max_operations: u64,
    /// Rotate automatically after this many seconds (0 = never).
    #[serde(default)]
    pub interval_secs: u64,
    #[serde(default)]
    pub disabled: bool,
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            max_operations: DEFAULT_MAX_OPERATIONS,
            interval_secs: 0,
            disabled: false,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    active: u32,
    terms: Vec<StoredTerm>,
    #[serde(default)]
    rotation: RotationConfig,
}

struct Term {
    term: u32,
    key: LessSafeKey,
    raw: Zeroizing<Vec<u8>>,
    install_time: i64,
    encryptions: AtomicU64,
}

/// The unsealed key state. Dropping it zeroizes the raw keys (aws-lc cleanses its own
/// key schedules on free).
struct Keyring {
    root_key: Zeroizing<Vec<u8>>,
    terms: Vec<Term>,
    rotation: RotationConfig,
}

impl Keyring {
    fn active(&self) -> &Term {
        self.terms.last().expect("keyring has at least one term")
    }
    fn term(&self, t: u32) -> Option<&Term> {
        // Terms are few (one per rotation) and sorted; a reverse scan finds recent ones first.
        self.terms.iter().rev().find(|x| x.term == t)
    }
    fn to_stored(&self) -> StoredKeyring {
        StoredKeyring {
            active: self.active().term,
            terms: self
                .terms
                .iter()
                .map(|t| StoredTerm {
                    term: t.term,
                    key: t.raw.to_vec(),
                    install_time: t.install_time,
                })
                .collect(),
            rotation: self.rotation.clone(),
        }
    }
    fn from_stored(root_key: Zeroizing<Vec<u8>>, s: &StoredKeyring) -> Result<Keyring> {
        let mut terms: Vec<Term> = s
            .terms
            .iter()
            .map(|t| {
                if t.key.len() != 32 {
                    return Err(BarrierError::Corrupt(format!(
                        "term {} key has wrong length",
                        t.term
                    )));
                }
                Ok(Term {
                    term: t.term,
                    key: aead_key(&t.key),
                    raw: Zeroizing::new(t.key.clone()),
                    install_time: t.install_time,
                    encryptions: AtomicU64::new(0),
                })
            })
            .collect::<Result<_>>()?;
        terms.sort_by_key(|t| t.term);
        if terms.is_empty() {
            return Err(BarrierError::Corrupt("keyring has no terms".into()));
        }
        Ok(Keyring {
            root_key,
            terms,
            rotation: s.rotation.clone(),
        })
    }
}

/// Status of the active key, for `sys/key-status`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: i64,
    pub encryptions: u64,
}

/// A step of a barrier transaction. `Check` compares the *stored ciphertext* (as returned
/// by [`Barrier::get_versioned`]), which changes on every write because nonces are random.
#[derive(Clone)]
pub enum BarrierOp {
    Put(String, Vec<u8>),
    /// A put of a value about to be read (a token a login issues, read by the job's next
    /// request): it enters the value cache as it commits, cached before or not, where a
    /// plain `Put` only replaces an entry already cached.
    PutFresh(String, Vec<u8>),
    Delete(String),
    DeletePrefix(String),
    Check(String, Option<Vec<u8>>),
}

/// What [`Barrier::read`] found: a cache entry (`None`: known absent), the entry it just
/// read from storage into the cache, or, with the cache off, what storage returned
/// (plaintext, ciphertext).
enum Read {
    Hit(Option<Arc<Cached>>),
    Fresh(Option<Arc<Cached>>),
    Miss(Option<(SecretBytes, Vec<u8>)>),
}

/// The encryption barrier over a storage backend.
pub struct Barrier {
    storage: Arc<dyn Storage>,
    keyring: ArcSwapOption<Keyring>,
    /// The value cache; `None` when another process may write the same storage (then
    /// every read goes to storage).
    cache: Option<Arc<ValueCache>>,
    /// Bumped before and after every write, for [`Barrier::write_fence`].
    write_epoch: AtomicU64,
    writes_in_flight: AtomicU64,
}

impl Barrier {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self::with_cache(storage, true)
    }

    /// `cache = false` for storage shared with other writers (several nodes on one
    /// database), where a local cache could serve stale values.
    pub fn with_cache(storage: Arc<dyn Storage>, cache: bool) -> Self {
        Barrier {
            storage,
            keyring: ArcSwapOption::empty(),
            cache: cache.then(|| Arc::new(ValueCache::new())),
            write_epoch: AtomicU64::new(0),
            writes_in_flight: AtomicU64::new(0),
        }
    }

    /// Before a write of `keys` (of every key when `all`, a prefix delete).
    fn begin_write(&self, keys: &[String], all: bool) {
        self.writes_in_flight.fetch_add(1, Ordering::SeqCst);
        self.write_epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(c) = &self.cache {
            c.each_stripe(keys, all, true, |s| {
                s.in_flight.fetch_add(1, Ordering::SeqCst);
                s.epoch.fetch_add(1, Ordering::SeqCst);
            });
        }
    }

    /// Taken before a read whose result a caller wants to cache: `None` while a write is
    /// in flight (do not cache). Cache what was read, then check
    /// [`Barrier::unwritten_since`] and drop the entry if a write began meanwhile; a
    /// writer drops its keys' entries after its write, so no stale entry survives.
    pub fn write_fence(&self) -> Option<u64> {
        let epoch = self.write_epoch.load(Ordering::SeqCst);
        (self.writes_in_flight.load(Ordering::SeqCst) == 0).then_some(epoch)
    }

    /// No write began since [`Barrier::write_fence`] returned `fence`.
    pub fn unwritten_since(&self, fence: u64) -> bool {
        self.write_epoch.load(Ordering::SeqCst) == fence
    }

    /// [`Barrier::write_fence`] for one key: `None` while a write of it may be in flight.
    /// With a value cache, only writes of keys in its stripe (1 in [`STRIPES`] of the
    /// others) count, so a read cached outside the barrier is kept under a steady load of
    /// other writes; without one, every write counts.
    pub fn key_fence(&self, key: &str) -> Option<KeyFence> {
        match &self.cache {
            Some(c) => {
                let stripe = ValueCache::stripe_index(c.hash(key));
                c.stripes[stripe].quiet_epoch().map(|epoch| KeyFence {
                    stripe: Some(stripe),
                    epoch,
                })
            }
            None => self.write_fence().map(|epoch| KeyFence {
                stripe: None,
                epoch,
            }),
        }
    }

    /// No write of the key began since [`Barrier::key_fence`] returned `fence`.
    pub fn key_unwritten_since(&self, fence: &KeyFence) -> bool {
        match (fence.stripe, &self.cache) {
            (Some(i), Some(c)) => c.stripes[i].epoch.load(Ordering::SeqCst) == fence.epoch,
            _ => self.unwritten_since(fence.epoch),
        }
    }

    /// After a write (successful or not): drop what it touched unless it was written
    /// through, then close the window.
    fn end_write(&self, keys: &[String], all: bool, written_through: bool) {
        if let Some(c) = &self.cache {
            if all {
                c.entries.clear();
            } else if !written_through {
                for k in keys {
                    c.entries.remove(k.as_str());
                }
            }
            c.each_stripe(keys, all, false, |s| {
                s.epoch.fetch_add(1, Ordering::SeqCst);
                s.in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        }
        self.write_epoch.fetch_add(1, Ordering::SeqCst);
        self.writes_in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// The backend beneath (for operations that copy raw, still-encrypted entries).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub async fn is_initialized(&self) -> Result<bool> {
        Ok(self.storage.get(ROOT_KEY_PATH).await?.is_some())
    }

    pub fn is_sealed(&self) -> bool {
        self.keyring.load().is_none()
    }

    /// Create the root key and the first keyring term, wrap the root key with `unseal`,
    /// and leave the barrier unsealed.
    pub async fn initialize(&self, unseal: &UnsealKey) -> Result<()> {
        if self.is_initialized().await? {
            return Err(BarrierError::AlreadyInitialized);
        }
        let root_key = random_key();
        let data_key = random_key();
        let keyring = Keyring {
            root_key: root_key.clone(),
            terms: vec![Term {
                term: 1,
                key: aead_key(&data_key),
                raw: data_key,
                install_time: now_secs(),
                encryptions: AtomicU64::new(0),
            }],
            rotation: RotationConfig::default(),
        };
        let stored =
            Zeroizing::new(serde_json::to_vec(&keyring.to_stored()).expect("serialize keyring"));
        let wrapped_root = wrap(unseal.expose(), ROOT_KEY_PATH.as_bytes(), &root_key);
        let wrapped_ring = wrap(&root_key, KEYRING_PATH.as_bytes(), &stored);
        self.storage
            .transact(vec![
                Op::Check(ROOT_KEY_PATH.into(), None),
                Op::Put(KEYRING_PATH.into(), wrapped_ring),
                Op::Put(ROOT_KEY_PATH.into(), wrapped_root),
            ])
            .await
            .map_err(|e| match e {
                StorageError::Conflict(_) => BarrierError::AlreadyInitialized,
                e => e.into(),
            })?;
        self.keyring.store(Some(Arc::new(keyring)));
        self.open_cache();
        Ok(())
    }

    /// Decrypt the root key with `unseal` and load the keyring.
    pub async fn unseal(&self, unseal: &UnsealKey) -> Result<()> {
        let wrapped = self
            .storage
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        let root_key = unwrap(unseal.expose(), ROOT_KEY_PATH.as_bytes(), &wrapped)
            .ok_or(BarrierError::InvalidKey)?;
        let ring = self.load_keyring(root_key).await?;
        self.keyring.store(Some(Arc::new(ring)));
        self.open_cache();
        Ok(())
    }

    fn open_cache(&self) {
        if let Some(c) = &self.cache {
            c.open.store(true, Ordering::SeqCst);
        }
    }

    /// Check that `unseal` opens the root key, without unsealing.
    pub async fn verify_unseal_key(&self, unseal: &UnsealKey) -> Result<bool> {
        let wrapped = self
            .storage
            .get(ROOT_KEY_PATH)
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        Ok(unwrap(unseal.expose(), ROOT_KEY_PATH.as_bytes(), &wrapped).is_some())
    }

    /// Re-wrap the root key under a new unseal key (seal migration, static key rotation).
    pub async fn rewrap_root_key(&self, new_unseal: &UnsealKey) -> Result<()> {
        let ring = self.keyring.load_full().ok_or(BarrierError::Sealed)?;
        let wrapped = wrap(
            new_unseal.expose(),
            ROOT_KEY_PATH.as_bytes(),
            &ring.root_key,
        );
        self.storage.put(ROOT_KEY_PATH, wrapped).await?;
        Ok(())
    }

    /// Re-wrap the root key under `new_unseal` and store `also` (the new seal
    /// configuration) in one transaction: a rekey either takes whole or not at all, so the
    /// root key is never wrapped under a key whose configuration is not stored.
    pub async fn rekey_root_key(
        &self,
        new_unseal: &UnsealKey,
        also: Vec<strongroom_storage::Op>,
    ) -> Result<()> {
        let ring = self.keyring.load_full().ok_or(BarrierError::Sealed)?;
        let wrapped = wrap(
            new_unseal.expose(),
            ROOT_KEY_PATH.as_bytes(),
            &ring.root_key,
        );
        let mut ops = vec![strongroom_storage::Op::put(ROOT_KEY_PATH, wrapped)];
        ops.extend(also);
        self.storage.transact(ops).await?;
        Ok(())
    }

    async fn load_keyring(&self, root_key: Zeroizing<Vec<u8>>) -> Result<Keyring> {
        let ct = self
            .storage
            .get(KEYRING_PATH)
            .await?
            .ok_or_else(|| BarrierError::Corrupt("keyring missing".into()))?;
        let plain =
            unwrap(&root_key, KEYRING_PATH.as_bytes(), &ct).ok_or(BarrierError::InvalidKey)?;
        let stored: StoredKeyring = serde_json::from_slice(&plain)
            .map_err(|e| BarrierError::Corrupt(format!("keyring: {e}")))?;
        Keyring::from_stored(root_key, &stored)
    }

    /// Forget every key and cached value. Reads and writes fail with `Sealed` until the
    /// next unseal.
    pub fn seal(&self) {
        self.keyring.store(None);
        if let Some(c) = &self.cache {
            c.open.store(false, Ordering::SeqCst);
            c.entries.clear();
        }
    }

    fn ring(&self) -> Result<Arc<Keyring>> {
        self.keyring.load_full().ok_or(BarrierError::Sealed)
    }

    fn encrypt(&self, ring: &Keyring, path: &str, plaintext: &[u8]) -> Vec<u8> {
        let t = ring.active();
        t.encryptions.fetch_add(1, Ordering::Relaxed);
        seal_with(&t.key, t.term, path.as_bytes(), plaintext)
    }

    fn decrypt(&self, ring: &Keyring, path: &str, ct: &[u8]) -> Result<Vec<u8>> {
        let (term, nonce, body) =
            parse_header(ct).ok_or_else(|| BarrierError::Decrypt(path.into()))?;
        let t = ring.term(term).ok_or_else(|| BarrierError::UnknownTerm {
            path: path.into(),
            term,
        })?;
        open_with(&t.key, nonce, path.as_bytes(), body)
            .ok_or_else(|| BarrierError::Decrypt(path.into()))
    }

    /// Encrypt a value that is not stored (a batch token): bound to `aad`, sealed with the
    /// active term, verifiable by any node holding the keyring.
    pub fn seal_blob(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let ring = self.ring()?;
        Ok(self.encrypt(&ring, aad, plaintext))
    }

    /// Inverse of [`Barrier::seal_blob`].
    pub fn open_blob(&self, aad: &str, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let ring = self.ring()?;
        self.decrypt(&ring, aad, ciphertext)
    }

    pub async fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        Ok(match self.read(path).await? {
            Read::Hit(c) | Read::Fresh(c) => c.map(|c| c.plaintext.to_vec()),
            // The caller's copy is its own to wipe, as a cached value's copy is.
            Read::Miss(v) => v.map(|(mut p, _)| std::mem::take(&mut *p)),
        })
    }

    /// `f` applied to the plaintext, without copying a cached value first.
    pub async fn get_with<R>(&self, path: &str, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        Ok(match self.read(path).await? {
            Read::Hit(c) | Read::Fresh(c) => c.map(|c| f(&c.plaintext)),
            Read::Miss(v) => v.map(|(p, _)| f(&p)),
        })
    }

    /// The value at `path` as `decode` parses it. The parsed form is kept with the cached
    /// value, so a hot key is parsed once rather than on every read, and it goes when the
    /// key is written. It is not zeroized: only for values that are not secret material
    /// (metadata, tables), never for secret data.
    pub async fn get_decoded<T: Send + Sync + 'static>(
        &self,
        path: &str,
        decode: impl FnOnce(&[u8]) -> std::result::Result<T, String>,
    ) -> Result<Option<Arc<T>>> {
        let corrupt = |e: String| BarrierError::Corrupt(format!("value at {path:?}: {e}"));
        // A value read just now keeps no parsed form (most keys read once are not read
        // again soon); a cached one keeps it from its second read on.
        let (cached, keep) = match self.read(path).await? {
            Read::Hit(None) | Read::Fresh(None) | Read::Miss(None) => return Ok(None),
            Read::Miss(Some((plain, _))) => {
                return decode(&plain).map(|t| Some(Arc::new(t))).map_err(corrupt)
            }
            Read::Fresh(Some(c)) => (c, false),
            Read::Hit(Some(c)) => (c, true),
        };
        if let Some(d) = cached.decoded.get() {
            if let Ok(t) = d.clone().downcast::<T>() {
                return Ok(Some(t));
            }
        }
        let t = Arc::new(decode(&cached.plaintext).map_err(corrupt)?);
        if keep {
            let _ = cached.decoded.set(t.clone());
        }
        Ok(Some(t))
    }

    /// The plaintext and the stored ciphertext (a version token for [`BarrierOp::Check`]).
    pub async fn get_versioned(&self, path: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(match self.read(path).await? {
            Read::Hit(c) | Read::Fresh(c) => {
                c.map(|c| (c.plaintext.to_vec(), c.ciphertext.clone()))
            }
            Read::Miss(v) => v.map(|(mut p, ct)| (std::mem::take(&mut *p), ct)),
        })
    }

    async fn read(&self, path: &str) -> Result<Read> {
        let ring = self.ring()?;
        let mut fence = None;
        if let Some(c) = &self.cache {
            let h = c.hash(path);
            if let Some(hit) = c.entries.get_hashed(h, path) {
                return Ok(Read::Hit(hit));
            }
            fence = c.fence_hashed(h);
        }
        let found = match self.storage.get(path).await? {
            None => None,
            Some(ct) => Some((SecretBytes::new(self.decrypt(&ring, path, &ct)?), ct)),
        };
        let (Some(c), Some(fence)) = (&self.cache, fence) else {
            return Ok(Read::Miss(found));
        };
        let cached = found.map(|(plain, ct)| {
            Arc::new(Cached {
                plaintext: plain,
                ciphertext: ct,
                decoded: std::sync::OnceLock::new(),
            })
        });
        c.keep(path, cached.clone(), fence);
        Ok(Read::Fresh(cached))
    }

    pub async fn put(&self, path: &str, plaintext: &[u8]) -> Result<()> {
        self.transact(vec![BarrierOp::Put(path.to_owned(), plaintext.to_vec())])
            .await
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        self.transact(vec![BarrierOp::Delete(path.to_owned())])
            .await
    }

    pub async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        self.ring()?;
        Ok(self.storage.list(prefix, after, limit).await?)
    }

    /// Decrypted entries under `prefix` in key order (for listings that need values).
    pub async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let ring = self.ring()?;
        self.storage
            .scan(prefix, after, limit)
            .await?
            .into_iter()
            .map(|(k, ct)| {
                let p = self.decrypt(&ring, &k, &ct)?;
                Ok((k, p))
            })
            .collect()
    }

    /// The storage op of a put of `k`, noting what it touches and, with a value cache, the
    /// entry it writes through (`fresh`: added even if `k` is not cached).
    fn put_op(
        &self,
        ring: &Keyring,
        k: String,
        v: Vec<u8>,
        fresh: bool,
        touched: &mut Vec<String>,
        written: &mut Vec<Written>,
    ) -> Op {
        let v = SecretBytes::new(v);
        let ct = self.encrypt(ring, &k, &v);
        touched.push(k.clone());
        if self.cache.is_some() {
            let c = Cached {
                plaintext: v,
                ciphertext: ct.clone(),
                decoded: std::sync::OnceLock::new(),
            };
            written.push((k.clone(), Some(Arc::new(c)), fresh));
        }
        Op::Put(k, ct)
    }

    /// Apply `ops` atomically. What it writes enters the value cache as it commits
    /// (a prefix delete empties the cache instead).
    pub async fn transact(&self, ops: Vec<BarrierOp>) -> Result<()> {
        let ring = self.ring()?;
        let mut touched: Vec<String> = Vec::new();
        let mut written: Vec<Written> = Vec::new();
        let mut prefix_deleted = false;
        let ops = ops
            .into_iter()
            .map(|op| match op {
                BarrierOp::Put(k, v) => self.put_op(&ring, k, v, false, &mut touched, &mut written),
                BarrierOp::PutFresh(k, v) => {
                    self.put_op(&ring, k, v, true, &mut touched, &mut written)
                }
                BarrierOp::Delete(k) => {
                    touched.push(k.clone());
                    if self.cache.is_some() {
                        written.push((k.clone(), None, false));
                    }
                    Op::Delete(k)
                }
                BarrierOp::DeletePrefix(k) => {
                    prefix_deleted = true;
                    Op::DeletePrefix(k)
                }
                BarrierOp::Check(k, v) => Op::Check(k, v),
            })
            .collect();
        self.begin_write(&touched, prefix_deleted);
        let through = Arc::new(AtomicBool::new(false));
        let r = match &self.cache {
            Some(c) if !prefix_deleted => {
                let (c, done) = (c.clone(), through.clone());
                let hook = Box::new(move || {
                    c.write_through(written);
                    done.store(true, Ordering::SeqCst);
                });
                self.storage.transact_then(ops, hook).await
            }
            _ => self.storage.transact(ops).await,
        };
        self.end_write(&touched, prefix_deleted, through.load(Ordering::SeqCst));
        r?;
        Ok(())
    }

    /// Add a new keyring term and make it active (`sys/rotate`).
    pub async fn rotate(&self) -> Result<KeyStatus> {
        let ring = self.ring()?;
        // Re-read the stored keyring so a rotation on another node is not lost.
        let current = self.load_keyring(ring.root_key.clone()).await?;
        let mut stored = current.to_stored();
        let next = stored.terms.iter().map(|t| t.term).max().unwrap_or(0) + 1;
        let key = random_key();
        stored.terms.push(StoredTerm {
            term: next,
            key: key.to_vec(),
            install_time: now_secs(),
        });
        stored.active = next;
        self.persist_keyring(&ring.root_key, &stored).await?;
        let new_ring = Keyring::from_stored(ring.root_key.clone(), &stored)?;
        let status = KeyStatus {
            term: next,
            install_time: new_ring.active().install_time,
            encryptions: 0,
        };
        self.keyring.store(Some(Arc::new(new_ring)));
        Ok(status)
    }

    async fn persist_keyring(&self, root_key: &[u8], stored: &StoredKeyring) -> Result<()> {
        let plain = Zeroizing::new(serde_json::to_vec(stored).expect("serialize keyring"));
        self.storage
            .put(
                KEYRING_PATH,
                wrap(root_key, KEYRING_PATH.as_bytes(), &plain),
            )
            .await?;
        Ok(())
    }

    /// Reload the keyring from storage (another node may have rotated it).
    pub async fn reload_keyring(&self) -> Result<()> {
        let ring = self.ring()?;
        let fresh = self.load_keyring(ring.root_key.clone()).await?;
        self.keyring.store(Some(Arc::new(fresh)));
        Ok(())
    }

    pub fn key_status(&self) -> Result<KeyStatus> {
        let ring = self.ring()?;
        let t = ring.active();
        Ok(KeyStatus {
            term: t.term,
            install_time: t.install_time,
            encryptions: t.encryptions.load(Ordering::Relaxed),
        })
    }

    pub fn rotation_config(&self) -> Result<RotationConfig> {
        Ok(self.ring()?.rotation.clone())
    }

    pub async fn set_rotation_config(&self, cfg: RotationConfig) -> Result<()> {
        let ring = self.ring()?;
        let current = self.load_keyring(ring.root_key.clone()).await?;
        let mut stored = current.to_stored();
        stored.rotation = cfg;
        self.persist_keyring(&ring.root_key, &stored).await?;
        self.keyring.store(Some(Arc::new(Keyring::from_stored(
            ring.root_key.clone(),
            &stored,
        )?)));
        Ok(())
    }

    /// Rotate if the rotation config says the active term is due. Returns whether it did.
    pub async fn rotate_if_due(&self) -> Result<bool> {
        let ring = self.ring()?;
        let cfg = &ring.rotation;
        if cfg.disabled {
            return Ok(false);
        }
        let t = ring.active();
        let by_ops =
            cfg.max_operations > 0 && t.encryptions.load(Ordering::Relaxed) >= cfg.max_operations;
        let by_time =
            cfg.interval_secs > 0 && now_secs() - t.install_time >= cfg.interval_secs as i64;
        if by_ops || by_time {
            self.rotate().await?;
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value_cache::{Seen, SEEN_BITS};
    use strongroom_storage::MemoryStorage;

    /// An unsealed barrier on memory storage, and its value cache.
    async fn cached_barrier() -> (Barrier, Arc<ValueCache>) {
        let b = Barrier::new(Arc::new(MemoryStorage::new()));
        b.initialize(&UnsealKey::generate()).await.unwrap();
        let c = b.cache.clone().unwrap();
        (b, c)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn nonces_do_not_repeat_across_pool_refills_and_threads() {
        let all: Vec<[u8; NONCE_LEN]> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..3)
                .map(|_| s.spawn(|| (0..1000).map(|_| random_nonce()).collect::<Vec<_>>()))
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 3000);
        assert!(!all.contains(&[0u8; NONCE_LEN]));
        // Two seals of the same plaintext differ, and both open.
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
        let (a, b) = (
            seal_with(&key, 1, b"p", b"x"),
            seal_with(&key, 1, b"p", b"x"),
        );
        assert_ne!(a, b);
        for ct in [a, b] {
            let (_, nonce, body) = parse_header(&ct).unwrap();
            let mut body = body.to_vec();
            let pt = key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(b"p"),
                    &mut body,
                )
                .unwrap();
            assert_eq!(pt, b"x");
        }
    }

    #[test]
    fn path_is_bound_as_aad() {
        rt().block_on(async {
            let store = Arc::new(MemoryStorage::new());
            let b = Barrier::new(store.clone());
            let k = UnsealKey::generate();
            b.initialize(&k).await.unwrap();
            b.put("a", b"secret-a").await.unwrap();
            let ct = store.get("a").await.unwrap().unwrap();
            assert!(
                !ct.windows(8).any(|w| w == b"secret-a"),
                "ciphertext must not contain plaintext"
            );
            store.put("b", ct).await.unwrap();
            assert!(matches!(b.get("b").await, Err(BarrierError::Decrypt(_))));
        });
    }

    #[test]
    fn rotate_keeps_old_data_readable_and_survives_unseal() {
        rt().block_on(async {
            let store = Arc::new(MemoryStorage::new());
            let b = Barrier::new(store.clone());
            let k = UnsealKey::generate();
            b.initialize(&k).await.unwrap();
            b.put("old", b"1").await.unwrap();
            assert_eq!(b.rotate().await.unwrap().term, 2);
            b.put("new", b"2").await.unwrap();
            assert_eq!(
                store.get("new").await.unwrap().unwrap()[1..5],
                2u32.to_be_bytes()
            );
            b.seal();
            assert!(matches!(b.get("old").await, Err(BarrierError::Sealed)));
            assert!(matches!(
                b.unseal(&UnsealKey::generate()).await,
                Err(BarrierError::InvalidKey)
            ));
            b.unseal(&k).await.unwrap();
            assert_eq!(b.get("old").await.unwrap().unwrap(), b"1");
            assert_eq!(b.get("new").await.unwrap().unwrap(), b"2");
            assert_eq!(b.key_status().unwrap().term, 2);
        });
    }

    #[test]
    fn tampering_is_detected() {
        rt().block_on(async {
            let store = Arc::new(MemoryStorage::new());
            let b = Barrier::new(store.clone());
            let key = UnsealKey::generate();
            b.initialize(&key).await.unwrap();
            b.put("a", b"value").await.unwrap();
            let mut ct = store.get("a").await.unwrap().unwrap();
            let last = ct.len() - 1;
            ct[last] ^= 1;
            store.put("a", ct).await.unwrap();
            // The value written is cached; after a seal it is read from storage again.
            b.seal();
            b.unseal(&key).await.unwrap();
            assert!(matches!(b.get("a").await, Err(BarrierError::Decrypt(_))));
        });
    }

    #[test]
    fn initialize_twice_is_refused() {
        rt().block_on(async {
            let b = Barrier::new(Arc::new(MemoryStorage::new()));
            b.initialize(&UnsealKey::generate()).await.unwrap();
            assert!(matches!(
                b.initialize(&UnsealKey::generate()).await,
                Err(BarrierError::AlreadyInitialized)
            ));
        });
    }

    #[test]
    fn cached_absence_ends_with_any_write_of_the_key() {
        rt().block_on(async {
            let b = Barrier::new(Arc::new(MemoryStorage::new()));
            b.initialize(&UnsealKey::generate()).await.unwrap();
            for k in ["p", "t", "d/x"] {
                assert!(b.get(k).await.unwrap().is_none());
                assert!(
                    b.get_versioned(k).await.unwrap().is_none(),
                    "cached absence"
                );
            }
            b.put("p", b"1").await.unwrap();
            b.transact(vec![
                BarrierOp::Check("t".into(), None),
                BarrierOp::Put("t".into(), b"2".to_vec()),
            ])
            .await
            .unwrap();
            b.transact(vec![BarrierOp::Put("d/x".into(), b"3".to_vec())])
                .await
                .unwrap();
            assert_eq!(b.get("p").await.unwrap().unwrap(), b"1");
            assert_eq!(b.get("t").await.unwrap().unwrap(), b"2");
            assert_eq!(b.get("d/x").await.unwrap().unwrap(), b"3");
            // And the other way: a deleted key reads as absent, also after a prefix delete.
            b.delete("p").await.unwrap();
            b.transact(vec![BarrierOp::DeletePrefix("d/".into())])
                .await
                .unwrap();
            assert!(b.get("p").await.unwrap().is_none());
            assert!(b.get("d/x").await.unwrap().is_none());
        });
    }

    #[test]
    fn a_decoded_value_is_parsed_once_and_ends_with_a_write() {
        rt().block_on(async {
            let b = Barrier::new(Arc::new(MemoryStorage::new()));
            let key = UnsealKey::generate();
            b.initialize(&key).await.unwrap();
            let parses = std::sync::atomic::AtomicUsize::new(0);
            let decode = |v: &[u8]| {
                parses.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                String::from_utf8(v.to_vec()).map_err(|e| e.to_string())
            };
            // Read twice, so its absence is cached (a first read is not kept).
            assert!(b.get_decoded("k", decode).await.unwrap().is_none());
            assert!(b.get_decoded("k", decode).await.unwrap().is_none());
            b.put("k", b"one").await.unwrap();
            // What a write put in the cache keeps its parsed form from the first read on.
            let first = b.get_decoded("k", decode).await.unwrap().unwrap();
            let again = b.get_decoded("k", decode).await.unwrap().unwrap();
            assert_eq!(*first, "one");
            assert!(Arc::ptr_eq(&first, &again), "kept with the cached value");
            assert_eq!(parses.load(std::sync::atomic::Ordering::SeqCst), 1);
            // A seal empties the cache. Then the first read comes from storage and keeps
            // nothing; the second parses the cached value once.
            b.seal();
            b.unseal(&key).await.unwrap();
            let first = b.get_decoded("k", decode).await.unwrap().unwrap();
            let again = b.get_decoded("k", decode).await.unwrap().unwrap();
            let third = b.get_decoded("k", decode).await.unwrap().unwrap();
            assert_eq!(*first, "one");
            assert!(Arc::ptr_eq(&again, &third), "kept with the cached value");
            assert_eq!(parses.load(std::sync::atomic::Ordering::SeqCst), 3);
            b.put("k", b"two").await.unwrap();
            assert_eq!(*b.get_decoded("k", decode).await.unwrap().unwrap(), "two");
            b.delete("k").await.unwrap();
            assert!(b.get_decoded("k", decode).await.unwrap().is_none());
            // A value the decoder rejects is an error naming the key, not a panic.
            b.put("bad", &[0xff, 0xfe]).await.unwrap();
            let e = b.get_decoded("bad", decode).await.unwrap_err().to_string();
            assert!(e.contains("\"bad\""), "{e}");
        });
    }

    #[test]
    fn a_write_of_a_cached_key_goes_through_as_it_commits_and_a_failed_one_changes_nothing() {
        rt().block_on(async {
            let (b, c) = cached_barrier().await;
            // A key no one read is not added by its write.
            b.put("new", b"1").await.unwrap();
            assert!(c.entries.get("new").is_none());
            // A key read twice (the first read is not kept; here: known absent) is
            // updated by its write.
            assert!(b.get("a").await.unwrap().is_none());
            assert!(b.get("a").await.unwrap().is_none());
            assert!(c.entries.get("a").is_some());
            b.put("a", b"1").await.unwrap();
            let entry = c.entries.get("a").expect("written through").unwrap();
            assert_eq!(&entry.plaintext[..], b"1");
            let (_, version) = b.get_versioned("a").await.unwrap().unwrap();
            assert_eq!(
                version, entry.ciphertext,
                "the stored ciphertext, for checks"
            );
            // A transaction whose check fails writes nothing, here or below.
            let stale = Some(b"not the version".to_vec());
            assert!(b
                .transact(vec![
                    BarrierOp::Check("a".into(), stale),
                    BarrierOp::Put("a".into(), b"2".to_vec()),
                ])
                .await
                .is_err());
            assert_eq!(b.get("a").await.unwrap().unwrap(), b"1");
            b.delete("a").await.unwrap();
            assert!(c
                .entries
                .get("a")
                .expect("absence written through")
                .is_none());
            assert!(b.get("a").await.unwrap().is_none());
        });
    }

    #[test]
    fn a_value_read_once_is_not_kept_and_one_read_again_or_written_is() {
        rt().block_on(async {
            let store = Arc::new(MemoryStorage::new());
            let b = Barrier::new(store.clone());
            let key = UnsealKey::generate();
            b.initialize(&key).await.unwrap();
            let c = b.cache.clone().unwrap();
            // Stored under another barrier: nothing here has seen these keys.
            let other = Barrier::new(store);
            other.unseal(&key).await.unwrap();
            for i in 0..100 {
                other.put(&format!("once/{i}"), b"v").await.unwrap();
            }
            other.put("twice", b"v").await.unwrap();
            for i in 0..100 {
                assert_eq!(b.get(&format!("once/{i}")).await.unwrap().unwrap(), b"v");
            }
            assert!((0..100).all(|i| c.entries.get(&format!("once/{i}")).is_none()));
            b.get("twice").await.unwrap();
            assert!(c.entries.get("twice").is_none(), "first read: not kept");
            b.get("twice").await.unwrap();
            assert!(c.entries.get("twice").is_some(), "second read: kept");
            // A key written here is kept from its first read.
            b.put("written", b"w").await.unwrap();
            assert!(c.entries.get("written").is_none(), "a write adds nothing");
            assert_eq!(b.get("written").await.unwrap().unwrap(), b"w");
            assert!(c.entries.get("written").is_some());
            // The doorkeeper: a key is seen once both its bits are set, and everything is
            // forgotten once a quarter of the bits are set.
            let seen = Seen::new();
            let hash = |a: u64, b: u64| (a << 20) | (b << 40);
            let half = SEEN_BITS as u64 / 2;
            assert_eq!(Seen::bits_of(hash(5, half + 5)), [5, half as usize + 5]);
            // Keys of two bits each, none shared, until two bits short of the limit.
            let keys = (SEEN_BITS / 4 / 2) as u64 - 1;
            assert!((0..keys).all(|i| !seen.mark(hash(i, half + i))));
            assert!(seen.mark(hash(0, half)), "remembered below the limit");
            // One bit of a seen key and one new bit: not seen (the new bit is now set).
            let last = SEEN_BITS as u64 - 1;
            assert!(!seen.mark(hash(0, last)), "half seen");
            assert!(seen.mark(hash(0, last)));
            assert!(seen.mark(hash(half, 1)), "both bits set by other keys");
            assert!(!seen.mark(hash(1, last - 1)), "the limiting mark");
            assert!(!seen.mark(hash(0, half)), "forgotten");
        });
    }

    #[test]
    fn a_read_is_kept_while_other_keys_are_written_but_not_while_its_own_is() {
        rt().block_on(async {
            let b = Barrier::new(Arc::new(MemoryStorage::new()));
            let key = UnsealKey::generate();
            b.initialize(&key).await.unwrap();
            let c = b.cache.clone().unwrap();
            let (x, y) = ("x".to_string(), "y".to_string());
            assert!(
                !std::ptr::eq(c.stripe(&x), c.stripe(&y)),
                "pick keys of two stripes"
            );
            b.put(&x, b"1").await.unwrap();
            b.put(&y, b"1").await.unwrap();
            b.seal();
            b.unseal(&key).await.unwrap();
            // A write of y in flight: a read of x is kept, a read of y is not.
            b.begin_write(std::slice::from_ref(&y), false);
            assert_eq!(b.get(&x).await.unwrap().unwrap(), b"1");
            assert_eq!(b.get(&y).await.unwrap().unwrap(), b"1");
            assert!(c.entries.get(&x).is_some());
            assert!(c.entries.get(&y).is_none());
            // A read that a write of its key overtook is not kept either.
            let fence = c.fence(&x).unwrap();
            c.entries.remove(&x);
            b.begin_write(std::slice::from_ref(&x), false);
            c.keep(&x, None, fence);
            assert!(c.entries.get(&x).is_none());
            b.end_write(std::slice::from_ref(&x), false, false);
            b.end_write(std::slice::from_ref(&y), false, false);
            assert_eq!(b.get(&y).await.unwrap().unwrap(), b"1");
            assert!(c.entries.get(&y).is_some());
            // A prefix delete in flight stops every read from being kept.
            c.entries.clear();
            b.begin_write(&[], true);
            assert!(c.fence(&x).is_none() && c.fence(&y).is_none());
            b.end_write(&[], true, false);
            assert!(c.fence(&x).is_some());
            // Nothing enters while sealed.
            b.seal();
            c.write_through(vec![(x.clone(), None, false)]);
            c.write_through(vec![(x.clone(), None, true)]);
            assert!(c.entries.get(&x).is_none());
        });
    }

    #[test]
    fn a_fresh_put_enters_the_cache_as_it_commits_and_a_failed_one_changes_nothing() {
        rt().block_on(async {
            let (b, c) = cached_barrier().await;
            b.transact(vec![BarrierOp::PutFresh("tok".into(), b"1".to_vec())])
                .await
                .unwrap();
            let entry = c.entries.get("tok").expect("added").unwrap();
            assert_eq!(&entry.plaintext[..], b"1");
            assert_eq!(b.get("tok").await.unwrap().unwrap(), b"1");
            // A later delete replaces it with "absent", as for any cached key.
            b.delete("tok").await.unwrap();
            assert!(c.entries.get("tok").expect("absence cached").is_none());
            // A transaction whose check fails adds nothing.
            assert!(b
                .transact(vec![
                    BarrierOp::Check("other".into(), Some(b"x".to_vec())),
                    BarrierOp::PutFresh("other".into(), b"2".to_vec()),
                ])
                .await
                .is_err());
            assert!(c.entries.get("other").is_none());
            assert!(b.get("other").await.unwrap().is_none());
        });
    }

    #[test]
    fn a_key_fence_sees_writes_of_its_key_only_and_every_write_without_a_cache() {
        rt().block_on(async {
            let (b, c) = cached_barrier().await;
            let (x, y) = ("x".to_string(), "y".to_string());
            assert!(!std::ptr::eq(c.stripe(&x), c.stripe(&y)));
            let f = b.key_fence(&x).unwrap();
            b.put(&y, b"1").await.unwrap();
            assert!(b.key_unwritten_since(&f), "another stripe's write");
            b.put(&x, b"1").await.unwrap();
            assert!(!b.key_unwritten_since(&f), "its own key's write");
            // While a write of the key is in flight there is no fence to take.
            b.begin_write(std::slice::from_ref(&x), false);
            assert!(b.key_fence(&x).is_none());
            b.end_write(std::slice::from_ref(&x), false, false);
            // Without a value cache (storage shared by several nodes) any write counts.
            let shared = Barrier::with_cache(Arc::new(MemoryStorage::new()), false);
            shared.initialize(&UnsealKey::generate()).await.unwrap();
            let f = shared.key_fence(&x).unwrap();
            shared.put(&y, b"1").await.unwrap();
            assert!(!shared.key_unwritten_since(&f));
        });
    }

    /// Concurrent compare-and-set increments of one key, with readers: no reader ever
    /// sees the count go back (a stale value kept by the cache would), and the cache and
    /// storage agree at the end.
    async fn counts_never_go_back(store: Arc<dyn Storage>) {
        let b = Arc::new(Barrier::new(store.clone()));
        let key = UnsealKey::generate();
        b.initialize(&key).await.unwrap();
        b.put("n", b"0").await.unwrap();
        let count = |v: &[u8]| std::str::from_utf8(v).unwrap().parse::<u64>().unwrap();
        let (writers, each) = (6, 60);
        let done = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..3 {
            let (b, done) = (b.clone(), done.clone());
            readers.push(tokio::spawn(async move {
                let mut last = 0;
                while !done.load(Ordering::SeqCst) {
                    let n = count(&b.get("n").await.unwrap().unwrap());
                    assert!(n >= last, "read {n} after {last}");
                    last = n;
                    // Writes of other keys, so reads race with writes of all kinds.
                    b.put(&format!("other/{n}"), b"x").await.unwrap();
                    tokio::task::yield_now().await;
                }
            }));
        }
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = 0;
                while ok < each {
                    let (v, version) = b.get_versioned("n").await.unwrap().unwrap();
                    let next = (count(&v) + 1).to_string().into_bytes();
                    match b
                        .transact(vec![
                            BarrierOp::Check("n".into(), Some(version)),
                            BarrierOp::Put("n".into(), next),
                        ])
                        .await
                    {
                        Ok(()) => ok += 1,
                        Err(BarrierError::Storage(StorageError::Conflict(_))) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        done.store(true, Ordering::SeqCst);
        for r in readers {
            r.await.unwrap();
        }
        let total = (writers * each) as u64;
        assert_eq!(count(&b.get("n").await.unwrap().unwrap()), total);
        b.seal();
        b.unseal(&key).await.unwrap();
        assert_eq!(count(&b.get("n").await.unwrap().unwrap()), total);
    }

    #[test]
    fn concurrent_writes_and_reads_never_see_a_count_go_back() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .unwrap();
        rt.block_on(counts_never_go_back(Arc::new(MemoryStorage::new())));
        let dir = std::env::temp_dir().join(format!(
            "strongroom-barrier-test-{}-{}",
            std::process::id(),
            now_secs()
        ));
        let store =
            strongroom_storage::SqliteStorage::open(dir.join("db"), Default::default()).unwrap();
        rt.block_on(counts_never_go_back(Arc::new(store)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
