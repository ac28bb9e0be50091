//! Deployment services: the create body, the read model, status, scaling, ports and containers
//! (contract §2.1–§2.5).

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Body of `POST /services/deployment` (§2.1). Fields a sandbox host ignores (health checks,
/// autoscaling, …) are accepted and dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDeployment {
    /// 3–54 characters; the service id is derived from it.
    pub name: String,
    /// Up to 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Plan and GPU billing.
    pub billing: Billing,
    /// What runs, how many, with what storage.
    pub deployment: DeploymentSpec,
    /// Ports to expose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortSpec>>,
    /// Environment variables of the main process and of every exec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_environment: Option<EnvVars>,
    /// Options that apply only at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_options: Option<CreateOptions>,
}

/// Environment variables: a JSON object of strings, kept in the order sent. When a name repeats,
/// the last one wins, as it would in a shell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvVars(pub Vec<(String, String)>);

impl EnvVars {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Serialize for EnvVars {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for EnvVars {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = EnvVars;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EnvVars, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(EnvVars(pairs))
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

/// `billing`: the deployment plan, and optionally GPUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Billing {
    /// Plan id, e.g. `nf-compute-20` (see [`crate::plans`]).
    pub deployment_plan: String,
    /// GPUs, in the billing placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuSpec>,
}

/// `gpu` (in `billing` or `deployment`; the schema accepts both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuSpec {
    /// Whether GPUs are requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Which GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<GpuConfiguration>,
}

/// `gpu.configuration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuConfiguration {
    /// GPU type, e.g. `a100-80`.
    pub gpu_type: String,
    /// Number of GPUs (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_count: Option<u32>,
    /// Whether the GPU is time-sliced between workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timesliced: Option<bool>,
}

/// `deployment` of the create body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// Number of instances; 0 creates the service scaled to zero.
    pub instances: u32,
    /// An external image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<External>,
    /// A Northflank build (not available on a local host; kept so the error can name it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<serde_json::Value>,
    /// Entrypoint and command overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<Docker>,
    /// Ephemeral storage and `/dev/shm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// GPUs, in the deployment placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuSpec>,
    /// Seconds between SIGTERM and SIGKILL on stop (15–600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
}

/// `deployment.external`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct External {
    /// Image reference, e.g. `ubuntu:22.04`.
    pub image_path: String,
    /// Saved registry credentials id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
}

/// `deployment.docker`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Docker {
    /// Which overrides apply.
    pub config_type: DockerConfigType,
    /// Entrypoint override, one string (not argv).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_entrypoint: Option<String>,
    /// Command override, one string (not argv).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_command: Option<String>,
}

/// `deployment.docker.configType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DockerConfigType {
    /// The image's own entrypoint and command.
    Default,
    /// Custom entrypoint, image command.
    CustomEntrypoint,
    /// Image entrypoint, custom command.
    CustomCommand,
    /// Both custom.
    CustomEntrypointCustomCommand,
}

/// `deployment.storage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// The writable ephemeral area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<EphemeralStorage>,
    /// Size of `/dev/shm` in MB (min 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    /// Storage class hint (ignored locally).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_hdb_storage: Option<bool>,
    /// Storage class hint (ignored locally).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_pd_ssd_storage: Option<bool>,
}

/// `storage.ephemeralStorage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EphemeralStorage {
    /// Size in MB (min 1024).
    pub storage_size: u64,
}

/// A port in a create or update body (§2.1, §2.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortSpec {
    /// Id of an existing port, to keep its settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// 1–8 characters.
    pub name: String,
    /// Port inside the sandbox, 1–65535.
    pub internal_port: u32,
    /// Protocol.
    pub protocol: PortProtocol,
    /// Whether the port gets a public DNS name (HTTP and HTTP/2 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// Custom domains (accepted, not served locally).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<serde_json::Value>>,
    /// Whether to skip the generated DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_nf_domain: Option<bool>,
    /// Security settings (accepted, not enforced locally).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<serde_json::Value>,
}

/// A port protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortProtocol {
    /// HTTP/1.1.
    #[serde(rename = "HTTP")]
    Http,
    /// HTTP/2; the guide also spells it `HTTP2`.
    #[serde(rename = "HTTP/2", alias = "HTTP2")]
    Http2,
    /// Raw TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
}

