//! Volumes (contract §2.7).

use serde::{Deserialize, Serialize};

/// Body of `POST /volumes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateVolume {
    /// Name; the volume id is derived from it.
    pub name: String,
    /// Where the volume is mounted in each attached sandbox.
    pub mounts: Vec<VolumeMount>,
    /// Size and access mode.
    pub spec: VolumeSpec,
    /// Objects to attach at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_objects: Option<Vec<NfObject>>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// A mount of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// Absolute path in the sandbox; unique within the volume.
    pub container_mount_path: String,
    /// Optional sub-path of the volume to mount there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mount_path: Option<String>,
}

/// `spec` of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSpec {
    /// Access mode.
    pub access_mode: AccessMode,
    /// Storage class, e.g. `ssd` or `nf-multi-rw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Size in MB.
    pub storage_size: u64,
}

/// Volume access mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessMode {
    /// One sandbox at a time.
    ReadWriteOnce,
    /// Several sandboxes at once.
    ReadWriteMany,
}

/// A reference to a Northflank object, as in `attachedObjects` and `nfObject`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NfObject {
    /// Object id.
    pub id: String,
    /// `service` or `job`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A volume as the API returns it. `mounts` is not part of the read model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Derived id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Size and access mode.
    pub spec: VolumeSpec,
    /// Attached objects.
    #[serde(default)]
    pub attached_objects: Vec<NfObject>,
    /// E.g. `BOUND` when attached, `AVAILABLE` otherwise.
    pub status: String,
    /// ISO-8601 creation time.
    pub created_at: String,
    /// ISO-8601 time of the last change.
    pub updated_at: String,
}

/// Body of `POST /volumes/{id}/attach` and `/detach`. `owningObject` is the legacy spelling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AttachRequest {
    /// The object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nf_object: Option<NfObject>,
    /// Legacy spelling of `nfObject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owning_object: Option<NfObject>,
}

impl AttachRequest {
    /// The object, from whichever spelling was sent.
    pub fn object(&self) -> Option<&NfObject> {
        self.nf_object.as_ref().or(self.owning_object.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_guide_volume() {
        let v: CreateVolume = serde_json::from_value(json!({
            "name": "data-sandbox-1",
            "mounts": [{ "containerMountPath": "/workspace" }],
            "spec": { "accessMode": "ReadWriteMany", "storageClassName": "nf-multi-rw", "storageSize": 10240 }
        }))
        .unwrap();
        assert_eq!(v.spec.access_mode, AccessMode::ReadWriteMany);
        assert_eq!(v.mounts[0].container_mount_path, "/workspace");
    }

    #[test]
    fn attach_accepts_the_legacy_spelling() {
        let a: AttachRequest =
            serde_json::from_value(json!({ "owningObject": { "id": "svc", "type": "service" } })).unwrap();
        assert_eq!(a.object().unwrap().id, "svc");
    }
}
