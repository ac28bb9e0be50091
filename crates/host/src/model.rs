//! Persisted records of services and volumes, and how they render as API objects.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flankbox_protocol::plans::find_plan;
use flankbox_protocol::service::{
    Cluster, CreateDeployment, DeploymentStatus, DockerConfigType, ExternalRead, Port, Service, ServiceDeployment,
    ServiceStatus, ServiceSummary,
};
use flankbox_protocol::volume::{CreateVolume, NfObject, Volume};
use serde::{Deserialize, Serialize};

use crate::runtime::Limits;

/// Default ephemeral storage when the create body sets none, MB.
pub const DEFAULT_EPHEMERAL_MB: u64 = 1024;
/// Default `/dev/shm`, MB.
pub const DEFAULT_SHM_MB: u64 = 64;
/// Default grace period on stop when the create body sets none. Northflank's default is
/// longer; sandboxes are stopped and started often, so ours is short.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// The one container of every instance.
pub const CONTAINER_NAME: &str = "main";

/// ISO-8601 UTC time now, with milliseconds.
pub fn now_iso() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Unix seconds now.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A service as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// Project.
    pub project_id: String,
    /// Team from the path, when the team-scoped API created it.
    pub team_id: Option<String>,
    /// Id derived from the name.
    pub id: String,
    /// The create body, updated by scale (plan, storage, grace period).
    pub spec: CreateDeployment,
    /// Wanted instances (0 or 1); 0 while paused.
    pub instances: u32,
    /// Whether paused.
    pub paused: bool,
    /// Instances to restore on resume.
    pub resume_instances: u32,
    /// Ports.
    pub ports: Vec<Port>,
    /// Attached volume ids.
    pub volumes: Vec<String>,
    /// First host uid of the service's range, assigned at its first boot (0 until then);
    /// stable afterwards, so volume files keep their owner.
    pub uid_base: u32,
    /// Rollout status.
    pub rollout: DeploymentStatus,
    /// ISO-8601.
    pub created_at: String,
    /// ISO-8601.
    pub updated_at: String,
}

impl ServiceRecord {
    /// CPU, memory and process limits of the plan.
    pub fn limits(&self, pids: u32) -> Limits {
        let plan = find_plan(&self.spec.billing.deployment_plan);
        Limits {
            cpu_millis: plan.map_or(1000, |p| p.cpu_millis),
            memory_mib: plan.map_or(1024, |p| p.memory_mib),
            pids,
        }
    }

    /// Ephemeral storage, MB.
    pub fn ephemeral_mb(&self) -> u64 {
        self.spec
            .deployment
            .storage
            .as_ref()
            .and_then(|s| s.ephemeral_storage)
            .map_or(DEFAULT_EPHEMERAL_MB, |e| e.storage_size)
    }

    /// `/dev/shm` size, MB.
    pub fn shm_mb(&self) -> u64 {
        self.spec
            .deployment
            .storage
            .as_ref()
            .and_then(|s| s.shm_size)
            .unwrap_or(DEFAULT_SHM_MB)
    }

    /// Time between SIGTERM and SIGKILL on stop.
    pub fn grace(&self) -> Duration {
        self.spec
            .deployment
            .grace_period_seconds
            .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.into()))
    }

    /// The image path.
    pub fn image(&self) -> &str {
        self.spec
            .deployment
            .external
            .as_ref()
            .map_or("", |e| e.image_path.as_str())
    }

    /// The main process. Custom entrypoint and command are single strings; they run through
    /// `/bin/sh -c` (joined, entrypoint first), so shell syntax in them works. `default` on a
    /// mapped image has no command of its own: the sandbox then idles until exec'd into.
    pub fn main_command(&self) -> Option<Vec<String>> {
        let docker = self.spec.deployment.docker.as_ref()?;
        let line = match docker.config_type {
            DockerConfigType::Default => return None,
            DockerConfigType::CustomCommand => docker.custom_command.clone()?,
            DockerConfigType::CustomEntrypoint => docker.custom_entrypoint.clone()?,
            DockerConfigType::CustomEntrypointCustomCommand => {
                format!(
                    "{} {}",
                    docker.custom_entrypoint.as_deref()?,
                    docker.custom_command.as_deref().unwrap_or("")
                )
            }
        };
        Some(vec!["/bin/sh".into(), "-c".into(), line])
    }

    /// `/team/project/service`.
    pub fn app_id(&self) -> String {
        format!(
            "/{}/{}/{}",
            self.team_id.as_deref().unwrap_or("local"),
            self.project_id,
            self.id
        )
    }

    /// The read model.
    pub fn to_service(&self) -> Service {
        let d = &self.spec.deployment;
        Service {
            id: self.id.clone(),
            app_id: self.app_id(),
            name: self.spec.name.clone(),
            tags: self.spec.tags.clone().unwrap_or_default(),
            description: self.spec.description.clone(),
            project_id: self.project_id.clone(),
            service_type: "deployment".into(),
            created_at: Some(self.created_at.clone()),
            updated_at: Some(self.updated_at.clone()),
            disabled_ci: true,
            disabled_cd: false,
            billing: self.spec.billing.clone(),
            service_paused: self.paused,
            deployment: Some(ServiceDeployment {
                region: Some("local".into()),
                instances: self.instances,
                external: d.external.as_ref().map(|e| ExternalRead {
                    image_path: e.image_path.clone(),
                    registry_provider: "dockerhub".into(),
                    private_image: e.credentials.is_some(),
                }),
                docker: d.docker.clone(),
                storage: d.storage.clone(),
                gpu: d.gpu.clone(),
                grace_period_seconds: d.grace_period_seconds,
            }),
            ports: self.ports.clone(),
            cluster: Some(Cluster {
                id: "local".into(),
                name: "flankbox local host".into(),
            }),
            status: ServiceStatus {
                deployment: Some(self.rollout.clone()),
            },
        }
    }

    /// The list item.
    pub fn summary(&self) -> ServiceSummary {
        ServiceSummary {
            id: self.id.clone(),
            app_id: self.app_id(),
            project_id: self.project_id.clone(),
            name: self.spec.name.clone(),
            tags: self.spec.tags.clone().unwrap_or_default(),
            description: self.spec.description.clone(),
            service_type: "deployment".into(),
            disabled_ci: true,
            disabled_cd: false,
            status: ServiceStatus {
                deployment: Some(self.rollout.clone()),
            },
        }
    }
}

/// A volume as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// Project.
    pub project_id: String,
    /// Id derived from the name.
    pub id: String,
    /// The create body (name, mounts, spec, tags).
    pub spec: CreateVolume,
    /// Attached objects (at most one service here).
    pub attached: Vec<NfObject>,
    /// ISO-8601.
    pub created_at: String,
    /// ISO-8601.
    pub updated_at: String,
}

impl VolumeRecord {
    /// The backend's key for its storage.
    pub fn key(&self) -> String {
        format!("{}/{}", self.project_id, self.id)
    }

    /// The attached service, if any.
    pub fn service(&self) -> Option<&str> {
        self.attached
            .iter()
            .find(|o| o.kind == "service")
            .map(|o| o.id.as_str())
    }

    /// The read model.
    pub fn to_volume(&self) -> Volume {
        Volume {
            id: self.id.clone(),
            name: self.spec.name.clone(),
            tags: self.spec.tags.clone().unwrap_or_default(),
            spec: self.spec.spec.clone(),
            attached_objects: self.attached.clone(),
            status: if self.attached.is_empty() {
                "AVAILABLE".into()
            } else {
                "BOUND".into()
            },
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
        }
    }
}
