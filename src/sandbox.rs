//! What `Sandbox.create` sends, decided from its options, and what a service's status means.

use flankbox_protocol::names::derive_id;
use flankbox_protocol::service::{
    Billing, CreateDeployment, CreateOptions, DeploymentSpec, Docker, DockerConfigType, EnvVars, EphemeralStorage,
    External, GpuConfiguration, GpuSpec, PortProtocol, PortSpec, RolloutStatus, Storage,
};
use flankbox_protocol::volume::{AccessMode, CreateVolume, VolumeMount, VolumeSpec};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Image when none is given.
pub const DEFAULT_IMAGE: &str = "ubuntu:22.04";
/// Plan when none is given: 0.2 vCPU, 512 MiB.
pub const DEFAULT_PLAN: &str = "nf-compute-20";
/// Main process when none is given: base images exit at once otherwise.
pub const DEFAULT_COMMAND: &str = "sleep infinity";
/// Time `Sandbox.create` waits for the sandbox to be ready when not told otherwise.
pub const DEFAULT_CREATE_TIMEOUT_MS: u64 = 120_000;

/// `Sandbox.create` options (the serialisable part; `signal` and `onProgress` are handled by
/// the bindings).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxOptions {
    /// Image, e.g. `ubuntu:22.04`.
    pub image: Option<String>,
    /// Deployment plan, e.g. `nf-compute-200`.
    pub plan: Option<String>,
    /// Main process, one string run by the image's shell.
    pub command: Option<String>,
    /// Environment variables.
    pub env: Option<EnvVars>,
    /// Ephemeral storage, MB.
    pub ephemeral_storage_mb: Option<u64>,
    /// `/dev/shm`, MB.
    pub shm_mb: Option<u64>,
    /// A volume to create and attach.
    pub volume: Option<VolumeOptions>,
    /// GPUs.
    pub gpu: Option<GpuOptions>,
    /// Ports to expose.
    pub ports: Option<Vec<PortOptions>>,
    /// Service name; a random `sandbox-xxxxxxxxxxxx` otherwise.
    pub name: Option<String>,
    /// Extra tags.
    pub tags: Option<Vec<String>>,
    /// Lifetime: the local host (and the edge proxy) delete the sandbox after it. Sent as a
    /// `flankbox-expires-<unix seconds>` tag, which Northflank itself keeps as a plain tag.
    pub ttl_seconds: Option<u64>,
    /// How long to wait for readiness, ms.
    pub timeout_ms: Option<u64>,
}

/// `volume` of [`SandboxOptions`].
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeOptions {
    /// Size in MB. Required, as the types say and as the API requires `storageSize`: a volume
    /// without it is refused before any request, naming the field.
    pub size_mb: u64,
    /// Where it is mounted.
    pub mount_paths: Vec<String>,
    /// Its name; `data-<sandbox>` otherwise.
    pub name: Option<String>,
}

/// `gpu` of [`SandboxOptions`].
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuOptions {
    /// GPU type, e.g. `a100-80`.
    #[serde(rename = "type")]
    pub gpu_type: String,
    /// How many.
    pub count: Option<u32>,
    /// Time-sliced.
    pub timesliced: Option<bool>,
}

/// A port in [`SandboxOptions`] or `exposePort`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortOptions {
    /// Port inside the sandbox (`exposePort` passes it beside its options).
    #[serde(default)]
    pub port: u32,
    /// `HTTP` (default), `HTTP/2`, `TCP` or `UDP`.
    pub protocol: Option<String>,
    /// Public (default true for HTTP).
    pub public: Option<bool>,
    /// Port name; `p<port>` otherwise.
    pub name: Option<String>,
}

/// Host RAM of a GPU type, which the guide sets as `/dev/shm` (MB).
fn gpu_shm_mb(gpu_type: &str) -> Option<u64> {
    match gpu_type {
        "a100-80" => Some(174_080),
        "a100-40" => Some(87_040),
        "h100-80" => Some(174_080),
        _ => None,
    }
}

/// Parses a protocol name.
pub fn port_protocol(name: Option<&str>) -> Result<PortProtocol> {
    match name.unwrap_or("HTTP").to_ascii_uppercase().as_str() {
        "HTTP" => Ok(PortProtocol::Http),
        "HTTP/2" | "HTTP2" => Ok(PortProtocol::Http2),
        "TCP" => Ok(PortProtocol::Tcp),
        "UDP" => Ok(PortProtocol::Udp),
        other => Err(Error::Invalid(format!(
            "unknown port protocol {other:?}; use HTTP, HTTP/2, TCP or UDP"
        ))),
    }
}

