//! The reconciler: moves each service's instance towards what is wanted.

use super::logs::collect_logs;
use super::volumes::volume_subdir;
use super::*;

impl Host {
    /// Wakes the reconciler of `entry`.
    pub fn poke(self: &Arc<Self>, entry: &Arc<ServiceEntry>) {
        let (host, entry) = (self.clone(), entry.clone());
        tokio::spawn(async move { host.reconcile(entry).await });
    }

    async fn reconcile(self: Arc<Self>, entry: Arc<ServiceEntry>) {
        let _guard = entry.reconcile.lock().await;
        loop {
            if entry.deleted.load(Ordering::SeqCst) {
                return;
            }
            let generation = entry.generation.load(Ordering::SeqCst);
            let wants = {
                let mut r = lock(&entry.record);
                if r.rollout.status == RolloutStatus::Pending {
                    r.rollout = lifecycle::started(&r.rollout, &now_iso());
                }
                lifecycle::wants_running(r.instances, r.paused)
            };
            let phase = lock(&entry.instance).as_ref().map(|i| i.phase);
            let restart = entry.restart.swap(false, Ordering::SeqCst);
            match lifecycle::decide(wants, phase, restart) {
                Action::Settle => {
                    self.settle(&entry, generation, phase);
                    return;
                }
                Action::Stop => self.stop_instance(&entry).await,
                Action::Restart => {
                    self.stop_instance(&entry).await;
                    self.boot_or_fail(&entry).await;
                }
                Action::Boot => {
                    let wait = lock(&entry.not_before).and_then(|t| t.checked_duration_since(Instant::now()));
                    if let Some(wait) = wait {
                        // Crash-loop backoff: come back later rather than hold the lock.
                        let (host, entry) = (self.clone(), entry.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(wait).await;
                            host.poke(&entry);
                        });
                        return;
                    }
                    if !self.boot_or_fail(&entry).await {
                        self.settle(&entry, generation, Some(Phase::Failed));
                        return;
                    }
                }
            }
        }
    }

    /// Records the end of a rollout, unless a newer change arrived meanwhile.
    fn settle(&self, entry: &ServiceEntry, generation: u64, phase: Option<Phase>) {
        let mut r = lock(&entry.record);
        if entry.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let now = now_iso();
        let wants = lifecycle::wants_running(r.instances, r.paused);
        r.rollout = if wants && phase == Some(Phase::Failed) {
            lifecycle::failed(&r.rollout, &now)
        } else {
            lifecycle::completed(&r.rollout, &now)
        };
        let _ = self.persist(&r);
    }

    /// Boots an instance; on failure marks it Failed, logs why, and schedules a retry.
    async fn boot_or_fail(self: &Arc<Self>, entry: &Arc<ServiceEntry>) -> bool {
        match self.boot(entry).await {
            Ok(()) => true,
            Err(e) => {
                let name = lock(&entry.instance)
                    .as_ref()
                    .map(|i| i.name.clone())
                    .unwrap_or_default();
                tracing::warn!(service = %entry.record().id, "boot failed: {e}");
                entry.push_log(&name, format!("flankbox: the sandbox failed to start: {e}"));
                entry.set_phase(&name, Phase::Failed);
                let crashes = entry.crashes.fetch_add(1, Ordering::Relaxed);
                *lock(&entry.not_before) = Some(Instant::now() + lifecycle::backoff(crashes));
                false
            }
        }
    }

    async fn boot(self: &Arc<Self>, entry: &Arc<ServiceEntry>) -> Result<()> {
        // Refused below, once the instance is recorded (its failure is then the instance's).
        let image = self.images.resolve(entry.record().image());
        let warm = self.assign_uid_range(entry, image.as_ref().ok())?;
        let record = entry.record();
        let name = instance_name(&record.id);
        let now = now_unix();
        *lock(&entry.instance) = Some(Instance {
            name: name.clone(),
            phase: Phase::Starting,
            created_at: now,
            updated_at: now,
            sandbox: None,
        });

        let mut volumes = Vec::new();
        let attached: Vec<(String, Vec<VolumeMount>)> = {
            let all = lock(&self.volumes);
            record
                .volumes
                .iter()
                .filter_map(|vid| all.iter().find(|v| v.project_id == record.project_id && &v.id == vid))
                .map(|v| (v.key(), v.spec.mounts.clone()))
                .collect()
        };
        for (key, mounts) in attached {
            let backend = self.backend.clone();
            let uid = record.uid_base;
            let dir = blocking(move || backend.attach_volume(&key, uid).map_err(Error::from)).await?;
            for m in mounts {
                let source = match m.volume_mount_path.as_deref() {
                    Some(sub) => volume_subdir(&dir, sub, record.uid_base)
                        .map_err(|e| Error::Unavailable(format!("volume sub-path {sub:?}: {e}")))?,
                    None => dir.clone(),
                };
                volumes.push((source, m.container_mount_path));
            }
        }
        let image = image.map_err(Error::Unavailable)?;
        let spec = LaunchSpec {
            hostname: name.chars().take(63).collect(),
            image: image.clone(),
            limits: record.limits(self.config.pids_max),
            shm_mb: record.shm_mb(),
            volumes,
        };
        let prepare = PrepareSpec {
            id: name.clone(),
            uid_base: record.uid_base,
            ephemeral_mb: record.ephemeral_mb(),
            image,
        };
        let backend = self.backend.clone();
        let started = Instant::now();
        let from_pool = warm.is_some();
        let (launched, plan) = blocking(move || {
            let prepared = match warm {
                Some(w) => w,
                None => backend.prepare(&prepare)?,
            };
            backend.finish(prepared, &spec).map_err(Error::from)
        })
        .await?;
        let launched_at = started.elapsed();
        let sandbox = Arc::new(Sandbox::start(launched, plan).await?);
        tracing::debug!(instance = %name, from_pool, launch = ?launched_at, ready = ?started.elapsed(), "sandbox booted");

        if let Some(argv) = record.main_command() {
            let process = sandbox
                .spawn(ProcessSpec {
                    argv,
                    env: sandbox_env(&record, &name),
                    cwd: "/root".into(),
                    uid: 0,
                    gid: 0,
                    tty: None,
                })
                .await
                .inspect_err(|_| {
                    let sandbox = sandbox.clone();
                    tokio::spawn(async move { sandbox.stop(Duration::ZERO).await });
                })?;
            for output in [Some(process.stdout), process.stderr].into_iter().flatten() {
                tokio::spawn(collect_logs(entry.clone(), name.clone(), output));
            }
            let (host, watched, instance) = (self.clone(), entry.clone(), name.clone());
            let exit = process.exit;
            tokio::spawn(async move {
                let status = exit.await.unwrap_or(crate::runtime::ExitStatus::Lost);
                host.instance_ended(
                    &watched,
                    &instance,
                    format!("main process ended: {status:?}"),
                    status == crate::runtime::ExitStatus::Code(0),
                )
                .await;
            });
        }
        {
            let (host, watched, instance, sb) = (self.clone(), entry.clone(), name.clone(), sandbox.clone());
            tokio::spawn(async move {
                sb.wait_gone().await;
                host.instance_ended(&watched, &instance, "sandbox exited".into(), false)
                    .await;
            });
        }
        if let Some(i) = lock(&entry.instance).as_mut().filter(|i| i.name == name) {
            i.sandbox = Some(sandbox);
            i.phase = Phase::Running;
            i.updated_at = now_unix();
        }
        Ok(())
    }

    /// Gives a service its uid range on its first boot. A service without volumes takes a
    /// prepared sandbox of its ephemeral size and image from the warm pool and adopts that
    /// sandbox's range. (A prepared agent's
    /// mount namespace is a copy of the host's from before any volume mounted since, so a
    /// service with volumes boots cold: its agent starts after them.)
    fn assign_uid_range(self: &Arc<Self>, entry: &ServiceEntry, image: Option<&ImageRoot>) -> Result<Option<Prepared>> {
        let (uid_base, has_volumes, shape) = {
            let r = lock(&entry.record);
            let shape = image.map(|image| WarmShape {
                ephemeral_mb: r.ephemeral_mb(),
                image: image.clone(),
            });
            (r.uid_base, !r.volumes.is_empty(), shape)
        };
        if uid_base != 0 {
            return Ok(None);
        }
        let warm = match shape {
            Some(shape) if !has_volumes => self.take_warm(&shape),
            _ => None,
        };
        let base = match &warm {
            Some(w) => w.spec.uid_base,
            None => self.new_uid_base()?,
        };
        let mut r = lock(&entry.record);
        r.uid_base = base;
        self.persist(&r)?;
        drop(r);
        if warm.is_some() {
            self.refill();
        }
        Ok(warm)
    }

    /// An instance ended on its own (main process exit, crash): stop what is left and let the
    /// reconciler restart it after a backoff.
    async fn instance_ended(self: &Arc<Self>, entry: &Arc<ServiceEntry>, name: &str, why: String, clean: bool) {
        let sandbox = {
            let mut instance = lock(&entry.instance);
            match instance.as_mut() {
                Some(i) if i.name == name && i.phase == Phase::Running => {
                    i.phase = if clean { Phase::Finished } else { Phase::Failed };
                    i.updated_at = now_unix();
                    i.sandbox.take()
                }
                _ => return,
            }
        };
        entry.push_log(name, format!("flankbox: {why}"));
        if let Some(sb) = sandbox {
            sb.stop(Duration::ZERO).await;
        }
        let crashes = entry.crashes.fetch_add(1, Ordering::Relaxed);
        *lock(&entry.not_before) = Some(Instant::now() + lifecycle::backoff(crashes));
        self.poke(entry);
    }

    pub(super) async fn stop_instance(&self, entry: &ServiceEntry) {
        let (sandbox, name) = {
            let mut instance = lock(&entry.instance);
            match instance.as_mut() {
                Some(i) => {
                    i.phase = Phase::Stopping;
                    (i.sandbox.take(), i.name.clone())
                }
                None => return,
            }
        };
        if let Some(sb) = sandbox {
            sb.stop(entry.record().grace()).await;
        }
        {
            let mut instance = lock(&entry.instance);
            if instance.as_ref().is_some_and(|i| i.name == name) {
                *instance = None;
            }
        }
        // Volumes stay mounted on the host between boots: the next boot reuses the mount (see
        // `loopdev::mount_image` for why an image is never mounted twice).
    }
}

/// A fresh instance name, shaped like Northflank's (`<service>-<hash>-<id>`).
fn instance_name(service_id: &str) -> String {
    let mut rng = rand::rng();
    let hex: String = (0..10)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect();
    let tail: String = (0..5)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect();
    format!("{service_id}-{hex}-{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_look_like_northflanks() {
        let n = instance_name("example-service");
        let parts: Vec<&str> = n.rsplitn(3, '-').collect();
        assert_eq!(parts[2], "example-service");
        assert_eq!(parts[1].len(), 10);
        assert_eq!(parts[0].len(), 5);
    }
}
