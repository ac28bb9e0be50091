//! Image names → root filesystems.
//!
//! No registry can be reached here, so images are mapped, not pulled:
//! - common Debian-family images (`ubuntu:*`, `debian:*`, `python:*`, `node:*`, `gcc:*`,
//!   `bash:*`, `buildpack-deps:*`) run on a read-only view of the host's `/usr` with a trimmed,
//!   generated `/etc`, so python3, node, bash and gcc work inside;
//! - `--image NAME=DIR` maps a name (with or without tag) to a root filesystem directory,
//!   e.g. one made with debootstrap;
//! - anything else is refused at create time with Northflank's 400
//!   "Unable to verify external image".

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::mounts::{self, ImageRoot};

/// Repositories served by the host view.
pub const HOST_VIEW_REPOSITORIES: &[&str] = &["ubuntu", "debian", "python", "node", "gcc", "bash", "buildpack-deps"];

/// Host paths under `/usr` hidden from sandboxes (the host's own tools live there).
const HIDDEN: &[&str] = &["/usr/local"];

/// Entries of the host's `/etc` copied into the sandbox's, when world-readable.
const ETC_COPIED: &[&str] = &[
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "environment",
    "gai.conf",
    "host.conf",
    "inputrc",
    "issue",
    "java-17-openjdk",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "login.defs",
    "magic",
    "magic.mime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "perl",
    "profile",
    "profile.d",
    "protocols",
    "python3",
    "python3.11",
    "services",
    "shells",
    "skel",
    "ssl",
    "timezone",
    "vim",
    "gitconfig",
];

/// Generated `/etc` files: no host accounts, no resolver (there is no network).
const ETC_GENERATED: &[(&str, &str)] = &[
    ("passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nsandbox:x:1000:1000:sandbox:/home/sandbox:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
    ("group", "root:x:0:\ndaemon:x:1:\ntty:x:5:\nusers:x:100:\nsandbox:x:1000:\nnogroup:x:65534:\n"),
    ("hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    ("resolv.conf", "# sandboxes have no network\n"),
    ("hostname", "sandbox\n"),
];

/// Users of the generated `/etc/passwd`: name, uid, gid, home.
pub const USERS: &[(&str, u32, u32, &str)] = &[
    ("root", 0, 0, "/root"),
    ("daemon", 1, 1, "/usr/sbin"),
    ("sandbox", 1000, 1000, "/home/sandbox"),
    ("nobody", 65534, 65534, "/nonexistent"),
];
/// Groups of the generated `/etc/group`.
pub const GROUPS: &[(&str, u32)] = &[
    ("root", 0),
    ("daemon", 1),
    ("tty", 5),
    ("users", 100),
    ("sandbox", 1000),
    ("nogroup", 65534),
];

/// The image catalogue of one host.
#[derive(Debug, Clone)]
pub struct ImageCatalog {
    host_view: ImageRoot,
    mapped: BTreeMap<String, PathBuf>,
}

impl ImageCatalog {
    /// Prepares the host view's `/etc` under `data_dir/images/host/etc` and adds `mapped`
    /// (`NAME=DIR` pairs), each given the mount points it lacks.
    pub fn prepare(data_dir: &Path, mapped: BTreeMap<String, PathBuf>) -> io::Result<Self> {
        let etc = data_dir.join("images/host/etc");
        build_etc(Path::new("/etc"), &etc)?;
        for (name, dir) in &mapped {
            if !dir.join("usr").is_dir() && !dir.join("bin").exists() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("image {name}: {} does not look like a root filesystem", dir.display()),
                ));
            }
            for point in mounts::dir_image_mount_points() {
                let path = dir.join(point);
                let made = mounts::existing_mount_point(&path).and_then(|there| match there {
                    true => Ok(()),
                    false => fs::DirBuilder::new().mode(0o755).create(&path),
                });
                made.map_err(|e| io::Error::new(e.kind(), format!("image {name}: {}: {e}", path.display())))?;
            }
        }
        Ok(Self {
            host_view: ImageRoot::HostView {
                usr: "/usr".into(),
                etc,
                hidden: HIDDEN.iter().map(|s| s.to_string()).collect(),
            },
            mapped,
        })
    }

    /// The host view: the root of every Debian-family image.
    pub fn host_view(&self) -> &ImageRoot {
        &self.host_view
    }

    /// The root filesystem for `image_path`, or the reason it has none.
    pub fn resolve(&self, image_path: &str) -> Result<ImageRoot, String> {
        let (repository, tag) = parse_reference(image_path);
        let with_tag = format!("{repository}:{tag}");
        if let Some(dir) = self
            .mapped
            .get(&with_tag)
            .or_else(|| self.mapped.get(&repository))
            .or_else(|| self.mapped.get(image_path))
        {
            return Ok(ImageRoot::Dir(dir.clone()));
        }
        if HOST_VIEW_REPOSITORIES.contains(&repository.as_str()) {
            return Ok(self.host_view.clone());
        }
        let mut known: Vec<String> = HOST_VIEW_REPOSITORIES.iter().map(|r| format!("{r}:*")).collect();
        known.extend(self.mapped.keys().cloned());
        Err(format!(
            "Unable to verify external image {image_path:?}: this host has no registry access and maps only {}",
            known.join(", ")
        ))
    }
}

