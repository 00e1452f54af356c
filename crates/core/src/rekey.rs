//! `sys/rekey/*`: a new unseal key, split into new Shamir shares, for the same root key
//! (data stays as it is). As in OpenBao: `init` starts an attempt with the new share count
//! and threshold and a nonce; `update` takes the current shares one at a time with that
//! nonce; when the current threshold is met and they open the barrier, the root key is
//! re-wrapped under a fresh unseal key and the new shares are returned, once. The attempt
//! lives in this node's memory; a failed or cancelled one changes nothing.
//!
//! Refused with a reason: a static (auto-unseal) seal, whose key is in the server's config
//! (rotate it there), PGP-encrypted shares and their backup, and verification.

use base64::Engine;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use strongroom_barrier::seal::SealConfig;
use strongroom_barrier::UnsealKey;

use crate::error::{CoreError, Result};
use crate::route::Fields;
use crate::{util, Core, Response, Seal};

/// A rekey in progress.
pub(crate) struct Attempt {
    nonce: String,
    shares: u8,
    threshold: u8,
    submitted: Vec<Zeroizing<Vec<u8>>>,
}

fn static_refused() -> CoreError {
    CoreError::bad(
        "rekeying is for Shamir shares: this server unseals with a static key from its config; rotate that key there (previous_key_id / previous_key)",
    )
}

async fn current(core: &Core) -> Result<SealConfig> {
    if matches!(core.seal, Seal::Static(_)) {
        return Err(static_refused());
    }
    core.active()?;
    core.seal_config()
        .await?
        .ok_or_else(|| CoreError::bad("server is not yet initialized"))
}

fn status(a: Option<&Attempt>, required: u8) -> Value {
    json!({
        "started": a.is_some(),
        "nonce": a.map(|a| a.nonce.clone()).unwrap_or_default(),
        "t": a.map_or(0, |a| a.threshold),
        "n": a.map_or(0, |a| a.shares),
        "progress": a.map_or(0, |a| a.submitted.len()),
        "required": required,
        "pgp_fingerprints": Value::Null,
        "backup": false,
        "verification_required": false,
        "verification_nonce": "",
    })
}

/// `GET sys/rekey/init`.
pub(crate) async fn read(core: &Core) -> Result<Response> {
    let cfg = current(core).await?;
    let a = core.rekey.lock();
    Ok(Response::raw(200, status(a.as_ref(), cfg.secret_threshold)))
}

/// `PUT sys/rekey/init`.
pub(crate) async fn start(core: &Core, f: &Fields<'_>) -> Result<Response> {
    let cfg = current(core).await?;
    if f.str_list("pgp_keys").is_some_and(|k| !k.is_empty()) || f.bool("backup") == Some(true) {
        return Err(CoreError::bad(
            "PGP-encrypted key shares (and their backup) are not supported: rekey without pgp_keys",
        ));
    }
    if f.bool("require_verification") == Some(true) {
        return Err(CoreError::bad(
            "rekey verification is not supported: rekey without require_verification",
        ));
    }
    let shares = f.int("secret_shares").unwrap_or(0);
    let threshold = f.int("secret_threshold").unwrap_or(0);
    if !(1..=255).contains(&shares) || !(1..=255).contains(&threshold) {
        return Err(CoreError::bad(
            "secret_shares and secret_threshold must be between 1 and 255",
        ));
    }
    if threshold > shares {
        return Err(CoreError::bad(
            "invalid seal configuration: threshold may not be greater than number of shares",
        ));
    }
    if shares > 1 && threshold == 1 {
        return Err(CoreError::bad(
            "invalid seal configuration: threshold must be greater than one for multiple shares",
        ));
    }
    let mut a = core.rekey.lock();
    if a.is_some() {
        return Err(CoreError::bad("rekey already in progress"));
    }
    *a = Some(Attempt {
        nonce: util::uuid4(),
        shares: shares as u8,
        threshold: threshold as u8,
        submitted: Vec::new(),
    });
    Ok(Response::raw(200, status(a.as_ref(), cfg.secret_threshold)))
}

/// `DELETE sys/rekey/init`.
pub(crate) async fn cancel(core: &Core) -> Result<Response> {
    current(core).await?;
    core.rekey.lock().take();
    Ok(Response::none())
}

/// `PUT sys/rekey/update`: one current share; the new shares once the threshold is met.
pub(crate) async fn update(core: &Core, f: &Fields<'_>) -> Result<Response> {
    let cfg = current(core).await?;
    let key = f
        .str("key")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| CoreError::bad("'key' must be specified in request body as JSON"))?;
    let share = crate::sys::decode_share(&key)?;
    let nonce = f.str("nonce").unwrap_or_default();
    let ready = {
        let mut guard = core.rekey.lock();
        let a = guard
            .as_mut()
            .ok_or_else(|| CoreError::bad("no rekey in progress"))?;
        if nonce != a.nonce {
            return Err(CoreError::bad(format!(
                "incorrect nonce supplied; nonce for this rekey operation is {}",
                a.nonce
            )));
        }
        if a.submitted.iter().any(|s| s[..] == share[..]) {
            return Err(CoreError::bad(
                "given key has already been provided during this generation operation",
            ));
        }
        a.submitted.push(share);
        if a.submitted.len() < usize::from(cfg.secret_threshold) {
            let mut v = status(Some(a), cfg.secret_threshold);
            v["complete"] = json!(false);
            return Ok(Response::raw(200, v));
        }
        // Taken out: a failure below ends the attempt, as OpenBao's does.
        guard.take()
    };
    let Some(a) = ready else {
        return Err(CoreError::bad("no rekey in progress"));
    };
    let old = strongroom_barrier::shamir::combine(&a.submitted, cfg.secret_threshold)
        .map_err(|e| CoreError::bad(format!("failed to compute unseal key: {e}")))?;
    if !core
        .barrier
        .verify_unseal_key(&UnsealKey::from_bytes(old.to_vec()))
        .await?
    {
        return Err(CoreError::bad(
            "rekey failed: the key shares given do not open this server",
        ));
    }
    let new = UnsealKey::generate();
    let parts = strongroom_barrier::shamir::split(new.expose(), a.shares, a.threshold)
        .map_err(|e| CoreError::bad(e.to_string()))?;
    let new_cfg = SealConfig {
        kind: "shamir".into(),
        secret_shares: a.shares,
        secret_threshold: a.threshold,
    };
    let cfg_bytes = serde_json::to_vec(&new_cfg).map_err(|e| CoreError::Internal(e.to_string()))?;
    core.barrier
        .rekey_root_key(
            &new,
            vec![strongroom_storage::Op::put(
                strongroom_barrier::SEAL_CONFIG_PATH,
                cfg_bytes,
            )],
        )
        .await?;
    tracing::info!(
        shares = a.shares,
        threshold = a.threshold,
        "rekeyed: the unseal key and its shares are new"
    );
    let hex: Vec<String> = parts.iter().map(|p| hex::encode(&p[..])).collect();
    let b64: Vec<String> = parts
        .iter()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(&p[..]))
        .collect();
    Ok(Response::raw(
        200,
        json!({
            "complete": true,
            "nonce": a.nonce,
            "keys": hex,
            "keys_base64": b64,
            "pgp_fingerprints": Value::Null,
            "backup": false,
            "verification_required": false,
            "verification_nonce": "",
        }),
    ))
}

/// `GET sys/rekey/backup`: shares are only backed up when PGP-encrypted, which this server
/// does not do, so there are never any.
pub(crate) fn backup() -> Result<Response> {
    Err(CoreError::bad("no backed-up keys found"))
}
