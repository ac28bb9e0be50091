//! Attempts to break out of a sandbox, or to hurt the host or other sandboxes. Each must be
//! denied; afterwards the host must still serve.

mod common;

use std::time::{Duration, Instant};

use common::{require_root, TestHost};
use serde_json::json;

/// A sandbox on the smallest plan, for the resource attacks.
async fn small(host: &TestHost, name: &str) -> String {
    host.sandbox("p", name, json!({ "billing": { "deploymentPlan": "nf-compute-20" } }))
        .await
}

#[tokio::test]
async fn host_files_cannot_be_read_or_written() {
    require_root();
    let host = TestHost::start();
    let secret_dir = tempfile::tempdir().unwrap();
    std::fs::write(secret_dir.path().join("secret"), "host-secret-4711").unwrap();
    let id = host.sandbox("p", "reader", json!({})).await;
    let dir = secret_dir.path().display();
    // 1. A host file by its path, 2. by searching, 3. root-only host files, 4. the host's home.
    let r = host.sh("p", &id, &format!("cat {dir}/secret; grep -rs host-secret-4711 /tmp /root /home /var /workspace; cat /etc/shadow; ls /work /root/.cargo; echo end")).await;
    assert!(!r.stdout.contains("host-secret-4711"), "{r:?}");
    assert!(r.stderr.contains("No such file"), "{r:?}");
    // 5. The image is read-only: /usr, /etc and / itself.
    let r = host
        .sh(
            "p",
            &id,
            "echo x > /usr/bin/flankbox-pwned; echo x >> /etc/passwd; touch /pwned; echo end",
        )
        .await;
    let denied = r
        .stderr
        .lines()
        .filter(|l| l.ends_with("Read-only file system") || l.ends_with("Permission denied"))
        .count();
    assert_eq!(denied, 3, "{r:?}");
    assert!(!std::path::Path::new("/usr/bin/flankbox-pwned").exists());
    assert!(!std::fs::read_to_string("/etc/passwd").unwrap().ends_with("x\n"));
    // 6. /usr/local, the host's own tools, is hidden.
    let r = host.sh("p", &id, "ls -A /usr/local | wc -l").await;
    assert_eq!(r.stdout.trim(), "0");
    // 7. Hard links cannot reach across into the image either.
    let r = host
        .sh("p", &id, "ln /usr/bin/bash /tmp/bash-link 2>&1; echo rc=$?")
        .await;
    assert!(r.stdout.contains("rc=1"), "{r:?}");
}

#[tokio::test]
async fn other_sandboxes_are_invisible() {
    require_root();
    let host = TestHost::start();
    let a = host
        .sandbox(
            "p",
            "alice",
            json!({ "deployment": { "docker": { "customCommand": "exec sleep 4242" } } }),
        )
        .await;
    let b = host.sandbox("p", "bob", json!({})).await;
    host.sh("p", &a, "echo a-secret > /tmp/a-secret-file; echo a-secret > /dev/shm/a-secret-shm; echo a-secret > /workspace/a-secret-ws").await;
    // 8. Files, 9. shared memory, 10. processes, 11. SysV IPC.
    let r = host.sh("p", &b, "find / -name 'a-secre[t]-*' 2>/dev/null; ls /dev/shm; ps -eo args; ipcs -m 2>/dev/null | grep -c 0x || true").await;
    assert!(!r.stdout.contains("a-secret"), "{r:?}");
    assert!(
        !r.stdout.contains("sleep 4242"),
        "another sandbox's process is visible: {r:?}"
    );
    // Only the sandbox's own processes: its agent, its main process, this exec.
    let r = host
        .sh("p", &b, "ps -eo comm --no-headers | sort -u | tr '\\n' ' '")
        .await;
    let names: Vec<&str> = r.stdout.split_whitespace().collect();
    assert!(
        names
            .iter()
            .all(|n| ["bash", "flankbox-agent", "ps", "sh", "sleep", "sort", "tr"].contains(n)),
        "{r:?}"
    );
    assert!(names.contains(&"flankbox-agent") && names.contains(&"sleep"), "{r:?}");
    let r = host.sh("p", &a, "cat /tmp/a-secret-file").await;
    assert_eq!(r.stdout, "a-secret\n", "the owner still sees its own");
}

