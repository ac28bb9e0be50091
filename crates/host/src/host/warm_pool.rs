//! The pool of prepared sandboxes waiting for a service, and uid ranges.

use super::*;

/// What the pool prepares sandboxes for. A prepared sandbox's ephemeral filesystem has its size,
/// and its root is assembled from its image, so only a service with both can take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WarmShape {
    pub ephemeral_mb: u64,
    pub image: ImageRoot,
}

impl WarmShape {
    fn fits(&self, prepared: &Prepared) -> bool {
        prepared.spec.ephemeral_mb == self.ephemeral_mb && prepared.spec.image == self.image
    }
}

impl Host {
    /// A fresh uid range.
    pub(super) fn new_uid_base(&self) -> Result<u32> {
        let slot = self.store.next("uid_slot")?;
        slot.checked_mul(UID_RANGE)
            .and_then(|offset| UID_BASE.checked_add(offset))
            .filter(|base| base.checked_add(UID_RANGE).is_some())
            .ok_or_else(|| Error::Internal("uid ranges exhausted".into()))
    }

    /// Takes a prepared sandbox of the given shape from the pool.
    pub(super) fn take_warm(&self, shape: &WarmShape) -> Option<Prepared> {
        let mut pool = lock(&self.warm);
        let i = pool.iter().position(|p| shape.fits(p))?;
        Some(pool.swap_remove(i))
    }

    /// Keeps `config.warm_pool` sandboxes prepared ahead of time, with the ephemeral size and
    /// image of the latest create: storage made, uid range mapped, cgroup joined, root assembled,
    /// agent waiting. A create then only has to apply limits and finish the root, which is what
    /// makes a cold start fast. Entries of another shape are dropped as the shape changes.
    pub fn refill(self: &Arc<Self>) {
        if self.config.warm_pool == 0 || self.refilling.swap(true, Ordering::SeqCst) {
            return;
        }
        let host = self.clone();
        tokio::spawn(async move {
            // Refilling costs a few milliseconds of CPU (mkfs above all): let the create that
            // took a sandbox finish booting it first.
            tokio::time::sleep(REFILL_DELAY).await;
            loop {
                let shape = lock(&host.warm_shape).clone();
                let stale: Vec<Prepared> = {
                    let mut pool = lock(&host.warm);
                    let (keep, stale) = std::mem::take(&mut *pool).into_iter().partition(|p| shape.fits(p));
                    *pool = keep;
                    stale
                };
                if !stale.is_empty() {
                    let _ = tokio::task::spawn_blocking(move || drop(stale)).await;
                }
                if host.closing.load(Ordering::SeqCst) || lock(&host.warm).len() >= host.config.warm_pool {
                    break;
                }
                let uid_base = match host.new_uid_base() {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!("warm pool: {e}");
                        break;
                    }
                };
                let spec = PrepareSpec {
                    id: format!("warm-{:010x}", rand::random::<u64>() >> 24),
                    uid_base,
                    ephemeral_mb: shape.ephemeral_mb,
                    image: shape.image,
                };
                let backend = host.backend.clone();
                match blocking(move || backend.prepare(&spec).map_err(Error::from)).await {
                    Ok(p) => lock(&host.warm).push(p),
                    Err(e) => {
                        tracing::warn!("warm pool: {e}");
                        break;
                    }
                }
            }
            host.refilling.store(false, Ordering::SeqCst);
        });
    }
}
