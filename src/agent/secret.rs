//! Replacing the device secret (AGT-02). Every 30 days the agent asks the appliance for a new
//! one with its current one and writes it to its state before using it; the appliance keeps
//! accepting the old one until the first call with the new one. The old one is kept here
//! until such a call succeeds, so neither a lost answer nor an appliance restored from an
//! older copy locks the workstation out.

use std::path::Path;
use std::sync::Mutex;

use super::daemon::{Api, Shared, lock};
use crate::error::{Error, Result};
use crate::proto::SecretResponse;

/// How long a device secret is used before the agent replaces it.
pub const ROTATE_AFTER_MS: i64 = 30 * 24 * 3600 * 1000;

/// After a successful poll: the new secret is accepted (forget the old one), or the current
/// one is due for replacement (true: replaced, so the next poll should come at once and make
/// the appliance take it).
pub(super) async fn after_poll(api: &Api, shared: &Mutex<Shared>, dir: &Path) -> Result<bool> {
    let due = {
        let mut s = lock(shared)?;
        if s.state.previous_secret.take().is_some() {
            s.state.save(dir)?;
        }
        s.server_now() - s.state.secret_issued_at >= ROTATE_AFTER_MS
    };
    if !due {
        return Ok(false);
    }
    let r = api
        .post("/secret")
        .send()
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    if !r.status().is_success() {
        return Err(Error::Unavailable(format!(
            "the appliance answered {}",
            r.status()
        )));
    }
    let new: SecretResponse = r.json().await.map_err(Error::internal)?;
    let mut s = lock(shared)?;
    let old = std::mem::replace(&mut s.state.device_secret, new.device_secret.clone());
    s.state.previous_secret = Some(old);
    s.state.secret_issued_at = s.server_now();
    // On disk before it is used: a crash now still finds both secrets.
    s.state.save(dir)?;
    *api.secret
        .lock()
        .map_err(|_| Error::internal("secret lock"))? = new.device_secret;
    Ok(true)
}

/// The appliance refused the new secret: go back to the previous one (true), if there is one.
pub(super) fn fall_back(api: &Api, shared: &Mutex<Shared>, dir: &Path) -> Result<bool> {
    let mut s = lock(shared)?;
    let Some(old) = s.state.previous_secret.take() else {
        return Ok(false);
    };
    eprintln!(
        "hourglass agent: the appliance does not know the new device secret; using the previous one"
    );
    s.state.device_secret = old.clone();
    s.state.save(dir)?;
    *api.secret
        .lock()
        .map_err(|_| Error::internal("secret lock"))? = old;
    Ok(true)
}
