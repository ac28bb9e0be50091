//! Services: create, read, list, scale, pause, resume, restart, delete; ports; exec targets.

use super::*;

impl Host {
    /// `POST /services/deployment`.
    pub async fn create_service(self: &Arc<Self>, scope: &Scope, body: serde_json::Value) -> Result<Service> {
        let spec: CreateDeployment = parse_body(body)?;
        check_create_deployment(&spec)?;
        if let Some((gpu_type, count)) = requested_gpu(&spec) {
            self.check_gpu(&gpu_type, count)?;
        }
        let image = self
            .images
            .resolve(spec.deployment.external.as_ref().map_or("", |e| e.image_path.as_str()))
            .map_err(Error::Unavailable)?;
        if spec.deployment.instances > MAX_INSTANCES {
            return Err(invalid(
                "deployment.instances",
                format!(
                    "this host runs at most {MAX_INSTANCES} instance per service (a sandbox); got {}",
                    spec.deployment.instances
                ),
            ));
        }
        let id = derive_id(&spec.name);
        let volume_ids = spec
            .create_options
            .as_ref()
            .and_then(|o| o.volumes_to_attach.clone())
            .unwrap_or_default();
        self.touch_project(&scope.project_id)?;
        let with_volumes = !volume_ids.is_empty();

        let now = now_iso();
        let ephemeral_mb = spec
            .deployment
            .storage
            .as_ref()
            .and_then(|s| s.ephemeral_storage)
            .map_or(crate::model::DEFAULT_EPHEMERAL_MB, |e| e.storage_size);
        let ports = spec
            .ports
            .as_deref()
            .map(|p| self.port_records(&id, &scope.project_id, p, &[]))
            .unwrap_or_default();
        let instances = spec.deployment.instances;
        let mut record = ServiceRecord {
            project_id: scope.project_id.clone(),
            team_id: scope.team_id.clone(),
            id: id.clone(),
            spec,
            instances,
            paused: false,
            resume_instances: instances.max(1),
            ports,
            volumes: Vec::new(),
            uid_base: 0,
            rollout: lifecycle::accepted(RolloutReason::Deploying, &now),
            created_at: now.clone(),
            updated_at: now,
        };
        // The duplicate check and the insert happen under one lock, so two creates with the
        // same name cannot both succeed.
        let entry = {
            let mut services = lock(&self.services);
            if services.iter().any(|e| {
                let r = lock(&e.record);
                r.project_id == scope.project_id && r.id == id
            }) {
                return Err(Error::Conflict(format!(
                    "There is already a service with the same derived identifier {id:?}"
                )));
            }
            {
                let mut volumes = lock(&self.volumes);
                for vid in &volume_ids {
                    let v = volumes
                        .iter()
                        .find(|v| v.project_id == scope.project_id && &v.id == vid)
                        .ok_or_else(|| {
                            invalid(
                                "createOptions.volumesToAttach",
                                format!("volume {vid:?} does not exist"),
                            )
                        })?;
                    if let Some(other) = v.service() {
                        return Err(Error::Conflict(format!(
                            "Volume {vid} is already attached to service {other}"
                        )));
                    }
                }
                for v in volumes
                    .iter_mut()
                    .filter(|v| v.project_id == scope.project_id && volume_ids.contains(&v.id))
                {
                    v.attached = vec![NfObject {
                        id: id.clone(),
                        kind: "service".into(),
                    }];
                    v.updated_at = record.created_at.clone();
                    self.persist_volume(v)?;
                }
            }
            record.volumes = volume_ids;
            self.persist(&record)?;
            let entry = ServiceEntry::new(record);
            services.push(entry.clone());
            entry
        };
        self.poke(&entry);
        self.sync_tcp(&entry);
        // A service with volumes boots cold (see `assign_uid_range`): the pool keeps its shape.
        if !with_volumes {
            *lock(&self.warm_shape) = WarmShape { ephemeral_mb, image };
        }
        self.refill();
        let service = entry.record().to_service();
        Ok(service)
    }

