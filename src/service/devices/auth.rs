//! How an agent proves which workstation it is (AGT-02): the device id and a 256-bit secret
//! whose SHA-256 the appliance keeps, and how that secret is replaced without locking the
//! agent out.

use super::super::Ctx;
use super::super::audit::{Audit, Origin};
use crate::crypto::{self, ct_eq};
use crate::error::{Error, Result};
use crate::ids::DeviceId;
use crate::model::audit::{ActorKind, Event};
use crate::model::devices::{Device, DeviceKey};
use crate::store;

/// `authenticate` for the poll, from memory when the device is known (100,000 devices poll):
/// a retirement or a new secret drops the remembered one as it commits, and a mismatch or a
/// miss takes the database path, which audits a failure.
pub async fn authenticate_key(
    ctx: &Ctx,
    id: DeviceId,
    secret: &str,
    origin: &Origin,
) -> Result<DeviceKey> {
    let hash = crypto::sha256(secret.as_bytes());
    let hot = ctx.db.hot();
    if let Some(c) = hot.cred(id)
        && ct_eq(&c.secret_hash, &hash)
    {
        return Ok(DeviceKey {
            id,
            tenant_id: c.tenant,
        });
    }
    let generation = hot.generation();
    let d = authenticate(ctx, id, secret, origin).await?;
    let cred = store::hot::Cred {
        tenant: d.tenant_id,
        secret_hash: hash.to_vec(),
    };
    hot.remember_cred(id, cred, generation);
    Ok(d.key())
}

/// Device id + secret → the active device; anything else is 401 (a retired device's secret
/// stops working at once). The first call with a newly issued secret makes it the only one.
pub async fn authenticate(
    ctx: &Ctx,
    id: DeviceId,
    secret: &str,
    origin: &Origin,
) -> Result<Device> {
    let now = ctx.clock.now();
    let hash = crypto::sha256(secret.as_bytes());
    let found = ctx
        .db
        .read(move |r| store::devices::credentials(r, id))
        .await?;
    let o = origin.clone();
    match found {
        Some(c) if c.device.active && ct_eq(&c.secret_hash, &hash) => Ok(c.device),
        Some(c)
            if c.device.active
                && c.next_secret_hash
                    .as_deref()
                    .is_some_and(|n| ct_eq(n, &hash)) =>
        {
            let d = c.device;
            let tenant = d.tenant_id;
            ctx.db
                .write(move |tx| {
                    if store::devices::promote_next_secret(tx, id, &hash)? {
                        Audit::new(Event::DeviceSecretRotated, now)
                            .tenant(tenant)
                            .actor(ActorKind::Device, Some(id.to_string()))
                            .device(id)
                            .from(&o)
                            .target("device", id)
                            .append(tx)?;
                    }
                    Ok(())
                })
                .await?;
            Ok(d)
        }
        other => {
            let tenant = other.map(|c| c.device.tenant_id);
            ctx.db
                .write(move |tx| {
                    let mut a = Audit::new(Event::DeviceAuthFail, now)
                        .failure()
                        .actor(ActorKind::Device, Some(id.to_string()))
                        .from(&o);
                    if let Some(t) = tenant {
                        a = a.tenant(t).device(id);
                    }
                    a.append(tx).map(|_| ())
                })
                .await?;
            Err(Error::Unauthenticated)
        }
    }
}

/// A new secret for the calling device. Until the agent first calls with it, the current
/// secret keeps working (an answer lost on the way cannot lock the agent out); from then on
/// only the new one does.
pub async fn rotate_secret(ctx: &Ctx, d: &Device, origin: &Origin) -> Result<String> {
    let now = ctx.clock.now();
    let secret = crypto::random_token(32)?;
    let hash = crypto::sha256(secret.as_bytes());
    let (id, tenant, o) = (d.id, d.tenant_id, origin.clone());
    ctx.db
        .write(move |tx| {
            store::devices::set_next_secret(tx, id, &hash)?;
            Audit::new(Event::DeviceSecretIssued, now)
                .tenant(tenant)
                .actor(ActorKind::Device, Some(id.to_string()))
                .device(id)
                .from(&o)
                .target("device", id)
                .append(tx)
        })
        .await?;
    Ok(secret)
}