impl PortProtocol {
    /// Whether the protocol may be public (only HTTP and HTTP/2 may).
    pub fn can_be_public(self) -> bool {
        matches!(self, Self::Http | Self::Http2)
    }
}

/// `createOptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CreateOptions {
    /// Ids of volumes to attach at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes_to_attach: Option<Vec<String>>,
}

/// A service as `GET /services/{id}` returns it (§2.2). Also the `data` of create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Derived id.
    pub id: String,
    /// `/team/project/service`.
    #[serde(default)]
    pub app_id: String,
    /// Display name.
    pub name: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owning project.
    #[serde(default)]
    pub project_id: String,
    /// Always `deployment` here.
    #[serde(default = "deployment_type")]
    pub service_type: String,
    /// ISO-8601 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// ISO-8601 time of the last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// CI disabled (always true: no builds here).
    #[serde(rename = "disabledCI", default)]
    pub disabled_ci: bool,
    /// CD disabled.
    #[serde(rename = "disabledCD", default)]
    pub disabled_cd: bool,
    /// Plan and GPU billing.
    pub billing: Billing,
    /// Whether the service is paused.
    #[serde(default)]
    pub service_paused: bool,
    /// Deployment settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<ServiceDeployment>,
    /// Ports, as `GET /ports` shows them.
    #[serde(default)]
    pub ports: Vec<Port>,
    /// Where it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
    /// Rollout status.
    #[serde(default)]
    pub status: ServiceStatus,
}

fn deployment_type() -> String {
    "deployment".into()
}

/// `deployment` of the service read model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDeployment {
    /// Region id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Desired instances.
    #[serde(default)]
    pub instances: u32,
    /// The external image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRead>,
    /// Entrypoint and command overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<Docker>,
    /// Storage settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// GPU settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuSpec>,
    /// Grace period on stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
}

/// `deployment.external` of the read model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRead {
    /// Image reference.
    pub image_path: String,
    /// Registry, e.g. `dockerhub`.
    #[serde(default)]
    pub registry_provider: String,
    /// Whether credentials are needed.
    #[serde(default)]
    pub private_image: bool,
}

/// `cluster` of the read model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// Cluster id.
    pub id: String,
    /// Cluster name.
    pub name: String,
}

/// `status` of a service. `deployment` is optional in the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Rollout status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentStatus>,
}

/// `status.deployment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    /// Where the rollout stands.
    pub status: RolloutStatus,
    /// What the rollout does.
    pub reason: RolloutReason,
    /// ISO-8601 time of the last change of `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// `status.deployment.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloutStatus {
    /// Accepted, not started.
    Pending,
    /// Rolling out.
    InProgress,
    /// Rolled out: exec may be attempted.
    Completed,
    /// Terminal failure.
    Failed,
}

impl RolloutStatus {
    /// Whether polling can stop.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// `status.deployment.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloutReason {
    /// Instances are added or removed.
    Scaling,
    /// A new deployment rolls out.
    Deploying,
}

/// An item of `GET /services` (§2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSummary {
    /// Id.
    pub id: String,
    /// `/team/project/service`.
    pub app_id: String,
    /// Project id.
    pub project_id: String,
    /// Name.
    pub name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Always `deployment` here.
    pub service_type: String,
    /// CI disabled.
    #[serde(rename = "disabledCI")]
    pub disabled_ci: bool,
    /// CD disabled.
    #[serde(rename = "disabledCD")]
    pub disabled_cd: bool,
    /// Rollout status.
    pub status: ServiceStatus,
}

/// `data` of `GET /services`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceList {
    /// The page.
    pub services: Vec<ServiceSummary>,
}

/// Body of `POST /services/{id}/scale`, and the optional body of `/resume` (§2.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScaleRequest {
    /// New instance count; 0 scales to zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    /// New plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_plan: Option<String>,
    /// New storage settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    /// New grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
}

/// A port as `GET /services/{id}/ports` returns it (§2.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// Port id.
    pub id: String,
    /// Port name.
    pub name: String,
    /// Port inside the sandbox.
    pub internal_port: u32,
    /// Protocol.
    pub protocol: PortProtocol,
    /// Whether it is public.
    pub public: bool,
    /// Public DNS name, when public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
    /// Custom domains.
    #[serde(default)]
    pub domains: Vec<serde_json::Value>,
    /// Security settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<serde_json::Value>,
    /// Whether the generated name is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_nf_domain: Option<bool>,
}