#[tokio::test]
async fn the_network_is_loopback_only() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "netless", json!({})).await;
    let port = host.port();
    // 12. The host API on loopback, 13. the host's own address, 14. the internet, 15. DNS.
    let host_ip = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .unwrap_or("10.0.0.1")
                .to_string()
        })
        .unwrap();
    let script = format!(
        "timeout 3 bash -c 'echo > /dev/tcp/127.0.0.1/{port}' 2>&1; echo rc=$?; \
         timeout 3 bash -c 'echo > /dev/tcp/{host_ip}/{port}' 2>&1; echo rc=$?; \
         timeout 3 bash -c 'echo > /dev/tcp/{host_ip}/2024' 2>&1; echo rc=$?; \
         timeout 3 bash -c 'echo > /dev/tcp/1.1.1.1/443' 2>&1; echo rc=$?; \
         getent hosts deb.debian.org; echo rc=$?; ls /sys/class/net 2>/dev/null; cat /proc/net/dev | tail -n +3 | cut -d: -f1"
    );
    let r = host.sh("p", &id, &script).await;
    assert_eq!(
        r.stdout.matches("rc=1").count() + r.stdout.matches("rc=2").count(),
        5,
        "every connection fails: {r:?}"
    );
    assert!(
        r.stdout.contains("Connection refused"),
        "loopback is the sandbox's own: {r:?}"
    );
    assert!(r.stdout.contains("Network is unreachable"), "{r:?}");
    let interfaces: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| !l.contains("rc=") && !l.contains("bash"))
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, ["lo"], "{r:?}");
    // Its own loopback works.
    let r = host.sh("p", &id, "python3 -m http.server 8099 >/dev/null 2>&1 & for i in $(seq 200); do python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8099').status)\" 2>/dev/null && break; sleep 0.1; done").await;
    assert_eq!(r.stdout.trim(), "200", "{r:?}");
}

#[tokio::test]
async fn mounts_namespaces_proc_and_devices_are_locked() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "locked", json!({})).await;
    let checks = [
        // 16. mount, 17. nested user namespace, 18. nested mount namespace, 19. setns into PID 1's.
        ("mount -t tmpfs none /mnt", "mount"),
        ("unshare -Ur true", "unshare user"),
        ("unshare -m true", "unshare mount"),
        ("nsenter -t 1 -m true", "nsenter"),
        // 20. /proc/sys and 21. sysrq are read-only.
        ("echo 1 > /proc/sys/kernel/sysrq", "/proc/sys"),
        ("echo b > /proc/sysrq-trigger", "sysrq"),
        // 22. cgroupfs is absent and cannot be mounted.
        ("ls /sys/fs/cgroup", "cgroupfs"),
        ("mount -t cgroup2 none /mnt", "cgroup2 mount"),
        // 23. no device nodes can be made, and no disks are there.
        ("mknod /tmp/sda b 8 0", "mknod"),
        ("cat /dev/vda", "disk"),
        ("ls /dev/kvm /dev/loop-control /dev/mem", "devices"),
        // 24. the kernel log.
        ("dmesg", "dmesg"),
    ];
    for (cmd, what) in checks {
        let r = host.sh("p", &id, cmd).await;
        assert_ne!(r.exit_code, Some(0), "{what} was allowed: {r:?}");
    }
    let r = host.sh("p", &id, "ls /dev | tr '\\n' ' '").await;
    assert_eq!(
        r.stdout.trim(),
        "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero"
    );
    let r = host
        .sh(
            "p",
            &id,
            "head -c 16 /proc/kcore | wc -c; cat /proc/self/cgroup | cut -d: -f3 | sort -u",
        )
        .await;
    assert_eq!(r.stdout, "0\n/\n", "kcore masked, cgroups look like the root: {r:?}");
}

