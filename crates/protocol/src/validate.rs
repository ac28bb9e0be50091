//! Request checks shared by the host (which answers 400) and the client (which fails early).
//!
//! Each check names the offending field, so the error a user sees says what to fix.

use std::collections::BTreeSet;

use crate::names::{check_port_name, check_resource_name};
use crate::plans::{find_plan, parse_gpu_plan};
use crate::service::{CreateDeployment, DockerConfigType, PortSpec, ScaleRequest, Storage};
use crate::volume::CreateVolume;

/// Smallest ephemeral storage, in MB.
pub const EPHEMERAL_MIN_MB: u64 = 1024;
/// Largest ephemeral storage accepted, in MB (1 TiB).
pub const EPHEMERAL_MAX_MB: u64 = 1024 * 1024;
/// Smallest `/dev/shm`, in MB.
pub const SHM_MIN_MB: u64 = 64;
/// Largest `/dev/shm` accepted, in MB.
pub const SHM_MAX_MB: u64 = 1024 * 1024;
/// Smallest volume, in MB.
pub const VOLUME_MIN_MB: u64 = 1024;
/// Largest volume accepted, in MB (1 TiB).
pub const VOLUME_MAX_MB: u64 = 1024 * 1024;
/// Grace period bounds, in seconds.
pub const GRACE_PERIOD_SECONDS: std::ops::RangeInclusive<u32> = 15..=600;

/// A request field that fails a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Dotted path of the field, e.g. `billing.deploymentPlan`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn check(ok: bool, field: &str, message: impl FnOnce() -> String) -> Result<(), ValidationError> {
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(field, message()))
    }
}

/// Checks a create-deployment body. Plans must be known CPU plans or well-formed GPU plans;
/// whether a GPU exists is the host's business.
pub fn check_create_deployment(req: &CreateDeployment) -> Result<(), ValidationError> {
    check_resource_name(&req.name).map_err(|m| ValidationError::new("name", m))?;
    if let Some(d) = &req.description {
        check(d.chars().count() <= 200, "description", || {
            "must be at most 200 characters".into()
        })?;
    }
    check_plan(&req.billing.deployment_plan, "billing.deploymentPlan")?;
    let d = &req.deployment;
    if d.internal.is_some() {
        return Err(ValidationError::new(
            "deployment.internal",
            "Northflank builds are not available here; use deployment.external.imagePath",
        ));
    }
    match &d.external {
        None => return Err(ValidationError::new("deployment.external.imagePath", "is required")),
        Some(e) => check(
            !e.image_path.trim().is_empty() && !e.image_path.contains(char::is_whitespace),
            "deployment.external.imagePath",
            || format!("{:?} is not an image reference", e.image_path),
        )?,
    }
    if let Some(docker) = &d.docker {
        let needs_entrypoint = matches!(
            docker.config_type,
            DockerConfigType::CustomEntrypoint | DockerConfigType::CustomEntrypointCustomCommand
        );
        let needs_command = matches!(
            docker.config_type,
            DockerConfigType::CustomCommand | DockerConfigType::CustomEntrypointCustomCommand
        );
        check(
            !needs_entrypoint
                || docker
                    .custom_entrypoint
                    .as_deref()
                    .is_some_and(|s| !s.trim().is_empty()),
            "deployment.docker.customEntrypoint",
            || "is required by this configType".into(),
        )?;
        check(
            !needs_command || docker.custom_command.as_deref().is_some_and(|s| !s.trim().is_empty()),
            "deployment.docker.customCommand",
            || "is required by this configType".into(),
        )?;
        for (field, value) in [
            ("deployment.docker.customEntrypoint", &docker.custom_entrypoint),
            ("deployment.docker.customCommand", &docker.custom_command),
        ] {
            if let Some(v) = value {
                check(!v.contains('\0'), field, || "must not contain NUL".into())?;
                check(shlex::split(v).is_some(), field, || "has unbalanced quotes".into())?;
            }
        }
    }
    if let Some(storage) = &d.storage {
        check_storage(storage, "deployment.storage")?;
    }
    if let Some(grace) = d.grace_period_seconds {
        check_grace(grace, "deployment.gracePeriodSeconds")?;
    }
    for (placement, gpu) in [("billing.gpu", &req.billing.gpu), ("deployment.gpu", &d.gpu)] {
        if let Some(config) = gpu.as_ref().and_then(|g| g.configuration.as_ref()) {
            check(
                !config.gpu_type.trim().is_empty(),
                &format!("{placement}.configuration.gpuType"),
                || "is required".into(),
            )?;
            check(
                config.gpu_count != Some(0),
                &format!("{placement}.configuration.gpuCount"),
                || "must be at least 1".into(),
            )?;
        }
    }
    if let Some(ports) = &req.ports {
        check_ports(ports, "ports")?;
    }
    if let Some(env) = &req.runtime_environment {
        for (key, value) in env.iter() {
            check_env_key(key)?;
            check(!value.contains('\0'), &format!("runtimeEnvironment.{key}"), || {
                "must not contain NUL".into()
            })?;
        }
    }
    if let Some(ids) = req.create_options.as_ref().and_then(|o| o.volumes_to_attach.as_ref()) {
        for id in ids {
            check(
                crate::names::is_plausible_id(id),
                "createOptions.volumesToAttach",
                || format!("{id:?} is not a volume id"),
            )?;
        }
    }
    Ok(())
}

