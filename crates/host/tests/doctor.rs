//! `flankbox-host doctor` on this machine: the real binary, the real checks. These machines run
//! the host as root with cgroup v1, so every check passes or only warns.

use std::process::Command;

const CHECKS: [&str; 9] = [
    "root",
    "kernel",
    "user-namespaces",
    "subordinate-ids",
    "cgroups",
    "loop-devices",
    "mkfs.ext4",
    "seccomp",
    "protected-links",
];

fn doctor(args: &[&str]) -> (i32, String) {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "doctor's checks pass only as root (the README's test command runs as root)"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_flankbox-host"))
        .arg("doctor")
        .args(args)
        .output()
        .expect("run flankbox-host doctor");
    let stdout = String::from_utf8(out.stdout).unwrap();
    (out.status.code().expect("exited"), stdout)
}

#[test]
fn doctor_passes_here_with_one_line_per_check() {
    let (code, stdout) = doctor(&[]);
    assert_eq!(code, 0, "doctor failed here:\n{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), CHECKS.len(), "{stdout}");
    for (line, name) in lines.iter().zip(CHECKS) {
        let mut words = line.split_whitespace();
        let mark = words.next().unwrap();
        assert!(["ok", "warn"].contains(&mark), "{line}");
        assert_eq!(words.next(), Some(name), "{line}");
        assert!(words.next().is_some(), "says what it found: {line}");
        assert_eq!(
            mark == "warn",
            line.contains("; fix: "),
            "a warning carries its fix: {line}"
        );
    }
    // The live tries ran.
    assert!(stdout.contains("root wrote its map"), "{stdout}");
    assert!(stdout.contains("the sandbox filters load and deny"), "{stdout}");
}

#[test]
fn doctor_json_is_the_same_checks() {
    let (code, stdout) = doctor(&["--json"]);
    assert_eq!(code, 0, "{stdout}");
    let checks: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let checks = checks.as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, CHECKS);
    for check in checks {
        assert!(["ok", "warn"].contains(&check["status"].as_str().unwrap()), "{check}");
        assert!(!check["found"].as_str().unwrap().is_empty());
    }
}