#[tokio::test]
async fn dangerous_syscalls_fail_and_privileges_are_reduced() {
    require_root();
    let host = TestHost::start();
    let id = host.sandbox("p", "syscalls", json!({})).await;
    // 25. bpf, perf_event_open, userfaultfd, io_uring, keyctl, ptrace, module loading, kexec,
    // open_by_handle_at, process_vm_readv: all EPERM. clone3 is ENOSYS (so clone's flags can be
    // checked), and clone with CLONE_NEWUSER is EPERM.
    let script = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
calls = {"bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425, "keyctl": 250,
         "ptrace": 101, "init_module": 175, "finit_module": 313, "kexec_load": 246, "open_by_handle_at": 304,
         "process_vm_readv": 310, "add_key": 248, "setns": 308, "unshare": 272, "clone3": 435}
for name, nr in calls.items():
    ctypes.set_errno(0)
    rc = libc.syscall(nr, 0, 0, 0, 0, 0)
    print(name, rc, ctypes.get_errno())
ctypes.set_errno(0)
print("clone_newuser", libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0), ctypes.get_errno())
"#;
    let r = host
        .exec("p", &id, json!({ "command": ["python3", "-c", script] }), &[])
        .await;
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    for line in r.stdout.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let expected = if parts[0] == "clone3" { "38" } else { "1" };
        assert_eq!((parts[1], parts[2]), ("-1", expected), "{line}");
    }
    // 26. capabilities, no_new_privs, seccomp mode, and the uid map to an unprivileged range.
    let r = host
        .sh(
            "p",
            &id,
            "grep -E '^(CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/self/uid_map",
        )
        .await;
    assert!(r.stdout.contains("CapBnd:\t00000000a80425fb"), "{r:?}");
    assert!(
        r.stdout.contains("NoNewPrivs:\t1") && r.stdout.contains("Seccomp:\t2"),
        "{r:?}"
    );
    let map: Vec<u64> = r
        .stdout
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(map[0], 0);
    assert!(map[1] >= 100_000, "sandbox root is never host root: {map:?}");
    // 27. The agent (PID 1) cannot be read, traced or killed.
    let r = host
        .sh(
            "p",
            &id,
            "readlink -v /proc/1/fd/3; cat /proc/1/environ; head -c1 /proc/1/mem; kill -9 1; echo end",
        )
        .await;
    assert_eq!(r.stderr.matches("Permission denied").count(), 3, "{r:?}");
    assert_eq!(
        host.sh("p", &id, "echo alive").await.stdout,
        "alive\n",
        "PID 1 survived"
    );
    // 28. The host's environment does not leak in.
    let r = host
        .sh("p", &id, "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'")
        .await;
    assert!(
        !r.stdout.contains("canary-7f3a") && !r.stdout.contains("FLANKBOX") && !r.stdout.contains("RUST_LOG"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_volume_link_cannot_bind_a_host_path() {
    require_root();
    let host = TestHost::start();
    let (code, body) = host
        .call("POST", "/v1/projects/p/volumes", Some(json!({ "name": "trap", "mounts": [{ "containerMountPath": "/data" }, { "containerMountPath": "/sub", "volumeMountPath": "inner" }], "spec": { "accessMode": "ReadWriteOnce", "storageSize": 1024 } })))
        .await;
    assert_eq!(code, 200, "{body}");
    let id = host
        .sandbox(
            "p",
            "linker",
            json!({ "createOptions": { "volumesToAttach": ["trap"] } }),
        )
        .await;
    // 29. Replace the sub-path with a link to the host's root, then restart.
    let r = host
        .sh("p", &id, "rmdir /data/inner && ln -s / /data/inner && ls -l /data")
        .await;
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    host.call("POST", &format!("/v1/projects/p/services/{id}/restart"), None)
        .await;
    assert_eq!(
        host.wait_settled("p", &id).await,
        "FAILED",
        "the host refuses to follow the link"
    );
    assert!(host.sh("p", &id, "ls /sub").await.error.is_some());
}

#[tokio::test]
async fn bombs_are_contained_and_the_host_keeps_serving() {
    require_root();
    let host = TestHost::start_with(&["--pids-max", "128"]);
    let id = small(&host, "bomber").await;
    // 30. Fork bomb: capped by pids.max. The bomb's shell returns at once and its processes
    // go on forking, so what follows forks nothing (a fork would wait for a free pid, or fail):
    // a second of builtins while the bomb fills the cap, then a count by glob. The kernel
    // uncharges a reaped process a moment before its /proc entry goes, so while the bomb's
    // processes die and are reaped the count may pass the cap by the few in that window (one
    // run saw 129).
    let r = host
        .sh(
            "p",
            &id,
            "bash -c ':(){ :|:& };:' 2>/dev/null; end=$((${EPOCHREALTIME/./} + 1000000)); \
             while ((${EPOCHREALTIME/./} < end)); do :; done; \
             n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n",
        )
        .await;
    let procs: u32 = r.stdout.trim().parse().unwrap_or(0);
    // More than the sandbox's own few (the agent, its main process, this shell): the bomb ran.
    // At most the cap and the reaps under way (each reaper is in that window for one process at
    // a time, if it is preempted there): an uncapped bomb is thousands within the second.
    assert!((9..=128 + 16).contains(&procs), "{r:?}");
    assert_eq!(
        host.call("GET", "/v1/plans", None).await.0,
        200,
        "the host still answers during a fork bomb"
    );
    // 31. Memory bomb: the plan's 512 MiB, then the OOM killer, reported as such.
    let mem = small(&host, "hog").await;
    let r = host
        .exec(
            "p",
            &mem,
            json!({ "command": ["python3", "-c", "a=[]\nwhile True: a.append(bytearray(64 << 20))"] }),
            &[],
        )
        .await;
    assert_eq!(r.exit_code, Some(137), "{r:?}");
    let completion = r.frames.last().unwrap();
    assert!(
        completion["data"]["message"]
            .as_str()
            .unwrap()
            .contains("out of memory"),
        "{completion}"
    );
    // 32. Disk fill: stops at the ephemeral size; the host's disk is untouched beyond it.
    let script = "fallocate -l 900M /tmp/big && dd if=/dev/zero of=/tmp/fill bs=1M count=400 2>&1 | grep -o 'No space left'; df -m /tmp | tail -1";
    let r = host.sh("p", &mem, script).await;
    assert!(r.stdout.contains("No space left"), "{r:?}");
    let total: u64 = r
        .stdout
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(total <= 1024, "{r:?}");
    // 33. /dev/shm fill: stops at shmSize.
    let r = host
        .sh(
            "p",
            &mem,
            "dd if=/dev/zero of=/dev/shm/fill bs=1M count=200 2>&1 | grep -o 'No space left'",
        )
        .await;
    assert!(r.stdout.contains("No space left"), "{r:?}");
    // 34. CPU hog: 0.2 vCPU means about 0.4 s of CPU in 2 s.
    let cpu = small(&host, "spinner").await;
    let r = host.exec("p", &cpu, json!({ "command": ["python3", "-c", "import time, os\nt=time.time()\nwhile time.time()-t < 2: pass\nprint(sum(os.times()[:2]))"] }), &[]).await;
    let used: f64 = r.stdout.trim().parse().unwrap();
    assert!(used < 0.9, "a 0.2 vCPU plan used {used} s of CPU in 2 s");

    // The host still serves: a REST call is quick, and a new sandbox runs.
    let started = Instant::now();
    assert_eq!(host.call("GET", "/v1/projects/p/services", None).await.0, 200);
    // Generous, since the fork bomb may still be respawning on a loaded machine: a host
    // starved by the bombs would not answer at all.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let fresh = host.sandbox("p", "after", json!({})).await;
    assert_eq!(host.sh("p", &fresh, "echo fine").await.stdout, "fine\n");
    // Deleting the bombed sandbox ends every process in it.
    assert_eq!(
        host.call("DELETE", &format!("/v1/projects/p/services/{id}"), None)
            .await
            .0,
        200
    );
    // Reaping a respawning fork bomb can take a while on a loaded machine.
    let bomber_cgroup_left = || {
        ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"].iter().any(|root| {
            std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("flankbox-"))
                .any(|parent| {
                    std::fs::read_dir(parent.path())
                        .map(|d| {
                            d.flatten()
                                .any(|g| g.file_name().to_string_lossy().starts_with("bomber-"))
                        })
                        .unwrap_or(false)
                })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while bomber_cgroup_left() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!bomber_cgroup_left(), "the bomber's cgroup is gone");
}
