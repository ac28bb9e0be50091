//! The host's core: services and volumes, their records, and the reconciler that makes each
//! service's instance match what is wanted.
//!
//! API handlers change the *wanted* state (instances, paused, plan, volumes) and return at
//! once; [`Host::poke`] then runs the reconciler, which boots and stops sandboxes and moves
//! `status.deployment` along PENDING → IN_PROGRESS → COMPLETED (or FAILED). Handlers never touch
//! sandboxes directly, except exec, which only borrows a running one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use flankbox_protocol::names::derive_id;
use flankbox_protocol::plans::parse_gpu_plan;
use flankbox_protocol::service::{
    Container, CreateDeployment, Port, PortSpec, RolloutReason, RolloutStatus, ScaleRequest, Service, ServiceSummary,
};
use flankbox_protocol::validate::{
    check_create_deployment, check_create_volume, check_ports, check_scale, requested_gpu,
};
use flankbox_protocol::volume::{AttachRequest, CreateVolume, NfObject, Volume, VolumeMount};
use flankbox_protocol::ValidationError;
use rand::Rng;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::lifecycle::{self, Action, Phase};
use crate::model::{now_iso, now_unix, ServiceRecord, VolumeRecord};
use crate::runtime::images::ImageCatalog;
use crate::runtime::linux::{UID_BASE, UID_RANGE};
use crate::runtime::sandbox::{Output, ProcessSpec};
use crate::runtime::{Backend, LaunchSpec, PrepareSpec, Prepared, Sandbox};
use crate::store::{Store, Table};

/// Most instances a service may have. A sandbox is one instance; more would need a volume
/// shared between sandboxes with different uid ranges.
pub const MAX_INSTANCES: u32 = 1;
/// A service tagged `flankbox-expires-<unix seconds>` is deleted, volumes and all, once that time
/// has passed: sandboxes given a lifetime (the playground's, the edge proxy's) cannot leak.
pub const EXPIRES_TAG: &str = "flankbox-expires-";
/// How often the reaper looks for expired services.
const REAP_EVERY: Duration = Duration::from_secs(5);

/// Pause before the warm pool refills after a create.
const REFILL_DELAY: Duration = Duration::from_millis(100);
/// Lines of main-process output kept per service.
pub(crate) const LOG_LINES: usize = 5000;

/// Project (and optional team) of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Team from a `/v1/teams/{t}/…` path.
    pub team_id: Option<String>,
    /// Project.
    pub project_id: String,
}

/// One line of a main process's output.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// As the log endpoints send it.
    pub wire: flankbox_protocol::logs::LogLine,
    /// Unix milliseconds, for time-range queries.
    pub at_ms: u64,
}

/// A TCP port of a service, forwarded from a host loopback port.
#[derive(Debug)]
struct TcpForward {
    internal_port: u16,
    host_port: u16,
    task: tokio::task::JoinHandle<()>,
}

/// Why a request to an exposed port cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRefusal {
    /// HTTP status for the page.
    pub status: u16,
    /// What the page says.
    pub message: String,
}

/// A service's instance.
#[derive(Debug, Clone)]
struct Instance {
    name: String,
    phase: Phase,
    created_at: u64,
    updated_at: u64,
    sandbox: Option<Arc<Sandbox>>,
}