    /// Checks a request for `count` GPUs of `gpu_type` against what the backend offers.
    fn check_gpu(&self, gpu_type: &str, count: u32) -> Result<()> {
        let offered = self.backend.gpu_types();
        if offered.iter().any(|t| t == gpu_type) {
            return Ok(());
        }
        let why = match (offered.is_empty(), self.backend.gpu_devices()) {
            (false, _) => format!("it offers {}", offered.join(", ")),
            (true, 0) => "it has no GPU devices".to_string(),
            (true, devices) => {
                format!("it has {devices} NVIDIA device(s), but the local host does not pass GPUs into sandboxes")
            }
        };
        Err(Error::Unavailable(format!(
            "GPU type {gpu_type} is not available on this host: {why} (asked for {count} × {gpu_type})"
        )))
    }

    /// `GET /services/{id}`.
    pub fn get_service(&self, scope: &Scope, id: &str) -> Result<Service> {
        let entry = self.find(scope, id)?;
        let mut service = entry.record().to_service();
        service.ports = self.ports_of(&entry);
        Ok(service)
    }

    /// `GET /services`.
    pub fn list_services(&self, scope: &Scope) -> Vec<ServiceSummary> {
        lock(&self.services)
            .iter()
            .map(|e| lock(&e.record).clone())
            .filter(|r| r.project_id == scope.project_id)
            .map(|r| r.summary())
            .collect()
    }

