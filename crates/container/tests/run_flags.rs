//! `run` flags that change the init process (`--init`, `--ulimit`,
//! `--cap-add/--cap-drop`, `--security-opt`, users given by name), and
//! `cp` / `export` against the same running container. Two VMs.

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

    // Default signal handling, as with runc: nothing ignored or blocked, so
    // a writer to a closed pipe dies of SIGPIPE.
    let r = d.run(&["exec", "flags", "grep", "^Sig[IB]", "/proc/self/status"]);
    assert_eq!(
        r.stdout, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
        "{}",
        r.stderr
    );
    let r = d.run(&["exec", "flags", "sh", "-c", "timeout 20 yes | head -c 4"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "y\ny\n"), "{}", r.stderr);

    copy_and_export(&d);

    // The init forwards SIGTERM to the shell (which, as PID 1 itself, would
    // ignore it and be SIGKILLed after the timeout: 137).
    d.run(&["stop", "flags"]).ok();
    let v: serde_json::Value = serde_json::from_str(&d.run(&["inspect", "flags"]).ok()).unwrap();
    assert_eq!(v[0]["exit_code"], 143, "{v}");
    d.run(&["rm", "flags"]).ok();
}

#[test]
fn seccomp_profiles_and_a_terminal() {
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

    // `run -it` under a real terminal (util-linux `script` makes one): the
    // process has a PTY it can name, the window size arrives, and the exit
    // code comes back.
    let cli = env!("CARGO_BIN_EXE_container");
    let inner =
        format!("stty rows 40 cols 100; {cli} run -it --rm {image} sh -c 'tty; stty size; exit 6'");
    let out = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env("CONTAINER_ROOT", d.root.path())
        .env("CONTAINER_DEFAULT_SUBNET", "none")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1) from util-linux runs the CLI under a PTY");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{text}");
    assert!(
        text.contains("/dev/pts/"),
        "the process names its terminal: {text:?}"
    );
    assert!(text.contains("40 100"), "the window size arrives: {text:?}");
}

/// `cp` both ways with Docker's placement rules, and `export`, against the
/// running container `flags`.
fn copy_and_export(d: &Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path();
    std::fs::write(host.join("hello.txt"), "hello from the host\n").unwrap();
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/sub/deep.txt"), "deep\n").unwrap();
    let h = |p: &str| host.join(p).display().to_string();

    // A file into an existing directory keeps its name; onto a new path it is renamed.
    d.run(&["cp", &h("hello.txt"), "flags:/tmp"]).ok();
    d.run(&["cp", &h("hello.txt"), "flags:/tmp/renamed.txt"])
        .ok();
    // A directory onto a new path takes that name; `dir/.` copies contents.
    d.run(&["cp", &h("tree"), "flags:/srv"]).ok();
    d.run(&["cp", &format!("{}/.", h("tree")), "flags:/tmp/contents"])
        .ok();
    let r = d.run(&[
        "exec",
        "flags",
        "sh",
        "-c",
        "cat /tmp/hello.txt /tmp/renamed.txt /srv/sub/deep.txt /tmp/contents/sub/deep.txt",
    ]);
    assert_eq!(
        r.stdout, "hello from the host\nhello from the host\ndeep\ndeep\n",
        "{}",
        r.stderr
    );

    // Out again: a file to a new name, a directory into a directory.
    d.run(&["cp", "flags:/etc/passwd", &h("passwd.copy")]).ok();
    assert!(
        std::fs::read_to_string(host.join("passwd.copy"))
            .unwrap()
            .contains("nobody")
    );
    std::fs::create_dir(host.join("out")).unwrap();
    d.run(&["cp", "flags:/srv", &h("out")]).ok();
    assert_eq!(
        std::fs::read_to_string(host.join("out/srv/sub/deep.txt")).unwrap(),
        "deep\n"
    );

    // Errors: a missing path, a missing parent, both sides local.
    let r = d.run(&["cp", "flags:/no/such", &h("x")]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let r = d.run(&["cp", &h("hello.txt"), "flags:/no/such/dir/x"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let r = d.run(&["cp", &h("hello.txt"), &h("y")]);
    assert_eq!(r.code, 2, "{}", r.stderr);

    // export: the root filesystem only (no /proc contents), with the copied files.
    let tar = host.join("flags.tar");
    d.run(&["export", "-o", &tar.display().to_string(), "flags"])
        .ok();
    let mut names = Vec::new();
    let mut a = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    for e in a.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    for want in ["bin/busybox", "etc/passwd", "srv/sub/deep.txt", "proc"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} in export: {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.starts_with("proc/")),
        "no /proc contents"
    );
}