/// A service and what runs for it.
#[derive(Debug)]
pub struct ServiceEntry {
    record: Mutex<ServiceRecord>,
    instance: Mutex<Option<Instance>>,
    /// Bumped by every accepted change; the reconciler settles only what it has seen.
    generation: AtomicU64,
    reconcile: tokio::sync::Mutex<()>,
    restart: AtomicBool,
    deleted: AtomicBool,
    crashes: AtomicU32,
    not_before: Mutex<Option<Instant>>,
    logs: Mutex<VecDeque<LogLine>>,
    log_tx: tokio::sync::broadcast::Sender<LogLine>,
    tcp: Mutex<std::collections::HashMap<String, TcpForward>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the host down with it; the data is still consistent
    // because every critical section is a plain assignment.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ServiceEntry {
    fn new(record: ServiceRecord) -> Arc<Self> {
        Arc::new(Self {
            record: Mutex::new(record),
            instance: Mutex::new(None),
            generation: AtomicU64::new(0),
            reconcile: tokio::sync::Mutex::new(()),
            restart: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
            crashes: AtomicU32::new(0),
            not_before: Mutex::new(None),
            logs: Mutex::new(VecDeque::new()),
            log_tx: tokio::sync::broadcast::channel(1024).0,
            tcp: Mutex::new(std::collections::HashMap::new()),
        })
    }

    fn record(&self) -> ServiceRecord {
        lock(&self.record).clone()
    }

    fn set_phase(&self, name: &str, phase: Phase) {
        if let Some(i) = lock(&self.instance).as_mut().filter(|i| i.name == name) {
            i.phase = phase;
            i.updated_at = now_unix();
        }
    }

    fn push_log(&self, container: &str, line: String) {
        let now = std::time::SystemTime::now();
        let at_ms = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let wire = flankbox_protocol::logs::LogLine {
            container_id: container.into(),
            log: line,
            ts: humantime::format_rfc3339_millis(now).to_string(),
        };
        let entry = LogLine { wire, at_ms };
        // Kept and sent under one lock, which a new tail also takes to read the kept lines and
        // subscribe: each line reaches it exactly once. A copy is sent only to someone tailing.
        let mut logs = lock(&self.logs);
        if self.log_tx.receiver_count() > 0 {
            let _ = self.log_tx.send(entry.clone());
        }
        if logs.len() == LOG_LINES {
            logs.pop_front();
        }
        logs.push_back(entry);
    }
}

/// What exec needs to run a command in a service's sandbox.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    /// The sandbox.
    pub sandbox: Arc<Sandbox>,
    /// Its instance name.
    pub instance: String,
    /// The service's environment (`KEY=value`), before per-exec additions.
    pub env: Vec<String>,
}

/// A page request.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PageQuery {
    /// Items per page (≤ 100).
    pub per_page: Option<String>,
    /// 1-based page number.
    pub page: Option<String>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

/// Cuts one page out of `items`. Cursors are `o<offset>`: opaque to clients, URL-safe.
pub fn paginate<T>(items: Vec<T>, q: &PageQuery) -> Result<(Vec<T>, flankbox_protocol::Pagination)> {
    let bad = |field: &str, msg: &str| Error::Invalid(ValidationError::new(field, msg));
    let per_page = match &q.per_page {
        None => 50,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| bad("per_page", "must be a number from 1 to 100"))?,
    };
    let offset = match (&q.cursor, &q.page) {
        (Some(c), _) => c
            .strip_prefix('o')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| bad("cursor", "is not a cursor this host issued"))?,
        (None, Some(p)) => p
            .parse::<usize>()
            .ok()
            .filter(|p| *p >= 1)
            // A page past any list is an empty one (found by fuzzing: it overflowed).
            .map(|p| (p - 1).saturating_mul(per_page))
            .ok_or_else(|| bad("page", "must be a number from 1"))?,
        (None, None) => 0,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(per_page).collect();
    let next = offset + page.len();
    let has_next = next < total;
    let pagination = flankbox_protocol::Pagination {
        has_next_page: has_next,
        cursor: has_next.then(|| format!("o{next}")),
        count: page.len(),
    };
    Ok((page, pagination))
}