/// The GPU a create body asks for, from any of its three places (plan, billing, deployment).
pub fn requested_gpu(req: &CreateDeployment) -> Option<(String, u32)> {
    for gpu in [&req.deployment.gpu, &req.billing.gpu].into_iter().flatten() {
        if gpu.enabled != Some(false) {
            if let Some(c) = &gpu.configuration {
                return Some((c.gpu_type.clone(), c.gpu_count.unwrap_or(1)));
            }
            if gpu.enabled == Some(true) {
                return Some(("unspecified".into(), 1));
            }
        }
    }
    parse_gpu_plan(&req.billing.deployment_plan).map(|p| (p.gpu_type, p.count))
}

/// Checks a plan id: a known CPU plan, or a well-formed GPU plan.
pub fn check_plan(plan: &str, field: &str) -> Result<(), ValidationError> {
    check(
        find_plan(plan).is_some() || parse_gpu_plan(plan).is_some(),
        field,
        || format!("unknown deployment plan {plan:?}; GET /v1/plans lists the plans"),
    )
}

fn check_storage(storage: &Storage, field: &str) -> Result<(), ValidationError> {
    if let Some(e) = storage.ephemeral_storage {
        check(
            (EPHEMERAL_MIN_MB..=EPHEMERAL_MAX_MB).contains(&e.storage_size),
            &format!("{field}.ephemeralStorage.storageSize"),
            || {
                format!(
                    "must be between {EPHEMERAL_MIN_MB} and {EPHEMERAL_MAX_MB} MB, got {}",
                    e.storage_size
                )
            },
        )?;
    }
    if let Some(shm) = storage.shm_size {
        check(
            (SHM_MIN_MB..=SHM_MAX_MB).contains(&shm),
            &format!("{field}.shmSize"),
            || format!("must be between {SHM_MIN_MB} and {SHM_MAX_MB} MB, got {shm}"),
        )?;
    }
    Ok(())
}

fn check_grace(grace: u32, field: &str) -> Result<(), ValidationError> {
    check(GRACE_PERIOD_SECONDS.contains(&grace), field, || {
        format!("must be between 15 and 600 seconds, got {grace}")
    })
}

fn check_env_key(key: &str) -> Result<(), ValidationError> {
    let ok = !key.is_empty()
        && key.len() <= 256
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
        && !key.as_bytes()[0].is_ascii_digit();
    check(ok, &format!("runtimeEnvironment.{key}"), || {
        "keys are letters, digits, '_', '-', '.' and '/', not starting with a digit".into()
    })
}

/// Checks a scale (or resume) body.
pub fn check_scale(req: &ScaleRequest) -> Result<(), ValidationError> {
    if let Some(plan) = &req.deployment_plan {
        check_plan(plan, "deploymentPlan")?;
    }
    if let Some(storage) = &req.storage {
        check_storage(storage, "storage")?;
    }
    if let Some(grace) = req.grace_period_seconds {
        check_grace(grace, "gracePeriodSeconds")?;
    }
    Ok(())
}