/// A port spec from port options.
pub fn port_spec(p: &PortOptions) -> Result<PortSpec> {
    let protocol = port_protocol(p.protocol.as_deref())?;
    Ok(PortSpec {
        id: None,
        name: p.name.clone().unwrap_or_else(|| format!("p{}", p.port)),
        internal_port: p.port,
        protocol,
        public: Some(p.public.unwrap_or(protocol.can_be_public())),
        domains: None,
        disable_nf_domain: None,
        security: None,
    })
}

/// The URL that reaches an exposed port from its DNS name. Public HTTP ports are served over
/// the API's scheme: `https://` on Northflank (`*.code.run`), `http://` on a local host whose
/// API is plain HTTP (`*.localhost`). TCP and UDP ports get `tcp://` and `udp://` addresses.
pub fn port_url(base_url: &str, protocol: PortProtocol, dns: &str) -> String {
    // A byte search: `split_once("://")` alone brings in core's two-way string searcher (size).
    let host = dns
        .as_bytes()
        .windows(3)
        .position(|w| w == b"://")
        .map_or(dns, |i| &dns[i + 3..]);
    let scheme = match protocol {
        PortProtocol::Http | PortProtocol::Http2 if base_url.starts_with("http://") => "http",
        PortProtocol::Http | PortProtocol::Http2 => "https",
        PortProtocol::Tcp => "tcp",
        PortProtocol::Udp => "udp",
    };
    format!("{scheme}://{host}")
}

/// What `Sandbox.create` sends.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatePlan {
    /// The service id (derived from the name).
    pub service_id: String,
    /// The volume to create first, if any.
    pub volume: Option<CreateVolume>,
    /// The service, created with one instance (as the guide creates it), so that it starts
    /// with no scale after it.
    pub service: CreateDeployment,
}

impl CreatePlan {
    /// The volume id, if a volume is made.
    pub fn volume_id(&self) -> Option<String> {
        self.volume.as_ref().map(|v| derive_id(&v.name))
    }

    /// Attaches the volume that was made as `id`: an edge proxy names the volumes it makes
    /// itself, so the id is the create's answer, not the one derived from the asked name.
    pub fn attach_volume(&mut self, id: &str) {
        self.service.create_options = Some(CreateOptions {
            volumes_to_attach: Some(vec![id.to_string()]),
        });
    }
}

