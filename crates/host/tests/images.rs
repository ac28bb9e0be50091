//! Root filesystems: a directory image (`--image NAME=DIR`) beside the host view, through the
//! warm pool. The pool assembles its sandboxes' roots ahead of time from the latest create's
//! image, so a service of another image must boot from its own root, never from the pool's.

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use common::leaks::idle_agents;
use common::{require_root, TestHost};
use serde_json::json;

/// The programs the directory image holds (with their libraries): the main process runs
/// `sh -c "sleep infinity"`, the test runs `cat`.
const PROGRAMS: &[&str] = &["/usr/bin/sh", "/usr/bin/sleep", "/usr/bin/cat"];

/// A small root filesystem made of the host's own programs, and a file only it has.
fn mini_rootfs(dir: &Path) {
    std::fs::create_dir_all(dir.join("usr")).unwrap();
    for name in ["bin", "lib", "lib64", "sbin"] {
        std::fs::create_dir_all(dir.join("usr").join(name)).unwrap();
        symlink(format!("usr/{name}"), dir.join(name)).unwrap();
    }
    for program in PROGRAMS {
        let ldd = std::process::Command::new("ldd").arg(program).output().unwrap();
        let libraries: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|word| word.starts_with('/'))
            .map(str::to_string)
            .collect();
        for file in libraries.iter().map(String::as_str).chain([*program]) {
            let copy = dir.join(file.trim_start_matches('/'));
            std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
            // Follows the host's links (`/usr/bin/sh` is dash): the copy is a plain file.
            std::fs::copy(file, &copy).unwrap();
        }
    }
    std::fs::write(dir.join("marker"), "from the directory image\n").unwrap();
    // The sandbox resolves the image as its own root user, which is no user of the host's.
    for path in [dir, dir.parent().unwrap()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// What a warm sandbox's root is made of, as its agent's mount table shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Root {
    /// A tmpfs: the host view.
    HostView,
    /// A bind of the directory image.
    Directory,
}

/// Waits until the pool holds a sandbox whose root is `kind`, assembled to its last step (the
/// read-only `/proc/sys`), and gives the host a moment to put it in the pool.
async fn pool_holds(host: &TestHost, kind: Root) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let root_of = |pid: i32| {
        let table = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
        // Mount point is the 5th field; the filesystem type follows the " - " separator.
        let at = |suffix: &str| {
            table
                .lines()
                .find(|l| l.split(' ').nth(4).is_some_and(|at| at.ends_with(suffix)))
        };
        at("/root/proc/sys")?;
        let fs_type = at("/root")?.split(" - ").nth(1)?.split(' ').next()?;
        Some(if fs_type == "tmpfs" {
            Root::HostView
        } else {
            Root::Directory
        })
    };
    while !idle_agents(host.pid())
        .into_iter()
        .any(|pid| root_of(pid) == Some(kind))
    {
        assert!(
            Instant::now() < deadline,
            "the warm pool did not prepare a {kind:?} root"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn marker(host: &TestHost, service: &str) -> (Option<i64>, String) {
    let r = host
        .exec(
            "images",
            service,
            json!({ "command": ["cat", "/marker"], "shell": "none" }),
            &[],
        )
        .await;
    (r.exit_code, r.stdout)
}

#[tokio::test]
async fn a_directory_image_boots_from_its_own_root_whatever_the_pool_holds() {
    require_root();
    let images = tempfile::tempdir().unwrap();
    let rootfs = images.path().join("mini");
    mini_rootfs(&rootfs);
    let mapping = format!("mini={}", rootfs.display());
    let host = TestHost::start_with(&["--image", &mapping, "--warm-pool", "1"]);
    let mini = json!({ "deployment": { "external": { "imagePath": "mini:latest" } } });

    // The pool fills after the first create. Each later create comes once it holds a sandbox
    // for the image before, so a service of the other image is offered the wrong one.
    let ubuntu = host.sandbox("images", "ubuntu-1", json!({})).await;
    let (code, out) = marker(&host, &ubuntu).await;
    assert_ne!(code, Some(0), "the host view has no /marker: {out}");

    // Offered a host-view sandbox, a directory image boots from its own root.
    pool_holds(&host, Root::HostView).await;
    let first = host.sandbox("images", "mini-1", mini.clone()).await;
    assert_eq!(
        marker(&host, &first).await,
        (Some(0), "from the directory image\n".into())
    );

    // The pool follows the latest create's image.
    pool_holds(&host, Root::Directory).await;
    let second = host.sandbox("images", "mini-2", mini).await;
    assert_eq!(
        marker(&host, &second).await,
        (Some(0), "from the directory image\n".into())
    );

    // Offered a directory-image sandbox, a host-view service boots from the host view.
    pool_holds(&host, Root::Directory).await;
    let back = host.sandbox("images", "ubuntu-2", json!({})).await;
    let r = host.sh("images", &back, "test -e /marker || echo host view").await;
    assert_eq!(r.stdout, "host view\n");
}
