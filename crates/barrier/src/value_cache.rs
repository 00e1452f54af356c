//! The value cache: decrypted values (and keys known to be absent) kept in memory in
//! front of storage, so hot keys cost neither a storage read nor AES. It lives beside the
//! barrier because only the barrier sees plaintext; everything about what to keep, and
//! when a write makes an entry stale, is here.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::cache;
use crate::secret::SecretBytes;

/// A decrypted value and the ciphertext it came from (the version token for checks).
pub(crate) struct Cached {
    pub(crate) plaintext: SecretBytes,
    pub(crate) ciphertext: Vec<u8>,
    /// What a caller decoded from the plaintext ([`Barrier::get_decoded`]); dropped with
    /// the entry, so a write of the key ends it like it ends the plaintext.
    pub(crate) decoded: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
}

/// Entries kept by the value cache.
pub(crate) const CACHE_ENTRIES: usize = 16_384;

/// Bits of the value cache's doorkeeper ([`Seen`]): 128 KiB. It forgets everything after
/// a quarter of them were set (two per key: about 131,072 keys), so a key is admitted if it
/// is read again within about that many other first reads.
pub(crate) const SEEN_BITS: usize = 1 << 20;

/// Stripes of the value cache's write tracking: a read is kept unless a write of a key in
/// its stripe overlapped it, so with a few dozen writes in flight most reads are kept.
pub(crate) const STRIPES: usize = 1024;

/// Decrypted values, and absent keys (`None`: a read of a key that does not exist, such
/// as an unset config, costs no storage read either).
///
/// Writes of cached keys go through it in commit order ([`Storage::transact_then`]) where
/// the backend allows, so a key read, written and read again (a read-modify-write) stays in
/// memory; otherwise a write drops its keys.
///
/// A value read from storage is kept only
/// - for a key seen before ([`Seen`]: read or written since the doorkeeper last forgot).
///   Most keys read once are not read again soon (reads spread over a million secrets):
///   keeping each would cost an insert, an eviction and a copy per read, and push out the
///   entries in use. A key written and then read (a new token, then its first use) is
///   kept from that first read on;
/// - and if no write of a key in the same stripe was in flight when the read began or
///   began before the value was inserted (the check runs under the shard's lock, see
///   [`cache::Cache::insert_if`]), so it can never replace what a later write left.
pub(crate) struct ValueCache {
    pub(crate) entries: cache::Cache<String, Option<Arc<Cached>>>,
    pub(crate) stripes: Box<[Stripe]>,
    pub(crate) seen: Seen,
    /// False while sealed: nothing enters, so no plaintext outlives a seal.
    pub(crate) open: AtomicBool,
}

/// What a read took before it read storage ([`ValueCache::fence_hashed`]): its key's
/// stripe, the stripe's epoch then, and the key's hash.
pub(crate) struct Fence<'a> {
    pub(crate) stripe: &'a Stripe,
    pub(crate) epoch: u64,
    pub(crate) hash: u64,
}

/// What [`Barrier::key_fence`] took: the key's stripe (none without a value cache) and
/// its write count then.
pub struct KeyFence {
    pub(crate) stripe: Option<usize>,
    pub(crate) epoch: u64,
}

/// A key a transaction wrote, its new value (`None`: deleted) and whether it enters the
/// value cache even if not cached ([`BarrierOp::PutFresh`]).
pub(crate) type Written = (String, Option<Arc<Cached>>, bool);

/// Writes in flight on the keys of one stripe, and a count bumped as each begins and ends.
#[derive(Default)]
pub(crate) struct Stripe {
    pub(crate) epoch: AtomicU64,
    pub(crate) in_flight: AtomicU64,
}

impl Stripe {
    /// Its write count, if no write of its keys is in flight: a fence that a write
    /// beginning later moves (the count is read first, so a write that ends in between
    /// moves it too).
    pub(crate) fn quiet_epoch(&self) -> Option<u64> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        (self.in_flight.load(Ordering::SeqCst) == 0).then_some(epoch)
    }
}

/// The value cache's doorkeeper: two bits per key hash (a Bloom filter), set as the key is
/// read from storage or written, all cleared together once a quarter of them are set. A
/// false "seen" (both bits set by other keys) only admits a value early; with two bits it
/// happens to at most 1 key in 16 (the square of the share set), where one bit per key
/// admitted up to 1 in 4: on reads spread over a million secrets, each such admission cost
/// an insert and an eviction for an entry read again about never.
/// It holds no key and no value.
pub(crate) struct Seen {
    pub(crate) bits: Box<[AtomicU64]>,
    pub(crate) set: AtomicUsize,
}