/// Decides the requests of `Sandbox.create`. `suffix` makes the default name unique; `now` is
/// the time in unix seconds (for `ttlSeconds`).
pub fn plan_create(opts: &SandboxOptions, suffix: &str, now: u64) -> Result<CreatePlan> {
    let name = opts.name.clone().unwrap_or_else(|| format!("sandbox-{suffix}"));
    let service_id = derive_id(&name);
    let volume = match &opts.volume {
        None => None,
        Some(v) => {
            let volume = CreateVolume {
                name: v.name.clone().unwrap_or_else(|| format!("data-{service_id}")),
                mounts: v
                    .mount_paths
                    .iter()
                    .map(|p| VolumeMount {
                        container_mount_path: p.clone(),
                        volume_mount_path: None,
                    })
                    .collect(),
                spec: VolumeSpec {
                    access_mode: AccessMode::ReadWriteOnce,
                    storage_class_name: None,
                    storage_size: v.size_mb,
                },
                attached_objects: None,
                tags: None,
            };
            Some(volume)
        }
    };
    let (plan, gpu) = match &opts.gpu {
        None => (opts.plan.clone().unwrap_or_else(|| DEFAULT_PLAN.into()), None),
        Some(g) => {
            let count = g.count.unwrap_or(1);
            let plan = opts
                .plan
                .clone()
                .unwrap_or_else(|| format!("nf-gpu-{}-{count}g", g.gpu_type));
            let spec = GpuSpec {
                enabled: Some(true),
                configuration: Some(GpuConfiguration {
                    gpu_type: g.gpu_type.clone(),
                    gpu_count: Some(count),
                    timesliced: Some(g.timesliced.unwrap_or(false)),
                }),
            };
            (plan, Some(spec))
        }
    };
    let shm = opts
        .shm_mb
        .or_else(|| opts.gpu.as_ref().and_then(|g| gpu_shm_mb(&g.gpu_type)));
    let storage = (opts.ephemeral_storage_mb.is_some() || shm.is_some()).then(|| Storage {
        ephemeral_storage: opts
            .ephemeral_storage_mb
            .map(|mb| EphemeralStorage { storage_size: mb }),
        shm_size: shm,
        ..Default::default()
    });
    let ports = opts
        .ports
        .as_ref()
        .map(|ps| ps.iter().map(port_spec).collect::<Result<Vec<_>>>())
        .transpose()?;
    let volume_id = volume.as_ref().map(|v| derive_id(&v.name));
    let service = CreateDeployment {
        name,
        description: None,
        tags: Some(
            std::iter::once("flankbox".to_string())
                .chain(opts.tags.iter().flatten().cloned())
                .chain(
                    opts.ttl_seconds
                        .map(|ttl| flankbox_protocol::lifetime::expiry_tag(now + ttl)),
                )
                .collect(),
        ),
        billing: Billing {
            deployment_plan: plan,
            gpu: None,
        },
        deployment: DeploymentSpec {
            instances: 1,
            external: Some(External {
                image_path: opts.image.clone().unwrap_or_else(|| DEFAULT_IMAGE.into()),
                credentials: None,
            }),
            internal: None,
            docker: Some(Docker {
                config_type: DockerConfigType::CustomCommand,
                custom_entrypoint: None,
                custom_command: Some(opts.command.clone().unwrap_or_else(|| DEFAULT_COMMAND.into())),
            }),
            storage,
            gpu,
            grace_period_seconds: None,
        },
        ports,
        runtime_environment: opts.env.clone(),
        create_options: volume_id.map(|id| CreateOptions {
            volumes_to_attach: Some(vec![id]),
        }),
    };
    // The server checks every field and names the one it refuses; the client does not repeat
    // those rules (they would double the package's size).
    Ok(CreatePlan {
        service_id,
        volume,
        service,
    })
}

/// What the client reads of a service (`GET /services/{id}`): every field optional, so an answer
/// with more or less in it still reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceState {
    /// `status.deployment.status`.
    #[serde(default)]
    pub status: Option<ServiceStatus>,
    /// `servicePaused`.
    #[serde(default)]
    pub service_paused: Option<bool>,
    /// `deployment.instances`.
    #[serde(default)]
    pub deployment: Option<Instances>,
}

/// `status` of [`ServiceState`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ServiceStatus {
    /// `deployment.status`.
    #[serde(default)]
    pub deployment: Option<RolloutView>,
}

/// `status.deployment` of [`ServiceState`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RolloutView {
    /// `PENDING`, `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    #[serde(default)]
    pub status: Option<String>,
}

/// `deployment` of [`ServiceState`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Instances {
    /// Instances wanted.
    #[serde(default)]
    pub instances: Option<u32>,
}

impl ServiceState {
    /// The rollout status, as the API names it.
    pub fn rollout(&self) -> Option<&str> {
        self.status.as_ref()?.deployment.as_ref()?.status.as_deref()
    }

    /// Whether the service is paused.
    pub fn paused(&self) -> bool {
        self.service_paused.unwrap_or(false)
    }

    /// Instances wanted.
    pub fn instances(&self) -> u32 {
        self.deployment.as_ref().and_then(|d| d.instances).unwrap_or(0)
    }

    /// Where the deployment stands.
    pub fn readiness(&self) -> Readiness {
        readiness(self.rollout(), self.paused(), self.instances())
    }
}

/// What the client reads of a created volume or service: its id, and through an edge proxy the
/// capability that stands in for a token from then on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Created {
    /// The id.
    #[serde(default)]
    pub id: Option<String>,
    /// An edge proxy's capability for the new sandbox.
    #[serde(default)]
    pub capability: Option<String>,
}

impl PortView {
    /// The spec that keeps this port as it is, for a `POST /ports` that replaces the list.
    pub fn keep(&self) -> Result<PortSpec> {
        let mut spec = port_spec(&PortOptions {
            port: self.internal_port,
            protocol: self.protocol.clone(),
            public: self.public,
            name: Some(self.name.clone()).filter(|n| !n.is_empty()),
        })?;
        spec.id = self.id.clone();
        Ok(spec)
    }
}

