//! `container system ...` and the daemon-not-running message, through the
//! real CLI binary.

mod common;

use common::Daemon;

#[test]
fn commands_without_a_daemon_say_how_to_start_it() {
    let d = Daemon::new();
    for args in [&["image", "list"][..], &["images"], &["registry", "list"]] {
        let r = d.run(args);
        assert_ne!(r.code, 0, "{args:?} must fail without a daemon");
        assert_eq!(
            r.stderr.trim(),
            "Error: container system is not running: run `container system start`",
            "{args:?}"
        );
    }
}

#[test]
fn start_status_version_logs_stop() {
    let d = Daemon::new();
    let out = d.run(&["system", "start"]).ok();
    assert!(out.contains("container system started"), "{out}");
    assert!(
        d.root.path().join("apiserver.sock").exists(),
        "the socket lives under the state root"
    );
    let again = d.run(&["system", "start"]).ok();
    assert!(again.contains("already running"), "{again}");

    let status = d.run(&["system", "status"]).ok();
    assert!(status.contains("apiserver is running"), "{status}");
    assert!(
        status.contains(&d.root.path().display().to_string()),
        "{status}"
    );

    let version = d.run(&["system", "version", "--format", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&version).unwrap();
    assert_eq!(v["cli"], v["apiserver"]);

    let logs = d.run(&["system", "logs"]).ok();
    assert!(logs.contains("apiserver listening"), "{logs}");

    let stop = d.run(&["system", "stop"]).ok();
    assert!(stop.contains("container system stopped"), "{stop}");
    assert!(!d.root.path().join("apiserver.sock").exists());
    let status = d.run(&["system", "status"]);
    assert_eq!(status.code, 1);
    assert!(status.stdout.contains("not running"), "{}", status.stdout);
}
