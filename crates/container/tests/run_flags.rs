//! `run` flags that change the init process: `--init`, `--ulimit`,
//! `--cap-add/--cap-drop`, and users given by name. One VM.

mod common;

use common::{Daemon, Registry};

#[test]
fn init_ulimit_capabilities_and_named_users() {
    let reg = Registry::start(None);
    reg.push_busybox("test/busybox:latest", None);
    let d = Daemon::started();
    let image = format!("{}/test/busybox:latest", reg.host());

    // Bad values are refused before anything is created.
    let r = d.run(&["run", "--ulimit", "nofile=9:1", &image, "true"]);
    assert_eq!(r.code, 2, "invalid argument: {}", r.stderr);
    assert!(r.stderr.contains("soft limit"), "{}", r.stderr);
    let r = d.run(&["run", "--cap-add", "CAP_NOPE", &image, "true"]);
    assert_eq!(r.code, 2, "invalid argument: {}", r.stderr);
    assert!(r.stderr.contains("unknown capability"), "{}", r.stderr);
    assert_eq!(d.run(&["ls", "-a", "-q"]).ok().trim(), "");

    let script = "echo pid=$$; ulimit -n; grep CapEff /proc/self/status; \
                  echo ready; while :; do sleep 1; done";
    d.run(&[
        "run",
        "-d",
        "--name",
        "flags",
        "--init",
        "--ulimit",
        "nofile=123:456",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "net_raw",
        &image,
        "sh",
        "-c",
        script,
    ])
    .ok();
    let mut logs = String::new();
    for _ in 0..100 {
        logs = d.run(&["logs", "flags"]).ok();
        if logs.contains("ready") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // With --init the shell is not PID 1: the init is.
    assert!(logs.contains("pid=2"), "{logs}");
    assert!(logs.contains("\n123\n"), "the soft nofile limit: {logs}");
    // Only CAP_NET_RAW (bit 13) is left.
    assert!(logs.contains("0000000000002000"), "{logs}");

    // Users by name come from the container's /etc/passwd and /etc/group.
    let r = d.run(&["exec", "-u", "nobody", "flags", "sh", "-c", "id -u; id -g"]);
    assert_eq!(
        r.stdout.split_whitespace().collect::<Vec<_>>(),
        ["65534", "65534"],
        "{}",
        r.stderr
    );
    let r = d.run(&["exec", "-u", "daemon:nogroup", "flags", "id", "-g"]);
    assert_eq!(r.stdout.trim(), "65534", "{}", r.stderr);
    let r = d.run(&["exec", "-u", "nosuchuser", "flags", "true"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("nosuchuser"), "{}", r.stderr);

    // The default seccomp profile is on, for exec'd processes too.
    let r = d.run(&["exec", "flags", "grep", "^Seccomp:", "/proc/self/status"]);
    assert!(
        r.stdout.contains('2'),
        "filter mode: {} {}",
        r.stdout,
        r.stderr
    );

    // The init forwards SIGTERM to the shell (which, as PID 1 itself, would
    // ignore it and be SIGKILLed after the timeout: 137).
    d.run(&["stop", "flags"]).ok();
    let v: serde_json::Value = serde_json::from_str(&d.run(&["inspect", "flags"]).ok()).unwrap();
    assert_eq!(v[0]["exit_code"], 143, "{v}");
    d.run(&["rm", "flags"]).ok();
}

#[test]
fn seccomp_profiles_from_security_opt() {
    let reg = Registry::start(None);
    reg.push_busybox("test/busybox:latest", None);
    let d = Daemon::started();
    let image = format!("{}/test/busybox:latest", reg.host());
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("deny-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"defaultAction":"SCMP_ACT_MAYBE"}"#).unwrap();
    let r = d.run(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", bad.display()),
        &image,
        "true",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("seccomp"), "{}", r.stderr);
    let r = d.run(&[
        "run",
        "--rm",
        "--security-opt",
        "apparmor=x",
        &image,
        "true",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);

    let r = d.run(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", profile.display()),
        &image,
        "sh",
        "-c",
        "mkdir /tmp/x; echo rc=$?; touch /tmp/y && echo touched",
    ]);
    assert!(
        r.stderr.contains("Permission denied"),
        "{} {}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains("rc=1") && r.stdout.contains("touched"),
        "{}",
        r.stdout
    );
}