/// What the client reads of a port (`GET /services/{id}/ports`), to merge a new one in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortView {
    /// Port id.
    #[serde(default)]
    pub id: Option<String>,
    /// Port name.
    #[serde(default)]
    pub name: String,
    /// Port inside the sandbox.
    #[serde(default)]
    pub internal_port: u32,
    /// Protocol.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Public.
    #[serde(default)]
    pub public: Option<bool>,
    /// Its DNS name, once it has one.
    #[serde(default)]
    pub dns: Option<String>,
}

/// Where a deployment stands, for the waiting loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Exec may start.
    Ready,
    /// The deployment failed.
    Failed,
    /// Still going; the status, for progress reports.
    Waiting(String),
}

/// Reads a deployment's readiness from `status.deployment.status`, `servicePaused` and
/// `deployment.instances`. COMPLETED means ready only while an instance is wanted and the
/// service is not paused (a scale to 0 also ends COMPLETED).
pub fn readiness(status: Option<&str>, paused: bool, instances: u32) -> Readiness {
    match status.map(|s| (s, rollout_status(s))) {
        Some((_, Some(RolloutStatus::Completed))) if !paused && instances > 0 => Readiness::Ready,
        Some((_, Some(RolloutStatus::Failed))) => Readiness::Failed,
        Some((s, _)) => Readiness::Waiting(s.into()),
        None => Readiness::Waiting("UNKNOWN".into()),
    }
}

/// Whether a rollout has settled (after a pause or scale to 0): the protocol's rule.
pub fn settled(status: Option<&str>) -> bool {
    status.and_then(rollout_status).is_some_and(RolloutStatus::is_settled)
}