    /// `POST /services/{id}/scale`.
    pub fn scale(self: &Arc<Self>, scope: &Scope, id: &str, req: ScaleRequest) -> Result<()> {
        check_scale(&req)?;
        if let Some(plan) = &req.deployment_plan {
            if let Some(gpu) = parse_gpu_plan(plan) {
                self.check_gpu(&gpu.gpu_type, gpu.count)?;
            }
        }
        if let Some(n) = req.instances {
            if n > MAX_INSTANCES {
                return Err(invalid(
                    "instances",
                    format!("this host runs at most {MAX_INSTANCES} instance per service (a sandbox); got {n}"),
                ));
            }
        }
        let entry = self.find(scope, id)?;
        let restart_needed = req.deployment_plan.is_some() || req.storage.is_some();
        self.mutate(&entry, RolloutReason::Scaling, |r| {
            if let Some(plan) = req.deployment_plan {
                r.spec.billing.deployment_plan = plan;
            }
            if let Some(storage) = req.storage {
                let current = r.spec.deployment.storage.get_or_insert_with(Default::default);
                if storage.ephemeral_storage.is_some() {
                    current.ephemeral_storage = storage.ephemeral_storage;
                }
                if storage.shm_size.is_some() {
                    current.shm_size = storage.shm_size;
                }
            }
            if let Some(grace) = req.grace_period_seconds {
                r.spec.deployment.grace_period_seconds = Some(grace);
            }
            if let Some(n) = req.instances {
                // Asking for instances is an explicit wish to run (or not): it ends a pause.
                r.instances = n;
                r.paused = false;
                if n > 0 {
                    r.resume_instances = n;
                }
            }
            Ok(())
        })?;
        if restart_needed {
            entry.restart.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// `POST /services/{id}/pause`.
    pub fn pause(self: &Arc<Self>, scope: &Scope, id: &str) -> Result<()> {
        let entry = self.find(scope, id)?;
        self.mutate(&entry, RolloutReason::Scaling, |r| {
            if !r.paused {
                r.resume_instances = r.instances.max(1);
                r.instances = 0;
                r.paused = true;
            }
            Ok(())
        })
        .map(drop)
    }

    /// `POST /services/{id}/resume`.
    pub fn resume(self: &Arc<Self>, scope: &Scope, id: &str, req: ScaleRequest) -> Result<()> {
        if req.instances.is_some_and(|n| n > MAX_INSTANCES) {
            return Err(invalid(
                "instances",
                format!("this host runs at most {MAX_INSTANCES} instance per service"),
            ));
        }
        let entry = self.find(scope, id)?;
        self.mutate(&entry, RolloutReason::Scaling, |r| {
            r.paused = false;
            r.instances = req.instances.unwrap_or(r.resume_instances).max(1);
            Ok(())
        })
        .map(drop)
    }

    /// `POST /services/{id}/restart`.
    pub fn restart(self: &Arc<Self>, scope: &Scope, id: &str) -> Result<()> {
        let entry = self.find(scope, id)?;
        entry.restart.store(true, Ordering::SeqCst);
        self.mutate(&entry, RolloutReason::Deploying, |_| Ok(())).map(drop)
    }

    /// `DELETE /services/{id}`: stops the sandbox, detaches (or, with `delete_child_objects`,
    /// deletes) its volumes, forgets the service.
    pub async fn delete_service(self: &Arc<Self>, scope: &Scope, id: &str, delete_children: bool) -> Result<()> {
        let entry = {
            let mut services = lock(&self.services);
            let index = services
                .iter()
                .position(|e| {
                    let r = lock(&e.record);
                    r.project_id == scope.project_id && r.id == id
                })
                .ok_or_else(|| Error::no_service(id))?;
            let entry = services.remove(index);
            // Under the list's lock, so that a shutdown finds it in one list or the other.
            lock(&self.deleting).push(entry.clone());
            entry
        };
        entry.deleted.store(true, Ordering::SeqCst);
        for (_, forward) in lock(&entry.tcp).drain() {
            forward.task.abort();
        }
        {
            let _guard = entry.reconcile.lock().await;
            self.stop_instance(&entry).await;
        }
        lock(&self.deleting).retain(|e| !Arc::ptr_eq(e, &entry));
        let record = entry.record();
        self.store.delete(Table::Services, &record.project_id, &record.id)?;
        for vid in &record.volumes {
            let volume = {
                let mut volumes = lock(&self.volumes);
                let Some(pos) = volumes
                    .iter()
                    .position(|v| v.project_id == record.project_id && &v.id == vid)
                else {
                    continue;
                };
                if delete_children {
                    let v = volumes.remove(pos);
                    self.store.delete(Table::Volumes, &v.project_id, &v.id)?;
                    Some((v.key(), true))
                } else {
                    let v = &mut volumes[pos];
                    v.attached.retain(|o| o.id != record.id);
                    v.updated_at = now_iso();
                    self.persist_volume(v)?;
                    Some((v.key(), false))
                }
            };
            if let Some((key, delete)) = volume {
                let backend = self.backend.clone();
                blocking(move || {
                    if delete {
                        backend.delete_volume(&key)
                    } else {
                        backend.detach_volume(&key)
                    }
                    .map_err(Error::from)
                })
                .await?;
            }
        }
        Ok(())
    }

    fn port_records(&self, service_id: &str, project_id: &str, specs: &[PortSpec], existing: &[Port]) -> Vec<Port> {
        specs
            .iter()
            .map(|p| {
                let id =
                    p.id.clone()
                        .filter(|id| existing.iter().any(|e| &e.id == id))
                        .or_else(|| existing.iter().find(|e| e.name == p.name).map(|e| e.id.clone()))
                        .unwrap_or_else(|| {
                            (0..6)
                                .map(|_| char::from(b'a' + rand::rng().random_range(0..26u8)))
                                .collect()
                        });
                let public = p.public.unwrap_or(false);
                Port {
                    id,
                    name: p.name.clone(),
                    internal_port: p.internal_port,
                    protocol: p.protocol,
                    public,
                    dns: (public && !p.disable_nf_domain.unwrap_or(false))
                        .then(|| self.port_dns(&p.name, service_id, project_id)),
                    domains: p.domains.clone().unwrap_or_default(),
                    security: p.security.clone(),
                    disable_nf_domain: p.disable_nf_domain,
                }
            })
            .collect()
    }

    /// `GET /services/{id}/ports`.
    pub fn ports(&self, scope: &Scope, id: &str) -> Result<Vec<Port>> {
        let entry = self.find(scope, id)?;
        Ok(self.ports_of(&entry))
    }

    /// `POST /services/{id}/ports`: replaces the list.
    pub fn update_ports(self: &Arc<Self>, scope: &Scope, id: &str, specs: Vec<PortSpec>) -> Result<()> {
        check_ports(&specs, "ports")?;
        let entry = self.find(scope, id)?;
        if specs
            .iter()
            .any(|p| p.protocol == flankbox_protocol::service::PortProtocol::Udp)
        {
            // Accepted, as Northflank does, but nothing carries UDP here: say so.
            tracing::warn!("service {id}: UDP ports are recorded but not forwarded by this host (no dns is given)");
        }
        {
            let mut record = lock(&entry.record);
            let mut next = record.clone();
            next.ports = self.port_records(&next.id, &next.project_id, &specs, &record.ports);
            next.updated_at = now_iso();
            self.persist(&next)?;
            *record = next;
        }
        self.sync_tcp(&entry);
        Ok(())
    }

    /// `GET /services/{id}/containers`.
    pub fn containers(&self, scope: &Scope, id: &str) -> Result<Vec<Container>> {
        let entry = self.find(scope, id)?;
        let instance = lock(&entry.instance).clone();
        Ok(instance
            .map(|i| Container {
                name: i.name,
                created_at: i.created_at,
                updated_at: i.updated_at,
                status: i.phase.container_status(),
            })
            .into_iter()
            .collect())
    }

    /// A public port's name: `*.localhost` resolves to loopback with no set-up, so it works in a
    /// browser on this machine, and the proxy (`api::ports`) reads the port back from it.
    fn port_dns(&self, port_name: &str, service_id: &str, project_id: &str) -> String {
        format!(
            "{port_name}--{service_id}--{project_id}.localhost:{}",
            self.config.listen.port()
        )
    }

    /// A service's ports as GET shows them: public ones with their name on this run's listen
    /// port, TCP ones with the host loopback address that reaches them.
    fn ports_of(&self, entry: &ServiceEntry) -> Vec<Port> {
        let tcp = lock(&entry.tcp);
        let record = entry.record();
        let mut ports = record.ports;
        for p in &mut ports {
            if let Some(f) = tcp.get(&p.id) {
                p.dns = Some(format!("127.0.0.1:{}", f.host_port));
            } else if p.dns.is_some() {
                p.dns = Some(self.port_dns(&p.name, &record.id, &record.project_id));
            }
        }
        ports
    }

    /// The running sandbox of a service, for exec.
    pub fn exec_target(
        &self,
        scope: &Scope,
        id: &str,
        instance: Option<&str>,
    ) -> std::result::Result<ExecTarget, ExecTargetError> {
        let entry = self
            .find(scope, id)
            .map_err(|e| ExecTargetError::NotFound(e.to_string()))?;
        let record = entry.record();
        let current = lock(&entry.instance).clone();
        let not_running = || {
            if record.paused {
                ExecTargetError::Paused(id.into())
            } else if record.instances == 0 {
                ExecTargetError::ScaledToZero(id.into())
            } else {
                ExecTargetError::NotRunning(id.into())
            }
        };
        let i = current.ok_or_else(not_running)?;
        if let Some(want) = instance {
            if want != i.name {
                return Err(ExecTargetError::NoInstance {
                    instance: want.into(),
                    service: id.into(),
                });
            }
        }
        match (i.phase.can_exec(), i.sandbox) {
            (true, Some(sandbox)) if sandbox.is_alive() => Ok(ExecTarget {
                sandbox,
                instance: i.name.clone(),
                env: sandbox_env(&record, &i.name),
            }),
            _ => Err(not_running()),
        }
    }
}