/// Body of `POST /services/{id}/ports` and `data` of `GET`: the whole list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortList<P> {
    /// The ports.
    pub ports: Vec<P>,
}

/// An item of `GET /services/{id}/containers` (§2.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Instance name, usable as exec `instanceName`.
    pub name: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
    /// Instance state.
    pub status: ContainerStatus,
}

/// `data` of `GET /services/{id}/containers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerList {
    /// The page.
    pub containers: Vec<Container>,
}

/// Instance states (§2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContainerStatus {
    /// Running.
    TaskRunning,
    /// Booting.
    TaskStarting,
    /// Being prepared.
    TaskStaging,
    /// Being stopped.
    TaskKilling,
    /// Stopped.
    TaskKilled,
    /// Failed to start or crashed.
    TaskFailed,
    /// The main process ended.
    TaskFinished,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_guide_create_body() {
        let body = json!({
            "name": "sandbox-1a2b3c",
            "billing": { "deploymentPlan": "nf-compute-200" },
            "deployment": {
                "instances": 1,
                "docker": { "configType": "customCommand", "customCommand": "sleep infinity" },
                "external": { "imagePath": "ubuntu:22.04" },
                "storage": { "ephemeralStorage": { "storageSize": 2048 } }
            },
            "runtimeEnvironment": { "MY_VAR": "hello-world" },
            "createOptions": { "volumesToAttach": ["data-sandbox-1a2b3c"] },
            "healthChecks": []
        });
        let req: CreateDeployment = serde_json::from_value(body).unwrap();
        assert_eq!(
            req.deployment.docker.as_ref().unwrap().config_type,
            DockerConfigType::CustomCommand
        );
        assert_eq!(
            req.deployment.storage.unwrap().ephemeral_storage.unwrap().storage_size,
            2048
        );
        assert_eq!(req.runtime_environment.unwrap().get("MY_VAR"), Some("hello-world"));
    }

    #[test]
    fn env_vars_keep_order_and_the_last_duplicate_wins() {
        let env: EnvVars = serde_json::from_str(r#"{"B":"1","A":"2","B":"3"}"#).unwrap();
        assert_eq!(env.get("B"), Some("3"));
        assert_eq!(env.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["B", "A", "B"]);
        assert_eq!(
            serde_json::to_string(&EnvVars(vec![("X".into(), "y".into())])).unwrap(),
            r#"{"X":"y"}"#
        );
        assert!(serde_json::from_str::<EnvVars>(r#"{"A":1}"#).is_err());
    }

    #[test]
    fn status_values_use_the_wire_spelling() {
        let s = DeploymentStatus {
            status: RolloutStatus::InProgress,
            reason: RolloutReason::Scaling,
            last_transition_time: None,
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"status": "IN_PROGRESS", "reason": "SCALING"})
        );
        assert_eq!(
            serde_json::to_value(ContainerStatus::TaskRunning).unwrap(),
            json!("TASK_RUNNING")
        );
    }

    #[test]
    fn port_protocol_accepts_both_http2_spellings() {
        let a: PortProtocol = serde_json::from_value(json!("HTTP/2")).unwrap();
        let b: PortProtocol = serde_json::from_value(json!("HTTP2")).unwrap();
        assert_eq!(a, b);
        assert_eq!(serde_json::to_value(a).unwrap(), json!("HTTP/2"));
        assert!(!PortProtocol::Tcp.can_be_public());
    }

    #[test]
    fn summary_uses_upper_case_ci_cd() {
        let s = ServiceSummary {
            id: "a".into(),
            app_id: "/t/p/a".into(),
            project_id: "p".into(),
            name: "a".into(),
            tags: vec![],
            description: None,
            service_type: "deployment".into(),
            disabled_ci: true,
            disabled_cd: false,
            status: ServiceStatus::default(),
        };
        let v = serde_json::to_value(s).unwrap();
        assert_eq!(v["disabledCI"], json!(true));
        assert_eq!(v["disabledCD"], json!(false));
    }
}