/// A rollout status by its API name, read by serde so the names are the protocol's; `None` for
/// one this side does not know.
fn rollout_status(name: &str) -> Option<RolloutStatus> {
    use serde::de::value::{Error as ValueError, StrDeserializer};
    RolloutStatus::deserialize(StrDeserializer::<ValueError>::new(name)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(v: serde_json::Value) -> SandboxOptions {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn port_urls_follow_the_api_scheme() {
        let nf = "https://api.northflank.com";
        let dns = "p01--app--proj--user-abc1.salvo.code.run";
        assert_eq!(port_url(nf, PortProtocol::Http, dns), format!("https://{dns}"));
        let local = "http://127.0.0.1:7420";
        let name = "p8080--app--proj.localhost:7420";
        assert_eq!(port_url(local, PortProtocol::Http2, name), format!("http://{name}"));
        assert_eq!(
            port_url(local, PortProtocol::Tcp, "127.0.0.1:4100"),
            "tcp://127.0.0.1:4100"
        );
        assert_eq!(
            port_url(nf, PortProtocol::Http, &format!("https://{dns}")),
            format!("https://{dns}")
        );
    }

    #[test]
    fn defaults_make_a_small_idle_ubuntu() {
        let p = plan_create(&SandboxOptions::default(), "abc123", 0).unwrap();
        assert_eq!(p.service_id, "sandbox-abc123");
        let body = serde_json::to_value(&p.service).unwrap();
        assert_eq!(body["billing"]["deploymentPlan"], "nf-compute-20");
        assert_eq!(body["deployment"]["instances"], 1, "created running, as the guide does");
        assert_eq!(body["deployment"]["external"]["imagePath"], "ubuntu:22.04");
        assert_eq!(body["deployment"]["docker"]["customCommand"], "sleep infinity");
        assert!(p.volume.is_none());
    }

    #[test]
    fn a_volume_is_created_first_and_attached() {
        let mut p = plan_create(
            &opts(json!({ "name": "Box", "volume": { "sizeMb": 2048, "mountPaths": ["/workspace"] } })),
            "x",
            0,
        )
        .unwrap();
        assert_eq!(p.volume_id().as_deref(), Some("data-box"));
        assert_eq!(
            p.service.create_options.clone().unwrap().volumes_to_attach.unwrap(),
            vec!["data-box".to_string()]
        );
        assert_eq!(p.volume.clone().unwrap().spec.storage_size, 2048);
        // As named by an edge proxy.
        p.attach_volume("fbx-0123456789-abc-xyz123");
        assert_eq!(
            p.service.create_options.unwrap().volumes_to_attach.unwrap(),
            ["fbx-0123456789-abc-xyz123"]
        );
    }

    #[test]
    fn options_are_read_strictly_where_the_types_say_so() {
        // A volume without its size is refused before any request, naming the field.
        let err = serde_json::from_value::<SandboxOptions>(json!({ "volume": { "mountPaths": ["/w"] } })).unwrap_err();
        assert!(err.to_string().contains("sizeMb"), "{err}");
        assert!(serde_json::from_value::<SandboxOptions>(json!({ "env": { "A": 1 } })).is_err());
        // null reads as absent; fields the core does not know (signal, onProgress) are skipped.
        let o = opts(json!({ "image": null, "onProgress": "f", "env": { "A": "1" } }));
        assert!(o.image.is_none());
        assert_eq!(o.env.unwrap().get("A"), Some("1"));
    }

    #[test]
    fn a_service_answer_reads_with_every_field_optional() {
        let s: ServiceState = serde_json::from_value(json!({
            "id": "x", "servicePaused": false, "deployment": { "instances": 1 },
            "status": { "deployment": { "status": "COMPLETED", "reason": "SCALING" } }
        }))
        .unwrap();
        assert_eq!(s.readiness(), Readiness::Ready);
        let bare: ServiceState = serde_json::from_value(json!({ "id": "x" })).unwrap();
        assert_eq!(bare.readiness(), Readiness::Waiting("UNKNOWN".into()));
        let port: PortView =
            serde_json::from_value(json!({ "internalPort": 80, "name": "p80", "protocol": "HTTP" })).unwrap();
        assert_eq!((port.internal_port, port.dns), (80, None));
    }

    #[test]
    fn gpus_pick_the_guides_plan_and_shm() {
        let p = plan_create(&opts(json!({ "gpu": { "type": "a100-80" } })), "x", 0).unwrap();
        assert_eq!(p.service.billing.deployment_plan, "nf-gpu-a100-80-1g");
        assert_eq!(p.service.deployment.storage.unwrap().shm_size, Some(174_080));
        assert_eq!(
            p.service.deployment.gpu.unwrap().configuration.unwrap().gpu_type,
            "a100-80"
        );
    }

    #[test]
    fn an_unknown_port_protocol_fails_before_any_request() {
        let err = plan_create(&opts(json!({ "ports": [{ "port": 80, "protocol": "FTP" }] })), "x", 0).unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(err.to_string().contains("FTP"));
    }

    #[test]
    fn a_lifetime_becomes_an_expiry_tag() {
        let p = plan_create(&opts(json!({ "ttlSeconds": 600, "tags": ["playground"] })), "x", 1000).unwrap();
        assert_eq!(
            p.service.tags.unwrap(),
            ["flankbox", "playground", "flankbox-expires-1600"]
        );
    }

    #[test]
    fn ports_default_to_public_http() {
        let s = port_spec(&PortOptions {
            port: 8080,
            protocol: None,
            public: None,
            name: None,
        })
        .unwrap();
        assert_eq!(
            (s.name.as_str(), s.protocol, s.public),
            ("p8080", PortProtocol::Http, Some(true))
        );
        let s = port_spec(&PortOptions {
            port: 5432,
            protocol: Some("tcp".into()),
            public: None,
            name: None,
        })
        .unwrap();
        assert_eq!(s.public, Some(false));
    }

    #[test]
    fn readiness_needs_completed_and_running() {
        assert_eq!(readiness(Some("COMPLETED"), false, 1), Readiness::Ready);
        assert_eq!(
            readiness(Some("COMPLETED"), false, 0),
            Readiness::Waiting("COMPLETED".into())
        );
        assert_eq!(
            readiness(Some("COMPLETED"), true, 1),
            Readiness::Waiting("COMPLETED".into())
        );
        assert_eq!(readiness(Some("FAILED"), false, 1), Readiness::Failed);
        assert_eq!(
            readiness(Some("IN_PROGRESS"), false, 1),
            Readiness::Waiting("IN_PROGRESS".into())
        );
        assert_eq!(readiness(None, false, 1), Readiness::Waiting("UNKNOWN".into()));
        assert!(settled(Some("COMPLETED")) && !settled(Some("PENDING")));
    }
}