/// The host.
pub struct Host {
    /// Configuration.
    pub config: Config,
    /// The edge proxy mounted at `/edge`, with this host as its upstream.
    pub edge: flankbox_edge::Edge,
    backend: Arc<dyn Backend>,
    images: ImageCatalog,
    store: Store,
    services: Mutex<Vec<Arc<ServiceEntry>>>,
    volumes: Mutex<Vec<VolumeRecord>>,
    /// Prepared sandboxes waiting for a service (see [`Host::refill`]).
    warm: Mutex<Vec<Prepared>>,
    /// Ephemeral size the pool prepares: that of the latest create.
    warm_mb: AtomicU64,
    refilling: AtomicBool,
    closing: AtomicBool,
    /// Projects already recorded.
    projects: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("backend", &self.backend.describe())
            .finish_non_exhaustive()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::Invalid(ValidationError::new(field, message))
}

/// Parses a JSON body into `T`, naming the field that does not fit.
pub fn parse_body<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." {
            Error::Body(inner)
        } else {
            Error::Body(format!("{path}: {inner}"))
        }
    })
}

impl Host {
    /// Opens the host: state from the database, images prepared, and every service that should
    /// run booted again.
    pub async fn open(config: Config, backend: Arc<dyn Backend>) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::Internal(format!("data dir {}: {e}", config.data_dir.display())))?;
        let store = Store::open(&config.data_dir.join("flankbox.db"))?;
        let images = ImageCatalog::prepare(&config.data_dir, config.images.clone())
            .map_err(|e| Error::Internal(format!("preparing images: {e}")))?;
        let volumes: Vec<VolumeRecord> = store.all(Table::Volumes)?;
        let services: Vec<ServiceRecord> = store.all(Table::Services)?;
        let edge = flankbox_edge::Edge::new(
            &config.edge_secret,
            &config.token,
            &config.playground_project,
            None,
            config.edge_policy.clone(),
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        let host = Arc::new(Self {
            config,
            edge,
            backend,
            images,
            store,
            services: Mutex::new(services.into_iter().map(ServiceEntry::new).collect()),
            volumes: Mutex::new(volumes),
            warm: Mutex::new(Vec::new()),
            warm_mb: AtomicU64::new(crate::model::DEFAULT_EPHEMERAL_MB),
            refilling: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            projects: Mutex::new(std::collections::HashSet::new()),
        });
        host.sweep_orphan_volumes().await;
        let entries = lock(&host.services).clone();
        for entry in entries {
            let wants = {
                let r = lock(&entry.record);
                lifecycle::wants_running(r.instances, r.paused)
            };
            if wants {
                {
                    let mut r = lock(&entry.record);
                    r.rollout = lifecycle::accepted(RolloutReason::Deploying, &now_iso());
                }
                host.poke(&entry);
            }
        }
        for entry in lock(&host.services).clone() {
            host.sync_tcp(&entry);
        }
        host.refill();
        host.start_reaper();
        Ok(host)
    }

    /// Deletes expired services every few seconds, for as long as the host lives.
    fn start_reaper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REAP_EVERY).await;
                let Some(host) = weak.upgrade() else { break };
                host.reap_expired().await;
            }
        });
    }

    /// Deletes every service whose expiry tag lies in the past.
    pub async fn reap_expired(self: &Arc<Self>) {
        let now = now_unix();
        let expired: Vec<(Scope, String)> = lock(&self.services)
            .iter()
            .filter_map(|e| {
                let r = lock(&e.record);
                let expires = r
                    .spec
                    .tags
                    .iter()
                    .flatten()
                    .find_map(|t| t.strip_prefix(EXPIRES_TAG)?.parse::<u64>().ok())?;
                (expires <= now).then(|| {
                    (
                        Scope {
                            team_id: r.team_id.clone(),
                            project_id: r.project_id.clone(),
                        },
                        r.id.clone(),
                    )
                })
            })
            .collect();
        for (scope, id) in expired {
            tracing::info!(project = %scope.project_id, service = %id, "deleting an expired sandbox");
            if let Err(e) = self.delete_service(&scope, &id, true).await {
                tracing::warn!(service = %id, "could not delete an expired sandbox: {e}");
            }
        }
    }

    /// Records a project on its first use (projects are implicit).
    fn touch_project(&self, project_id: &str) -> Result<()> {
        if lock(&self.projects).insert(project_id.to_string()) {
            self.store.touch_project(project_id, &now_iso())?;
        }
        Ok(())
    }

    /// A fresh uid range.
    fn new_uid_base(&self) -> Result<u32> {
        let slot = self.store.next("uid_slot")?;
        slot.checked_mul(UID_RANGE)
            .and_then(|offset| UID_BASE.checked_add(offset))
            .filter(|base| base.checked_add(UID_RANGE).is_some())
            .ok_or_else(|| Error::Internal("uid ranges exhausted".into()))
    }

    /// Takes a prepared sandbox with the given ephemeral size from the pool.
    fn take_warm(&self, ephemeral_mb: u64) -> Option<Prepared> {
        let mut pool = lock(&self.warm);
        let i = pool.iter().position(|p| p.spec.ephemeral_mb == ephemeral_mb)?;
        Some(pool.swap_remove(i))
    }

    /// Keeps `config.warm_pool` sandboxes prepared ahead of time, with the ephemeral size of the
    /// latest create: storage made, uid range mapped, cgroup joined, agent waiting. A create
    /// then only has to apply limits and build the root, which is what makes a cold start fast.
    /// Entries of another size are dropped as the size changes.
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
                let size = host.warm_mb.load(Ordering::Relaxed);
                let stale: Vec<Prepared> = {
                    let mut pool = lock(&host.warm);
                    let (keep, stale) = std::mem::take(&mut *pool)
                        .into_iter()
                        .partition(|p| p.spec.ephemeral_mb == size);
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
                    ephemeral_mb: size,
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

    /// A description of the isolation in use.
    pub fn isolation(&self) -> String {
        self.backend.describe()
    }

    fn find(&self, scope: &Scope, id: &str) -> Result<Arc<ServiceEntry>> {
        lock(&self.services)
            .iter()
            .find(|e| {
                let r = lock(&e.record);
                r.project_id == scope.project_id && r.id == id
            })
            .cloned()
            .ok_or_else(|| Error::no_service(id))
    }

    fn persist(&self, record: &ServiceRecord) -> Result<()> {
        self.store.put(Table::Services, &record.project_id, &record.id, record)
    }

    fn persist_volume(&self, v: &VolumeRecord) -> Result<()> {
        self.store.put(Table::Volumes, &v.project_id, &v.id, v)
    }

    /// Applies `change` to a service's record, restarts its rollout with `reason`, saves it
    /// and wakes the reconciler.
    fn mutate(
        self: &Arc<Self>,
        entry: &Arc<ServiceEntry>,
        reason: RolloutReason,
        change: impl FnOnce(&mut ServiceRecord) -> Result<()>,
    ) -> Result<ServiceRecord> {
        let updated = {
            let mut record = lock(&entry.record);
            let mut next = record.clone();
            change(&mut next)?;
            next.updated_at = now_iso();
            next.rollout = lifecycle::accepted(reason, &next.updated_at);
            self.persist(&next)?;
            *record = next.clone();
            entry.generation.fetch_add(1, Ordering::SeqCst);
            next
        };
        entry.crashes.store(0, Ordering::Relaxed);
        *lock(&entry.not_before) = None;
        self.poke(entry);
        Ok(updated)
    }

    // ----- services -----------------------------------------------------------------------

    /// `POST /services/deployment`.
    pub async fn create_service(self: &Arc<Self>, scope: &Scope, body: serde_json::Value) -> Result<Service> {
        let spec: CreateDeployment = parse_body(body)?;
        check_create_deployment(&spec)?;
        if let Some((gpu_type, count)) = requested_gpu(&spec) {
            return Err(self.no_gpu(&gpu_type, count));
        }
        self.images
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
        self.warm_mb.store(ephemeral_mb, Ordering::Relaxed);
        self.refill();
        let service = entry.record().to_service();
        Ok(service)
    }

    fn no_gpu(&self, gpu_type: &str, count: u32) -> Error {
        let devices = std::fs::read_dir("/dev")
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name().to_string_lossy().starts_with("nvidia")
                            && e.file_name().to_string_lossy()[6..].chars().all(|c| c.is_ascii_digit())
                            && e.file_name().len() > 6
                    })
                    .count()
            })
            .unwrap_or(0);
        if devices == 0 {
            Error::Unavailable(format!("GPU type {gpu_type} is not available on this host: it has no GPU devices (asked for {count} × {gpu_type})"))
        } else {
            Error::Unavailable(format!("GPU type {gpu_type} is not available on this host: it has {devices} NVIDIA device(s), but the local host does not pass GPUs into sandboxes (asked for {count} × {gpu_type})"))
        }
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
                return Err(self.no_gpu(&gpu.gpu_type, gpu.count));
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
            services.remove(index)
        };
        entry.deleted.store(true, Ordering::SeqCst);
        for (_, forward) in lock(&entry.tcp).drain() {
            forward.task.abort();
        }
        {
            let _guard = entry.reconcile.lock().await;
            self.stop_instance(&entry).await;
        }
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

    /// Main-process output kept for a service.
    pub fn logs(&self, scope: &Scope, id: &str) -> Result<Vec<LogLine>> {
        Ok(lock(&self.find(scope, id)?.logs).iter().cloned().collect())
    }

    /// The kept output and a receiver of what comes next, without a line lost in between.
    pub fn tail_logs(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<(Vec<LogLine>, tokio::sync::broadcast::Receiver<LogLine>)> {
        let entry = self.find(scope, id)?;
        let logs = lock(&entry.logs);
        let rx = entry.log_tx.subscribe();
        Ok((logs.iter().cloned().collect(), rx))
    }

    /// What an exposed port's request goes to: the running sandbox and the port inside it. The
    /// refusal is the page the client sees.
    pub fn port_target(
        &self,
        project: &str,
        service: &str,
        port_name: &str,
    ) -> Result<(Arc<Sandbox>, Port), PortRefusal> {
        let scope = Scope {
            team_id: None,
            project_id: project.into(),
        };
        let refuse = |status, message: String| PortRefusal { status, message };
        let entry = self
            .find(&scope, service)
            .map_err(|_| refuse(404, format!("There is no service {service} in project {project}.")))?;
        // Runs on every proxied request: read what it needs under the locks, copy no more.
        let (port, paused, instances) = {
            let record = lock(&entry.record);
            let port = record
                .ports
                .iter()
                .find(|p| p.name == port_name && p.public && p.protocol.can_be_public())
                .cloned();
            (port, record.paused, record.instances)
        };
        let port = port.ok_or_else(|| {
            refuse(
                404,
                format!("Service {service} has no public HTTP port named {port_name}."),
            )
        })?;
        let running = lock(&entry.instance)
            .as_ref()
            .filter(|i| i.phase.can_exec())
            .map(|i| i.sandbox.clone());
        match running {
            Some(Some(sandbox)) if sandbox.is_alive() => Ok((sandbox, port)),
            Some(_) => Err(refuse(503, format!("Service {service} is not running."))),
            None if paused => Err(refuse(
                503,
                format!(
                    "Service {service} is paused; resume it to reach port {}.",
                    port.internal_port
                ),
            )),
            None => Err(refuse(
                503,
                format!("Service {service} is not running (scaled to {instances} instances, or still starting)."),
            )),
        }
    }

    /// Keeps one host loopback listener per TCP port of a service, and none for ports gone.
    fn sync_tcp(self: &Arc<Self>, entry: &Arc<ServiceEntry>) {
        let wanted: Vec<(String, u16)> = lock(&entry.record)
            .ports
            .iter()
            .filter(|p| p.protocol == flankbox_protocol::service::PortProtocol::Tcp)
            .map(|p| (p.id.clone(), p.internal_port as u16))
            .collect();
        let mut tcp = lock(&entry.tcp);
        tcp.retain(|id, f| {
            let keep = wanted.iter().any(|(w, port)| w == id && *port == f.internal_port);
            if !keep {
                f.task.abort();
            }
            keep
        });
        for (id, internal_port) in wanted {
            if tcp.contains_key(&id) {
                continue;
            }
            let listener = match std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(l)
            }) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("cannot listen for a TCP port: {e}");
                    continue;
                }
            };
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                continue;
            };
            let host_port = listener.local_addr().map_or(0, |a| a.port());
            let weak = Arc::downgrade(entry);
            let task = tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let Some(entry) = weak.upgrade() else { break };
                    let sandbox = lock(&entry.instance)
                        .as_ref()
                        .filter(|i| i.phase.can_exec())
                        .and_then(|i| i.sandbox.clone());
                    let Some(sandbox) = sandbox else { continue };
                    tokio::spawn(async move {
                        if let Ok(mut inside) = sandbox.dial(internal_port).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut inside).await;
                        }
                    });
                }
            });
            tcp.insert(
                id,
                TcpForward {
                    internal_port,
                    host_port,
                    task,
                },
            );
        }
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

    /// The running sandbox of a service, for exec; the error is the sentence the client sees.
    pub fn exec_target(&self, scope: &Scope, id: &str, instance: Option<&str>) -> Result<ExecTarget, String> {
        let entry = self.find(scope, id).map_err(|e| e.to_string())?;
        let record = entry.record();
        let current = lock(&entry.instance).clone();
        let not_running = || {
            if record.paused {
                format!("Service {id} is paused; resume it to exec")
            } else if record.instances == 0 {
                format!("Service {id} is scaled to 0 instances; scale it to 1 to exec")
            } else {
                format!("Service {id} has no running instance yet; wait for status COMPLETED")
            }
        };
        let i = current.ok_or_else(not_running)?;
        if let Some(want) = instance {
            if want != i.name {
                return Err(format!("Instance {want} of service {id} not found"));
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

    // ----- volumes ------------------------------------------------------------------------

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

    /// Deletes volume storage that no volume record owns: what a `kill -9` left between making
    /// a volume's storage and recording it, or between forgetting a volume and deleting its
    /// storage. Neither was acknowledged to anyone, so nothing anyone kept is lost.
    async fn sweep_orphan_volumes(&self) {
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

    // ----- the reconciler -----------------------------------------------------------------

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
        let warm = self.assign_uid_range(entry)?;
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
        let image = self.images.resolve(record.image()).map_err(Error::Unavailable)?;
        let spec = LaunchSpec {
            hostname: name.chars().take(63).collect(),
            image,
            limits: record.limits(self.config.pids_max),
            shm_mb: record.shm_mb(),
            volumes,
        };
        let prepare = PrepareSpec {
            id: name.clone(),
            uid_base: record.uid_base,
            ephemeral_mb: record.ephemeral_mb(),
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
    /// prepared sandbox from the warm pool and adopts that sandbox's range. (A prepared agent's
    /// mount namespace is a copy of the host's from before any volume mounted since, so a
    /// service with volumes boots cold: its agent starts after them.)
    fn assign_uid_range(self: &Arc<Self>, entry: &ServiceEntry) -> Result<Option<Prepared>> {
        let (uid_base, has_volumes, ephemeral_mb) = {
            let r = lock(&entry.record);
            (r.uid_base, !r.volumes.is_empty(), r.ephemeral_mb())
        };
        if uid_base != 0 {
            return Ok(None);
        }
        let warm = if has_volumes {
            None
        } else {
            self.take_warm(ephemeral_mb)
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

    async fn stop_instance(&self, entry: &ServiceEntry) {
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

    /// Stops every sandbox (on shutdown). Wanted states are kept: the next start boots them.
    pub async fn shutdown(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let pool = std::mem::take(&mut *lock(&self.warm));
        let _ = tokio::task::spawn_blocking(move || drop(pool)).await;
        let entries = lock(&self.services).clone();
        for entry in entries {
            let _guard = entry.reconcile.lock().await;
            self.stop_instance(&entry).await;
        }
        // With every sandbox gone, unmount the volumes so their data is on disk.
        let keys: Vec<String> = lock(&self.volumes).iter().map(VolumeRecord::key).collect();
        let backend = self.backend.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for key in keys {
                if let Err(e) = backend.detach_volume(&key) {
                    tracing::warn!("unmounting volume {key}: {e}");
                }
            }
            backend.shutdown()
        })
        .await;
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

/// The directory `sub` of a volume, made if missing. Sandbox code controls the volume's
/// contents, so a link anywhere on the way is refused: following one would bind a host path
/// into the sandbox.
fn volume_subdir(root: &std::path::Path, sub: &str, owner: u32) -> std::io::Result<std::path::PathBuf> {
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

/// The environment of the main process and of every exec.
pub fn sandbox_env(record: &ServiceRecord, instance: &str) -> Vec<String> {
    let mut env = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        format!("HOSTNAME={instance}"),
        "HOME=/root".to_string(),
        "LANG=C.UTF-8".to_string(),
        format!("NF_SERVICE_ID={}", record.id),
        format!("NF_PROJECT_ID={}", record.project_id),
    ];
    if let Some(vars) = &record.spec.runtime_environment {
        for (k, v) in vars.iter() {
            env.retain(|e| !e.starts_with(&format!("{k}=")));
            env.push(format!("{k}={v}"));
        }
    }
    env
}

async fn collect_logs(entry: Arc<ServiceEntry>, instance: String, mut output: Output) {
    let mut buf = vec![0u8; 16 << 10];
    let mut pending = Vec::new();
    loop {
        let n = match output.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            entry.push_log(&instance, String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        if pending.len() > 64 << 10 {
            entry.push_log(
                &instance,
                String::from_utf8_lossy(&std::mem::take(&mut pending)).into_owned(),
            );
        }
    }
    if !pending.is_empty() {
        entry.push_log(&instance, String::from_utf8_lossy(&pending).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_omit_the_cursor_at_the_end() {
        let q = PageQuery {
            per_page: Some("2".into()),
            ..Default::default()
        };
        let (page, p) = paginate(vec![1, 2, 3], &q).unwrap();
        assert_eq!(page, vec![1, 2]);
        assert_eq!((p.has_next_page, p.count), (true, 2));
        let q = PageQuery {
            per_page: Some("2".into()),
            cursor: p.cursor,
            page: None,
        };
        let (page, p) = paginate(vec![1, 2, 3], &q).unwrap();
        assert_eq!(page, vec![3]);
        assert_eq!((p.has_next_page, p.cursor), (false, None));
        let q = PageQuery {
            per_page: Some("2".into()),
            page: Some("2".into()),
            cursor: None,
        };
        assert_eq!(paginate(vec![1, 2, 3], &q).unwrap().0, vec![3]);
    }

    #[test]
    fn bad_page_queries_are_400s() {
        for q in [
            PageQuery {
                per_page: Some("0".into()),
                ..Default::default()
            },
            PageQuery {
                per_page: Some("101".into()),
                ..Default::default()
            },
            PageQuery {
                cursor: Some("zz".into()),
                ..Default::default()
            },
            PageQuery {
                page: Some("0".into()),
                ..Default::default()
            },
        ] {
            assert!(matches!(paginate(vec![1], &q), Err(Error::Invalid(_))), "{q:?}");
        }
    }

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

    #[test]
    fn instance_names_look_like_northflanks() {
        let n = instance_name("example-service");
        let parts: Vec<&str> = n.rsplitn(3, '-').collect();
        assert_eq!(parts[2], "example-service");
        assert_eq!(parts[1].len(), 10);
        assert_eq!(parts[0].len(), 5);
    }
}