/// Splits an image reference into its Docker Hub repository and tag, dropping the registry,
/// `library/` and any digest: `docker.io/library/ubuntu:22.04` → (`ubuntu`, `22.04`).
pub fn parse_reference(image: &str) -> (String, String) {
    let without_digest = image.split('@').next().unwrap_or(image);
    let mut parts: Vec<&str> = without_digest.split('/').collect();
    if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
        let registry = parts.remove(0);
        if !matches!(registry, "docker.io" | "index.docker.io" | "registry-1.docker.io") {
            parts.insert(0, registry);
        }
    }
    if parts.len() == 2 && parts[0] == "library" {
        parts.remove(0);
    }
    let joined = parts.join("/");
    let (repository, tag) = match joined.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
        _ => (joined.clone(), "latest".to_string()),
    };
    (repository.to_ascii_lowercase(), tag)
}

/// Builds a fresh `/etc` at `dest` from the host's (`src`), copying only world-readable entries
/// of [`ETC_COPIED`] and generating the rest.
fn build_etc(src: &Path, dest: &Path) -> io::Result<()> {
    if dest.exists() {
        fs::remove_dir_all(dest)?;
    }
    fs::create_dir_all(dest)?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755))?;
    for name in ETC_COPIED {
        let from = src.join(name);
        if fs::symlink_metadata(&from).is_ok() {
            copy_public(&from, &dest.join(name), 0)?;
        }
    }
    for (name, content) in ETC_GENERATED {
        let path = dest.join(name);
        fs::write(&path, content)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

/// Copies a file, symlink or directory tree, skipping anything others may not read (keys).
fn copy_public(from: &Path, to: &Path, depth: usize) -> io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else if ft.is_dir() {
        if meta.mode() & 0o005 != 0o005 || depth > 8 {
            return Ok(());
        }
        fs::create_dir(to)?;
        fs::set_permissions(to, fs::Permissions::from_mode(0o755))?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_public(&entry.path(), &to.join(entry.file_name()), depth + 1)?;
        }
    } else if ft.is_file() && meta.mode() & 0o004 != 0 {
        fs::copy(from, to)?;
        fs::set_permissions(to, fs::Permissions::from_mode(0o644 | (meta.mode() & 0o111)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let cases = [
            ("ubuntu:22.04", ("ubuntu", "22.04")),
            ("ubuntu", ("ubuntu", "latest")),
            ("docker.io/library/debian:bookworm", ("debian", "bookworm")),
            ("library/python:3.12-slim", ("python", "3.12-slim")),
            (
                "quay.io/jupyter/pytorch-notebook:cuda12",
                ("quay.io/jupyter/pytorch-notebook", "cuda12"),
            ),
            ("localhost:5000/app", ("localhost:5000/app", "latest")),
            ("node@sha256:abc", ("node", "latest")),
        ];
        for (input, (repo, tag)) in cases {
            assert_eq!(parse_reference(input), (repo.to_string(), tag.to_string()), "{input}");
        }
    }

    #[test]
    fn maps_known_images_and_refuses_others() {
        let data = tempfile::tempdir().unwrap();
        let rootfs = tempfile::tempdir().unwrap();
        fs::create_dir(rootfs.path().join("usr")).unwrap();
        let catalog = ImageCatalog::prepare(
            data.path(),
            [("myimg:1".to_string(), rootfs.path().to_path_buf())].into(),
        )
        .unwrap();
        assert!(matches!(
            catalog.resolve("ubuntu:22.04"),
            Ok(ImageRoot::HostView { .. })
        ));
        assert!(matches!(
            catalog.resolve("docker.io/library/python:3.12"),
            Ok(ImageRoot::HostView { .. })
        ));
        assert_eq!(
            catalog.resolve("myimg:1"),
            Ok(ImageRoot::Dir(rootfs.path().to_path_buf()))
        );
        for point in ["proc", "dev", "tmp", "workspace"] {
            assert!(
                rootfs.path().join(point).is_dir(),
                "the host made its mount point {point}"
            );
        }
        let err = catalog.resolve("quay.io/jupyter/pytorch-notebook:cuda12").unwrap_err();
        assert!(err.starts_with("Unable to verify external image"), "{err}");
        assert!(err.contains("ubuntu:*"), "{err}");
    }

    #[test]
    fn the_generated_etc_has_no_host_secrets() {
        let data = tempfile::tempdir().unwrap();
        ImageCatalog::prepare(data.path(), BTreeMap::new()).unwrap();
        let etc = data.path().join("images/host/etc");
        assert!(fs::read_to_string(etc.join("passwd"))
            .unwrap()
            .starts_with("root:x:0:0"));
        assert!(!etc.join("shadow").exists());
        assert!(!etc.join("ssl/private").exists());
        assert_eq!(
            fs::read_to_string(etc.join("resolv.conf")).unwrap(),
            "# sandboxes have no network\n"
        );
    }
}
