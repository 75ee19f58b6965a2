//! Secrets at rest, the I/O half: the operator's keys from the environment or a file, a fresh
//! nonce for each seal, the start-up check, and `rolegate keys rotate`. The sealing itself is
//! `domain::secret`.
//!
//! Rotation: set `ROLEGATE_SECRET_KEY` to the new key and `ROLEGATE_SECRET_KEY_OLD` to the old
//! one (comma-separated if several), run `rolegate keys rotate` (every secret is sealed anew
//! under the new key, one transaction and one audit event per tenant), then drop
//! `ROLEGATE_SECRET_KEY_OLD`. The service accepts the old keys meanwhile, so it can keep
//! running through the rotation.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::KeyArgs;
use crate::domain::secret::{Keyring, Sealed, SecretError, SecretKey};
use crate::store::{Ctx, Store, StoreError};

/// The keys the configuration gives: `ROLEGATE_SECRET_KEY` or the file
/// `ROLEGATE_SECRET_KEY_FILE` (not both), and any `ROLEGATE_SECRET_KEY_OLD`.
pub fn keyring(args: &KeyArgs) -> Result<Keyring, String> {
    let current = match (&args.secret_key, &args.secret_key_file) {
        (Some(_), Some(_)) => {
            return Err(
                "give ROLEGATE_SECRET_KEY or ROLEGATE_SECRET_KEY_FILE, not both".to_owned(),
            );
        }
        (Some(key), None) => {
            Some(SecretKey::parse(key.expose()).map_err(|e| format!("ROLEGATE_SECRET_KEY: {e}"))?)
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "cannot read ROLEGATE_SECRET_KEY_FILE {}: {e}",
                    path.display()
                )
            })?;
            Some(SecretKey::parse(&text).map_err(|e| format!("ROLEGATE_SECRET_KEY_FILE: {e}"))?)
        }
        (None, None) => None,
    };
    let old = args
        .secret_key_old
        .iter()
        .map(|k| SecretKey::parse(k.expose()).map_err(|e| format!("ROLEGATE_SECRET_KEY_OLD: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if current.is_none() && !old.is_empty() {
        return Err("ROLEGATE_SECRET_KEY_OLD is given without ROLEGATE_SECRET_KEY".to_owned());
    }
    Ok(Keyring::new(current, old))
}

/// Refuses a keyring that cannot open what the database holds: sealed secrets and no key, or
/// secrets under a key that is given neither as the key nor as an old one.
pub async fn check_store(store: &dyn Store, keyring: &Keyring) -> Result<(), String> {
    let sealed = store.sealed_key_ids().await.map_err(|e| e.to_string())?;
    let total: i64 = sealed.iter().map(|(_, n)| n).sum();
    if total > 0 && keyring.is_empty() {
        return Err(format!(
            "the database holds {total} encrypted OIDC secret(s) (client secrets, signing \
             keys) and no key is given: set ROLEGATE_SECRET_KEY or ROLEGATE_SECRET_KEY_FILE to \
             the key they were sealed with"
        ));
    }
    let unknown: Vec<&str> = sealed
        .iter()
        .map(|(id, _)| id.as_str())
        .filter(|id| !keyring.knows(id))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "the database holds secrets sealed under key id(s) {} that neither \
             ROLEGATE_SECRET_KEY nor ROLEGATE_SECRET_KEY_OLD is",
            unknown.join(", ")
        ));
    }
    Ok(())
}

/// Seals `plain` for the row `id` under the current key, with a fresh random nonce.
pub fn seal(keyring: &Keyring, id: Uuid, plain: &[u8]) -> Result<Sealed, SecretError> {
    seal_for(keyring, id.as_bytes(), plain)
}

/// [`seal`], bound to any `context` (what the sealed bytes open for).
pub fn seal_for(keyring: &Keyring, context: &[u8], plain: &[u8]) -> Result<Sealed, SecretError> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce)
        .map_err(|e| SecretError::BadKey(format!("no randomness for a nonce: {e}")))?;
    keyring.seal(context, plain, nonce)
}

/// `rolegate keys rotate`: every secret not under the current key, opened with the old key and
/// sealed under the current one; a JSON summary.
pub async fn rotate(store: &dyn Store, keyring: &Keyring, ctx: &Ctx) -> Result<Value, String> {
    let Some(current) = keyring.current_id().map(str::to_owned) else {
        return Err(
            "ROLEGATE_SECRET_KEY (or ROLEGATE_SECRET_KEY_FILE) names the new key; \
                    ROLEGATE_SECRET_KEY_OLD the old one(s)"
                .to_owned(),
        );
    };
    let stale = store
        .sealed_not_under(&current)
        .await
        .map_err(|e| e.to_string())?;
    // Everything is opened before anything is written: a missing old key stops the run
    // before it changes a thing.
    let mut by_tenant: std::collections::BTreeMap<Uuid, Vec<(Uuid, Sealed)>> = Default::default();
    for s in &stale {
        let plain = keyring
            .open(s.id.as_bytes(), &s.sealed)
            .map_err(|e| e.to_string())?;
        let resealed = seal(keyring, s.id, &plain).map_err(|e| e.to_string())?;
        by_tenant
            .entry(s.tenant_id)
            .or_default()
            .push((s.id, resealed));
    }
    let tenants = by_tenant.len();
    for (tenant, resealed) in by_tenant {
        store
            .reseal(ctx, tenant, resealed)
            .await
            .map_err(|e: StoreError| e.to_string())?;
    }
    Ok(json!({
        "key_id": current,
        "resealed": stale.len(),
        "tenants": tenants,
    }))
}
