//! Volumes: create, read, list, update, delete, attach, detach, orphan sweeps.

use super::*;

impl Host {
    fn find_volume<T>(&self, scope: &Scope, id: &str, f: impl FnOnce(&mut VolumeRecord) -> Result<T>) -> Result<T> {
        let mut volumes = lock(&self.volumes);
        let v = volumes
            .iter_mut()
            .find(|v| v.project_id == scope.project_id && v.id == id)
            .ok_or_else(|| Error::no_volume(id))?;
        f(v)
    }

    /// `POST /volumes`.
    pub async fn create_volume(self: &Arc<Self>, scope: &Scope, body: serde_json::Value) -> Result<Volume> {
        let spec: CreateVolume = parse_body(body)?;
        check_create_volume(&spec)?;
        let id = derive_id(&spec.name);
        let attach_to: Vec<NfObject> = spec.attached_objects.clone().unwrap_or_default();
        for o in &attach_to {
            if o.kind != "service" {
                return Err(invalid(
                    "attachedObjects",
                    format!("only services can have volumes here, not {:?}", o.kind),
                ));
            }
            self.find(scope, &o.id)?;
        }
        if attach_to.len() > 1 {
            return Err(invalid(
                "attachedObjects",
                "a volume can be attached to one service at a time here",
            ));
        }
        self.touch_project(&scope.project_id)?;
        let now = now_iso();
        let record = VolumeRecord {
            project_id: scope.project_id.clone(),
            id: id.clone(),
            spec,
            attached: Vec::new(),
            created_at: now.clone(),
            updated_at: now,
        };
        {
            let mut volumes = lock(&self.volumes);
            if volumes.iter().any(|v| v.project_id == scope.project_id && v.id == id) {
                return Err(Error::Conflict(format!(
                    "There is already a volume with the same derived identifier {id:?}"
                )));
            }
            // Reserve the id while the storage is made.
            volumes.push(record.clone());
        }
        let (backend, key, size) = (self.backend.clone(), record.key(), record.spec.spec.storage_size);
        let made = blocking(move || backend.create_volume(&key, size, UID_BASE).map_err(Error::from))
            .await
            .and_then(|()| self.persist_volume(&record));
        if let Err(e) = made {
            lock(&self.volumes).retain(|v| !(v.project_id == scope.project_id && v.id == id));
            return Err(e);
        }
        for o in attach_to {
            self.attach_volume(
                scope,
                &id,
                AttachRequest {
                    nf_object: Some(o),
                    owning_object: None,
                },
            )?;
        }
        self.get_volume(scope, &id)
    }

    /// Detaches volumes from services that no record has: what a `kill -9` left between a
    /// service's record and its volumes' (a create records the volumes' attachment first, a
    /// delete forgets the service first). Deleting the service would have detached them; until
    /// then they could be deleted by no one (refused while attached).
    pub(super) fn detach_from_missing_services(&self) {
        let services: std::collections::HashSet<(String, String)> = lock(&self.services)
            .iter()
            .map(|e| {
                let r = lock(&e.record);
                (r.project_id.clone(), r.id.clone())
            })
            .collect();
        for v in lock(&self.volumes).iter_mut() {
            let before = v.attached.len();
            v.attached
                .retain(|o| o.kind != "service" || services.contains(&(v.project_id.clone(), o.id.clone())));
            if v.attached.len() != before {
                tracing::warn!(volume = %v.id, "detaching a volume from a service that no longer exists");
                v.updated_at = now_iso();
                if let Err(e) = self.persist_volume(v) {
                    tracing::warn!(volume = %v.id, "could not save the detached volume: {e}");
                }
            }
        }
    }

    /// Deletes volume storage that no volume record owns: what a `kill -9` left between making
    /// a volume's storage and recording it, or between forgetting a volume and deleting its
    /// storage. Neither was acknowledged to anyone, so nothing anyone kept is lost.
    pub(super) async fn sweep_orphan_volumes(&self) {
        let backend = self.backend.clone();
        let on_disk = blocking(move || Ok(backend.volume_keys())).await.unwrap_or_default();
        let known: std::collections::HashSet<String> = lock(&self.volumes).iter().map(VolumeRecord::key).collect();
        for key in on_disk.into_iter().filter(|k| !known.contains(k)) {
            tracing::warn!(volume = %key, "deleting volume storage that no volume record owns");
            let backend = self.backend.clone();
            let k = key.clone();
            if let Err(e) = blocking(move || backend.delete_volume(&k).map_err(Error::from)).await {
                tracing::warn!(volume = %key, "could not delete orphan volume storage: {e}");
            }
        }
    }

    /// `GET /volumes/{id}`.
    pub fn get_volume(&self, scope: &Scope, id: &str) -> Result<Volume> {
        self.find_volume(scope, id, |v| Ok(v.to_volume()))
    }

    /// `GET /volumes`.
    pub fn list_volumes(&self, scope: &Scope) -> Vec<Volume> {
        lock(&self.volumes)
            .iter()
            .filter(|v| v.project_id == scope.project_id)
            .map(|v| v.to_volume())
            .collect()
    }