/// Checks a port list: names and internal ports unique, only HTTP public.
pub fn check_ports(ports: &[PortSpec], field: &str) -> Result<(), ValidationError> {
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("{field}[{i}]");
        check_port_name(&p.name).map_err(|m| ValidationError::new(format!("{at}.name"), m))?;
        check(
            (1..=65535).contains(&p.internal_port),
            &format!("{at}.internalPort"),
            || format!("must be between 1 and 65535, got {}", p.internal_port),
        )?;
        check(
            !p.public.unwrap_or(false) || p.protocol.can_be_public(),
            &format!("{at}.public"),
            || "only HTTP and HTTP/2 ports can be public".into(),
        )?;
        check(names.insert(p.name.as_str()), &format!("{at}.name"), || {
            format!("duplicate port name {:?}", p.name)
        })?;
        check(numbers.insert(p.internal_port), &format!("{at}.internalPort"), || {
            format!("duplicate internal port {}", p.internal_port)
        })?;
    }
    Ok(())
}

/// Checks a create-volume body.
pub fn check_create_volume(req: &CreateVolume) -> Result<(), ValidationError> {
    check_resource_name(&req.name).map_err(|m| ValidationError::new("name", m))?;
    check(!req.mounts.is_empty(), "mounts", || {
        "at least one mount is required".into()
    })?;
    let mut paths = BTreeSet::new();
    for (i, m) in req.mounts.iter().enumerate() {
        let field = format!("mounts[{i}].containerMountPath");
        check_mount_path(&m.container_mount_path, &field)?;
        check(
            paths.insert(m.container_mount_path.trim_end_matches('/')),
            &field,
            || format!("duplicate mount path {:?}", m.container_mount_path),
        )?;
        if let Some(sub) = &m.volume_mount_path {
            let ok = !sub.contains('\0') && sub.split('/').all(|part| part != "..");
            check(ok, &format!("mounts[{i}].volumeMountPath"), || {
                format!("{sub:?} must be a sub-path of the volume")
            })?;
        }
    }
    check(
        (VOLUME_MIN_MB..=VOLUME_MAX_MB).contains(&req.spec.storage_size),
        "spec.storageSize",
        || {
            format!(
                "must be between {VOLUME_MIN_MB} and {VOLUME_MAX_MB} MB, got {}",
                req.spec.storage_size
            )
        },
    )
}

/// Paths under which a volume may not be mounted: they hold the system the sandbox runs on.
const RESERVED_MOUNT_PATHS: &[&str] = &[
    "/", "/proc", "/dev", "/sys", "/usr", "/etc", "/bin", "/lib", "/lib64", "/sbin",
];