impl Seen {
    pub(crate) fn new() -> Seen {
        Seen {
            bits: (0..SEEN_BITS / 64).map(|_| AtomicU64::new(0)).collect(),
            set: AtomicUsize::new(0),
        }
    }

    /// The bits of the key hashing to `h`: bits 20–39 and 40–59 of the hash (the value
    /// cache's stripes use its low bits).
    pub(crate) fn bits_of(h: u64) -> [usize; 2] {
        [
            (h >> 20) as usize % SEEN_BITS,
            (h >> 40) as usize % SEEN_BITS,
        ]
    }

    /// Mark the key hashing to `h`; whether it was marked already (both its bits set).
    pub(crate) fn mark(&self, h: u64) -> bool {
        let mut new = 0;
        for i in Self::bits_of(h) {
            let bit = 1u64 << (i % 64);
            if self.bits[i / 64].fetch_or(bit, Ordering::Relaxed) & bit == 0 {
                new += 1;
            }
        }
        if new == 0 {
            return true;
        }
        // The one caller whose bits reach the limit clears them all.
        let limit = SEEN_BITS / 4;
        let before = self.set.fetch_add(new, Ordering::Relaxed);
        if before < limit && before + new >= limit {
            for w in self.bits.iter() {
                w.store(0, Ordering::Relaxed);
            }
            self.set.store(0, Ordering::Relaxed);
        }
        false
    }
}

impl ValueCache {
    pub(crate) fn new() -> ValueCache {
        ValueCache {
            entries: cache::Cache::new(CACHE_ENTRIES),
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            seen: Seen::new(),
            open: AtomicBool::new(false),
        }
    }

    /// The key's hash for its stripe and its doorkeeper bits: the one its entry is filed
    /// under, so a read hashes its key once.
    pub(crate) fn hash(&self, key: &str) -> u64 {
        self.entries.hash(key)
    }

    pub(crate) fn stripe_index(h: u64) -> usize {
        h as usize % STRIPES
    }

    pub(crate) fn stripe_of(&self, h: u64) -> &Stripe {
        &self.stripes[Self::stripe_index(h)]
    }

    #[cfg(test)]
    pub(crate) fn stripe(&self, key: &str) -> &Stripe {
        self.stripe_of(self.hash(key))
    }

    /// `f` on each stripe `keys` fall in (on every stripe when `all`), repeats included.
    /// With `mark`, the keys are marked seen as well (they are being written).
    pub(crate) fn each_stripe(
        &self,
        keys: &[String],
        all: bool,
        mark: bool,
        f: impl FnMut(&Stripe),
    ) {
        if all {
            self.stripes.iter().for_each(f);
        } else {
            keys.iter()
                .map(|k| {
                    let h = self.hash(k);
                    if mark {
                        self.seen.mark(h);
                    }
                    self.stripe_of(h)
                })
                .for_each(f);
        }
    }

    /// [`ValueCache::fence_hashed`] of `key`.
    #[cfg(test)]
    pub(crate) fn fence(&self, key: &str) -> Option<Fence<'_>> {
        self.fence_hashed(self.hash(key))
    }

    /// Taken before a storage read of the key whose [`ValueCache::hash`] is `h`, marking it
    /// seen: `None` if it was not seen before (the read is not kept) or while a write of
    /// its stripe is in flight.
    pub(crate) fn fence_hashed(&self, h: u64) -> Option<Fence<'_>> {
        if !self.seen.mark(h) {
            return None;
        }
        let stripe = self.stripe_of(h);
        stripe.quiet_epoch().map(|epoch| Fence {
            stripe,
            epoch,
            hash: h,
        })
    }

    /// Keep what a read found, unless a write began since its `fence` or the barrier sealed.
    pub(crate) fn keep(&self, key: &str, v: Option<Arc<Cached>>, fence: Fence<'_>) {
        let Fence {
            stripe,
            epoch,
            hash,
        } = fence;
        self.entries.insert_if_hashed(hash, key.to_owned(), v, || {
            self.open.load(Ordering::SeqCst) && stripe.epoch.load(Ordering::SeqCst) == epoch
        });
    }

    /// What a committed transaction wrote, in commit order, for the keys cached now. A key
    /// not cached is not added: most keys written and not read before (a new token's
    /// indexes, a new secret) are not read soon either, and would only push out entries
    /// in use. A [`BarrierOp::PutFresh`] is added.
    pub(crate) fn write_through(&self, written: Vec<Written>) {
        let open = || self.open.load(Ordering::SeqCst);
        for (k, v, fresh) in written {
            if fresh {
                self.entries.insert_if(k, v, open);
            } else {
                self.entries.replace_if(k.as_str(), v, open);
            }
        }
    }
}