    /// `POST /volumes/{id}`: new mounts (applied at the next boot). Resizing is not offered.
    pub fn update_volume(&self, scope: &Scope, id: &str, body: serde_json::Value) -> Result<Volume> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Update {
            mounts: Option<Vec<VolumeMount>>,
            spec: Option<SizeOnly>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct SizeOnly {
            storage_size: Option<u64>,
        }
        let update: Update = parse_body(body)?;
        self.find_volume(scope, id, |v| {
            if let Some(size) = update.spec.and_then(|s| s.storage_size) {
                if size != v.spec.spec.storage_size {
                    return Err(invalid(
                        "spec.storageSize",
                        "resizing a volume is not supported by the local host",
                    ));
                }
            }
            if let Some(mounts) = update.mounts {
                let mut next = v.spec.clone();
                next.mounts = mounts;
                check_create_volume(&next)?;
                v.spec = next;
                v.updated_at = now_iso();
                self.persist_volume(v)?;
            }
            Ok(v.to_volume())
        })
    }

    /// `DELETE /volumes/{id}`: refused while attached.
    pub async fn delete_volume(&self, scope: &Scope, id: &str) -> Result<()> {
        let key = {
            let mut volumes = lock(&self.volumes);
            let pos = volumes
                .iter()
                .position(|v| v.project_id == scope.project_id && v.id == id)
                .ok_or_else(|| Error::no_volume(id))?;
            if let Some(service) = volumes[pos].service() {
                return Err(Error::Conflict(format!(
                    "Volume {id} is attached to service {service}; detach it or delete the service first"
                )));
            }
            let v = volumes.remove(pos);
            self.store.delete(Table::Volumes, &v.project_id, &v.id)?;
            v.key()
        };
        let backend = self.backend.clone();
        blocking(move || backend.delete_volume(&key).map_err(Error::from)).await
    }

    /// `POST /volumes/{id}/attach`: the service restarts to mount it.
    pub fn attach_volume(self: &Arc<Self>, scope: &Scope, id: &str, req: AttachRequest) -> Result<()> {
        let object = req
            .object()
            .cloned()
            .ok_or_else(|| invalid("nfObject", "is required"))?;
        if object.kind != "service" {
            return Err(invalid(
                "nfObject.type",
                format!("only services can have volumes here, not {:?}", object.kind),
            ));
        }
        let entry = self.find(scope, &object.id)?;
        let already = self.find_volume(scope, id, |v| match v.service() {
            Some(s) if s == object.id => Ok(true),
            Some(s) => Err(Error::Conflict(format!(
                "Volume {id} is already attached to service {s}"
            ))),
            None => {
                v.attached = vec![object.clone()];
                v.updated_at = now_iso();
                self.persist_volume(v)?;
                Ok(false)
            }
        })?;
        if !already {
            entry.restart.store(true, Ordering::SeqCst);
            self.mutate(&entry, RolloutReason::Deploying, |r| {
                r.volumes.push(id.to_string());
                Ok(())
            })?;
        }
        Ok(())
    }

    /// `POST /volumes/{id}/detach`: the service restarts without it.
    pub fn detach_volume(self: &Arc<Self>, scope: &Scope, id: &str, req: AttachRequest) -> Result<()> {
        let object = req
            .object()
            .cloned()
            .ok_or_else(|| invalid("nfObject", "is required"))?;
        let was_attached = self.find_volume(scope, id, |v| {
            let before = v.attached.len();
            v.attached.retain(|o| o.id != object.id);
            if v.attached.len() != before {
                v.updated_at = now_iso();
                self.persist_volume(v)?;
            }
            Ok(v.attached.len() != before)
        })?;
        if !was_attached {
            return Err(Error::Conflict(format!(
                "Volume {id} is not attached to {} {}",
                object.kind, object.id
            )));
        }
        if let Ok(entry) = self.find(scope, &object.id) {
            entry.restart.store(true, Ordering::SeqCst);
            self.mutate(&entry, RolloutReason::Deploying, |r| {
                r.volumes.retain(|v| v != id);
                Ok(())
            })?;
        }
        // Lazily: the sandbox that still has it lets go when it restarts.
        let key = format!("{}/{id}", scope.project_id);
        if let Err(e) = self.backend.detach_volume(&key) {
            tracing::warn!("unmounting volume {key}: {e}");
        }
        Ok(())
    }
}

/// The directory `sub` of a volume, made if missing. Sandbox code controls the volume's
/// contents, so a link anywhere on the way is refused: following one would bind a host path
/// into the sandbox.
pub(super) fn volume_subdir(root: &std::path::Path, sub: &str, owner: u32) -> std::io::Result<std::path::PathBuf> {
    let mut path = root.to_path_buf();
    for part in sub.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "'..' is not allowed",
            ));
        }
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_dir() => {}
            Ok(_) => {
                let msg = format!("{part} is a link or a file, not a directory");
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, msg));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&path)?;
                std::os::unix::fs::chown(&path, Some(owner), Some(owner))?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_subdirs_refuse_links() {
        let root = tempfile::tempdir().unwrap();
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        let made = volume_subdir(root.path(), "/a/b/", me).unwrap();
        assert!(made.is_dir() && made.ends_with("a/b"));
        std::os::unix::fs::symlink("/", root.path().join("link")).unwrap();
        assert!(volume_subdir(root.path(), "link/etc", me).is_err());
        assert!(volume_subdir(root.path(), "a/../..", me).is_err());
    }
}