/// Checks a `containerMountPath`: absolute, normalised, not a system path.
pub fn check_mount_path(path: &str, field: &str) -> Result<(), ValidationError> {
    let normalised = path.len() > 1
        && path.starts_with('/')
        && !path.ends_with('/')
        && !path.contains('\0')
        && path.len() <= 255
        && path.split('/').skip(1).all(|p| !p.is_empty() && p != "." && p != "..");
    check(normalised, field, || {
        format!("{path:?} must be an absolute path without '.', '..' or empty parts")
    })?;
    let reserved = RESERVED_MOUNT_PATHS
        .iter()
        .any(|r| path == *r || (*r != "/" && path.starts_with(&format!("{r}/"))));
    check(!reserved, field, || {
        format!("{path:?} is a system path and cannot hold a volume")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn guide_body() -> serde_json::Value {
        json!({
            "name": "sandbox-1a2b3c",
            "billing": { "deploymentPlan": "nf-compute-200" },
            "deployment": {
                "instances": 1,
                "docker": { "configType": "customCommand", "customCommand": "sleep infinity" },
                "external": { "imagePath": "ubuntu:22.04" },
                "storage": { "ephemeralStorage": { "storageSize": 2048 } }
            },
            "runtimeEnvironment": { "MY_VAR": "hello-world" }
        })
    }

    fn check_with(patch: impl FnOnce(&mut serde_json::Value)) -> Result<(), ValidationError> {
        let mut body = guide_body();
        patch(&mut body);
        check_create_deployment(&serde_json::from_value(body).unwrap())
    }

    #[test]
    fn the_guide_body_passes() {
        assert_eq!(check_with(|_| {}), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        type Patch = Box<dyn FnOnce(&mut serde_json::Value)>;
        let cases: Vec<(&str, Patch)> = vec![
            (
                "billing.deploymentPlan",
                Box::new(|b| b["billing"]["deploymentPlan"] = json!("nf-compute-3")),
            ),
            ("name", Box::new(|b| b["name"] = json!("9lives"))),
            (
                "deployment.storage.ephemeralStorage.storageSize",
                Box::new(|b| b["deployment"]["storage"]["ephemeralStorage"]["storageSize"] = json!(10)),
            ),
            (
                "deployment.storage.shmSize",
                Box::new(|b| b["deployment"]["storage"]["shmSize"] = json!(1)),
            ),
            (
                "deployment.docker.customCommand",
                Box::new(|b| b["deployment"]["docker"]["customCommand"] = json!("")),
            ),
            (
                "deployment.external.imagePath",
                Box::new(|b| {
                    b["deployment"].as_object_mut().unwrap().remove("external");
                }),
            ),
            (
                "deployment.gracePeriodSeconds",
                Box::new(|b| b["deployment"]["gracePeriodSeconds"] = json!(3)),
            ),
            (
                "runtimeEnvironment.1BAD",
                Box::new(|b| b["runtimeEnvironment"]["1BAD"] = json!("x")),
            ),
            (
                "ports[0].public",
                Box::new(|b| {
                    b["ports"] = json!([{ "name": "db", "internalPort": 5432, "protocol": "TCP", "public": true }])
                }),
            ),
            (
                "ports[1].name",
                Box::new(
                    |b| b["ports"] = json!([{ "name": "a", "internalPort": 1, "protocol": "HTTP" }, { "name": "a", "internalPort": 2, "protocol": "HTTP" }]),
                ),
            ),
        ];
        for (field, patch) in cases {
            let err = check_with(patch).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn the_unknown_plan_is_named_in_the_message() {
        let err = check_with(|b| b["billing"]["deploymentPlan"] = json!("nf-compute-3")).unwrap_err();
        assert!(err.to_string().contains("\"nf-compute-3\""), "{err}");
    }

    #[test]
    fn finds_the_gpu_in_any_placement() {
        let body = |patch: serde_json::Value| -> CreateDeployment {
            let mut b = guide_body();
            json_patch(&mut b, patch);
            serde_json::from_value(b).unwrap()
        };
        assert_eq!(requested_gpu(&body(json!({}))), None);
        assert_eq!(
            requested_gpu(&body(json!({"billing": {"deploymentPlan": "nf-gpu-a100-80-1g"}}))),
            Some(("a100-80".into(), 1))
        );
        assert_eq!(
            requested_gpu(&body(
                json!({"deployment": {"gpu": {"enabled": true, "configuration": {"gpuType": "h100-80", "gpuCount": 2}}}})
            )),
            Some(("h100-80".into(), 2))
        );
        assert_eq!(
            requested_gpu(&body(
                json!({"billing": {"gpu": {"enabled": false, "configuration": {"gpuType": "h100-80"}}}})
            )),
            None
        );
    }

    fn json_patch(target: &mut serde_json::Value, patch: serde_json::Value) {
        if let (Some(t), serde_json::Value::Object(p)) = (target.as_object_mut(), patch.clone()) {
            for (k, v) in p {
                json_patch(t.entry(k).or_insert(serde_json::Value::Null), v);
            }
        } else {
            *target = patch;
        }
    }

    #[test]
    fn volume_rules() {
        let vol = |path: &str, size: u64| -> CreateVolume {
            serde_json::from_value(json!({
                "name": "data-1", "mounts": [{ "containerMountPath": path }],
                "spec": { "accessMode": "ReadWriteOnce", "storageSize": size }
            }))
            .unwrap()
        };
        assert_eq!(check_create_volume(&vol("/workspace", 10240)), Ok(()));
        assert_eq!(
            check_create_volume(&vol("/workspace", 10)).unwrap_err().field,
            "spec.storageSize"
        );
        for bad in ["workspace", "/a/../etc", "/proc/x", "/", "/usr", "/a//b", "/a/"] {
            assert_eq!(
                check_create_volume(&vol(bad, 10240)).unwrap_err().field,
                "mounts[0].containerMountPath",
                "{bad}"
            );
        }
    }
}
