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

use flankbox_protocol::lifetime::expiry_of;
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
use crate::runtime::{Backend, ImageRoot, LaunchSpec, PrepareSpec, Prepared, Sandbox};
use crate::store::{Store, Table};

mod forwards;
mod http;
mod logs;
mod reconciler;
mod services;
mod volumes;
mod warm_pool;

use warm_pool::WarmShape;

pub use http::{paginate, parse_body, PageQuery};

/// Most instances a service may have. A sandbox is one instance; more would need a volume
/// shared between sandboxes with different uid ranges.
pub const MAX_INSTANCES: u32 = 1;
/// How often the reaper looks for expired services.
const REAP_EVERY: Duration = Duration::from_secs(5);

/// Pause before the warm pool refills after a create.
const REFILL_DELAY: Duration = Duration::from_millis(100);
/// Longest a shutdown waits for a refill in flight (one prepare; slow only on a busy machine).
const SHUTDOWN_REFILL_WAIT: Duration = Duration::from_secs(30);
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

/// Why a service has no sandbox to exec in; the message is the sentence the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecTargetError {
    /// No such service.
    #[error("{0}")]
    NotFound(String),
    /// The service is paused.
    #[error("Service {0} is paused; resume it to exec")]
    Paused(String),
    /// The service is scaled to zero.
    #[error("Service {0} is scaled to 0 instances; scale it to 1 to exec")]
    ScaledToZero(String),
    /// The service's sandbox is not running (yet).
    #[error("Service {0} has no running instance yet; wait for status COMPLETED")]
    NotRunning(String),
    /// The asked-for instance is not the service's.
    #[error("Instance {instance} of service {service} not found")]
    NoInstance {
        /// The instance asked for.
        instance: String,
        /// The service.
        service: String,
    },
}

/// The host.
pub struct Host {
    /// Configuration.
    pub config: Config,
    backend: Arc<dyn Backend>,
    images: ImageCatalog,
    store: Store,
    services: Mutex<Vec<Arc<ServiceEntry>>>,
    /// Services taken off the list whose sandbox is still being stopped: a shutdown waits for
    /// them too, or the sandbox would outlive the host (a delete need not be a request, which
    /// the server would wait for: the reaper and the edge's holds delete too).
    deleting: Mutex<Vec<Arc<ServiceEntry>>>,
    volumes: Mutex<Vec<VolumeRecord>>,
    /// Prepared sandboxes waiting for a service (see [`Host::refill`]).
    warm: Mutex<Vec<Prepared>>,
    /// What the pool prepares sandboxes for: that of the latest create.
    warm_shape: Mutex<WarmShape>,
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
        let warm_shape = Mutex::new(WarmShape {
            ephemeral_mb: crate::model::DEFAULT_EPHEMERAL_MB,
            image: images.host_view().clone(),
        });
        let host = Arc::new(Self {
            config,
            backend,
            images,
            store,
            services: Mutex::new(services.into_iter().map(ServiceEntry::new).collect()),
            deleting: Mutex::new(Vec::new()),
            volumes: Mutex::new(volumes),
            warm: Mutex::new(Vec::new()),
            warm_shape,
            refilling: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            projects: Mutex::new(std::collections::HashSet::new()),
        });
        host.detach_from_missing_services();
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

    /// Deletes every service whose expiry tag ([`flankbox_protocol::lifetime`]) lies in the past,
    /// volumes and all: sandboxes given a lifetime (the playground's, the edge proxy's) cannot
    /// leak.
    pub async fn reap_expired(self: &Arc<Self>) {
        let now = now_unix();
        let expired: Vec<(Scope, String)> = lock(&self.services)
            .iter()
            .filter_map(|e| {
                let r = lock(&e.record);
                let expires = expiry_of(r.spec.tags.iter().flatten().map(String::as_str))?;
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

    /// Stops every sandbox (on shutdown). Wanted states are kept: the next start boots them.
    pub async fn shutdown(&self) {
        self.closing.store(true, Ordering::SeqCst);
        // A refill may be preparing a sandbox right now: let it land in the pool first, or it
        // would be pushed after the pool is emptied and its mounts outlive the host.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_REFILL_WAIT;
        while self.refilling.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let pool = std::mem::take(&mut *lock(&self.warm));
        let _ = tokio::task::spawn_blocking(move || drop(pool)).await;
        let mut entries = lock(&self.services).clone();
        entries.extend(lock(&self.deleting).iter().cloned());
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
