//! The agent's RPCs on the host, as root, against `vminitd --listen unix:...`
//! with a busybox rootfs: processes in real namespaces, stdio, PTYs, files.

mod common;

use std::time::Duration;

use containerization_error::Code;
use sha2::{Digest, Sha256};
use vminitd_api::{CopyMode, DnsConfig, ProcessOutput, TerminalSize, proto};

use common::{busybox_rootfs, spec, start_agent};

#[tokio::test]
async fn file_and_environment_round_trips() {
    let agent = start_agent().await;
    let c = &agent.client;
    let base = agent.dir.path().join("files");
    let base_s = base.to_str().unwrap();
    assert_eq!(c.ping().await.unwrap(), vminitd_api::VERSION);

    c.mkdir(&format!("{base_s}/a/b"), true, 0o750)
        .await
        .unwrap();
    let st = c.stat(&format!("{base_s}/a/b")).await.unwrap();
    assert_eq!(st.mode & 0o170000, 0o040000, "a directory");
    assert_eq!(st.mode & 0o777, 0o750);
    let err = c
        .mkdir(&format!("{base_s}/x/y"), false, 0o755)
        .await
        .unwrap_err();
    assert!(err.is_code(Code::NotFound), "{err:?}");

    let file = format!("{base_s}/a/b/hello.txt");
    c.write_file(&file, b"hello", 0, 0o600).await.unwrap();
    c.write_file(&file, b" world", libc::O_APPEND, 0o600)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"hello world");
    let st = c.stat(&file).await.unwrap();
    assert_eq!(st.size, 11);
    assert_eq!(st.mode & 0o777, 0o600);
    let err = c.stat(&format!("{base_s}/missing")).await.unwrap_err();
    assert!(err.is_code(Code::NotFound), "{err:?}");
    let err = c
        .write_file("relative/path", b"x", 0, 0o644)
        .await
        .unwrap_err();
    assert!(err.is_code(Code::InvalidArgument), "{err:?}");

    assert_eq!(c.getenv("VMINITD_TEST_VAR").await.unwrap(), None);
    c.setenv("VMINITD_TEST_VAR", "42").await.unwrap();
    assert_eq!(
        c.getenv("VMINITD_TEST_VAR").await.unwrap().as_deref(),
        Some("42")
    );
    assert!(
        c.setenv("BAD=KEY", "1")
            .await
            .unwrap_err()
            .is_code(Code::InvalidArgument)
    );

    // Raw copy in and out.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let raw = format!("{base_s}/copy/raw.bin");
    let sent = c
        .copy_in(
            &raw,
            CopyMode::Raw,
            0o640,
            std::io::Cursor::new(data.clone()),
        )
        .await
        .unwrap();
    assert_eq!(sent, data.len() as u64);
    let mut back = Vec::new();
    c.copy_out(&raw, CopyMode::Raw, &mut back).await.unwrap();
    assert_eq!(back, data);

    // Tar copy out of one directory and into another.
    let mut tarball = Vec::new();
    c.copy_out(&format!("{base_s}/a"), CopyMode::Tar, &mut tarball)
        .await
        .unwrap();
    let dest = format!("{base_s}/extracted");
    c.copy_in(&dest, CopyMode::Tar, 0, std::io::Cursor::new(tarball))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(format!("{dest}/b/hello.txt")).unwrap(),
        b"hello world"
    );

    // resolv.conf and hosts under a rootfs.
    let dns = DnsConfig {
        nameservers: vec!["192.168.64.1".into()],
        domain: None,
        search_domains: vec!["example.test".into()],
        options: vec![],
    };
    c.configure_dns(base_s, &dns).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(base.join("etc/resolv.conf")).unwrap(),
        "nameserver 192.168.64.1\nsearch example.test\n"
    );
    let bad = DnsConfig {
        nameservers: vec!["not-an-ip".into()],
        ..Default::default()
    };
    assert!(
        c.configure_dns(base_s, &bad)
            .await
            .unwrap_err()
            .is_code(Code::InvalidArgument)
    );
    let entries = [proto::HostsEntry {
        ip_address: "127.0.0.1".into(),
        hostnames: vec!["localhost".into()],
        comment: String::new(),
    }];
    c.configure_hosts(base_s, &entries, None).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(base.join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
    c.sync().await.unwrap();
    assert!(
        c.sysctl(&[("../etc".to_string(), "1".to_string())].into())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn malformed_requests_fail_and_the_agent_keeps_serving() {
    let agent = start_agent().await;
    let c = &agent.client;
    let err = c
        .create_process_raw("c1", "c1", b"{not json".to_vec(), false, false)
        .await
        .unwrap_err();
    assert!(err.is_code(Code::InvalidArgument), "{err:?}");
    let err = c
        .create_process_raw(
            "c1",
            "c1",
            b"{\"ociVersion\":\"1.0.2\"}".to_vec(),
            false,
            false,
        )
        .await
        .unwrap_err();
    assert!(err.is_code(Code::InvalidArgument), "{err:?}");
    let err = c.start_process("nope", "nope").await.unwrap_err();
    assert!(err.is_code(Code::NotFound), "{err:?}");
    let err = c.wait_process("nope", "nope", None).await.unwrap_err();
    assert!(err.is_code(Code::NotFound), "{err:?}");
    assert!(
        c.kill(-5, 9)
            .await
            .unwrap_err()
            .is_code(Code::InvalidArgument)
    );
    assert!(
        c.set_time(std::time::UNIX_EPOCH - Duration::from_secs(1))
            .await
            .is_err()
    );
    // A stdio stream whose first message is not an attach.
    let mut raw = c.raw();
    let bad = tokio_stream::iter(vec![proto::IoRequest {
        kind: Some(proto::io_request::Kind::Stdin(b"x".to_vec())),
    }]);
    let status = raw.process_io(bad).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(c.ping().await.unwrap(), vminitd_api::VERSION);
}

#[tokio::test]
async fn exit_codes_output_and_failed_exec() {
    let agent = start_agent().await;
    let c = &agent.client;
    let root = busybox_rootfs(agent.dir.path());
    let s = spec(
        &root,
        &[
            "sh",
            "-c",
            "echo out; echo err >&2; hostname; grep SigBlk /proc/self/status; exit 3",
        ],
        false,
    );
    c.create_process("c1", "c1", &s, false, false)
        .await
        .unwrap();
    let mut io = c.process_io("c1", "c1").await.unwrap();
    let pid = c.start_process("c1", "c1").await.unwrap();
    assert!(pid > 1);
    let (out, err) = io.collect().await.unwrap();
    // No signal blocked: the agent blocks SIGCHLD for its signalfd, and
    // its children must not inherit that.
    assert_eq!(
        String::from_utf8_lossy(&out),
        "out\nctr\nSigBlk:\t0000000000000000\n"
    );
    assert_eq!(String::from_utf8_lossy(&err), "err\n");
    let status = c.wait_process("c1", "c1", None).await.unwrap();
    assert_eq!(status.code, 3);
    assert!(status.exited_at > std::time::UNIX_EPOCH);
    assert!(
        c.start_process("c1", "c1")
            .await
            .unwrap_err()
            .is_code(Code::InvalidState)
    );
    c.delete_process("c1", "c1").await.unwrap();
    assert!(
        c.wait_process("c1", "c1", None)
            .await
            .unwrap_err()
            .is_code(Code::NotFound)
    );

    // A program that does not exist: StartProcess reports it.
    let s = spec(&root, &["/no/such/program"], false);
    c.create_process("c2", "c2", &s, false, false)
        .await
        .unwrap();
    let err = c.start_process("c2", "c2").await.unwrap_err();
    assert!(err.message.contains("/no/such/program"), "{err:?}");
    assert_eq!(c.wait_process("c2", "c2", None).await.unwrap().code, 127);
    assert_eq!(c.ping().await.unwrap(), vminitd_api::VERSION);
}

#[tokio::test]
async fn signals_and_wait_timeout() {
    let agent = start_agent().await;
    let c = &agent.client;
    let root = busybox_rootfs(agent.dir.path());
    let s = spec(&root, &["sleep", "1000"], false);
    c.create_process("c1", "c1", &s, false, false)
        .await
        .unwrap();
    c.start_process("c1", "c1").await.unwrap();
    let err = c
        .wait_process("c1", "c1", Some(Duration::from_millis(50)))
        .await
        .unwrap_err();
    assert!(err.is_code(Code::Timeout), "{err:?}");
    assert!(
        c.delete_process("c1", "c1")
            .await
            .unwrap_err()
            .is_code(Code::InvalidState)
    );
    c.signal_process("c1", "c1", libc::SIGKILL).await.unwrap();
    assert_eq!(c.wait_process("c1", "c1", None).await.unwrap().code, 137);
    // Signalling an exited process is harmless.
    c.signal_process("c1", "c1", libc::SIGTERM).await.unwrap();

    // A trapped SIGTERM reaches a container init that handles it.
    let s = spec(
        &root,
        &[
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while true; do sleep 0.05; done",
        ],
        false,
    );
    c.create_process("c2", "c2", &s, false, false)
        .await
        .unwrap();
    let mut io = c.process_io("c2", "c2").await.unwrap();
    c.start_process("c2", "c2").await.unwrap();
    assert_eq!(
        io.next().await.unwrap(),
        Some(ProcessOutput::Stdout(b"ready\n".to_vec()))
    );
    c.signal_process("c2", "c2", libc::SIGTERM).await.unwrap();
    assert_eq!(c.wait_process("c2", "c2", None).await.unwrap().code, 42);
}

#[tokio::test]
async fn stdin_is_relayed_until_eof() {
    let agent = start_agent().await;
    let c = &agent.client;
    let root = busybox_rootfs(agent.dir.path());
    let s = spec(&root, &["sh", "-c", "cat; echo done"], false);
    c.create_process("c1", "c1", &s, true, false).await.unwrap();
    let mut io = c.process_io("c1", "c1").await.unwrap();
    c.start_process("c1", "c1").await.unwrap();
    io.stdin.write(b"line one\n".to_vec()).await.unwrap();
    io.stdin.write(b"line two\n".to_vec()).await.unwrap();
    io.stdin.close().await.unwrap();
    let (out, _) = io.collect().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out), "line one\nline two\ndone\n");
    assert_eq!(c.wait_process("c1", "c1", None).await.unwrap().code, 0);

    // CloseProcessStdin does the same without a stream.
    let s = spec(&root, &["cat"], false);
    c.create_process("c2", "c2", &s, true, false).await.unwrap();
    c.start_process("c2", "c2").await.unwrap();
    c.close_process_stdin("c2", "c2").await.unwrap();
    assert_eq!(c.wait_process("c2", "c2", None).await.unwrap().code, 0);
}

#[tokio::test]
async fn hundred_megabytes_of_stdout_arrive_intact() {
    const SIZE: usize = 100 << 20;
    let agent = start_agent().await;
    let c = &agent.client;
    let root = busybox_rootfs(agent.dir.path());
    // The process hashes what it writes; the test hashes what it receives.
    let script = format!(
        "head -c {SIZE} /dev/urandom > /tmp/data && sha256sum /tmp/data >&2 && cat /tmp/data && rm /tmp/data"
    );
    let s = spec(&root, &["sh", "-c", &script], false);
    c.create_process("big", "big", &s, false, false)
        .await
        .unwrap();
    c.start_process("big", "big").await.unwrap();
    // Attach late: nothing may be lost while nobody reads.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut io = c.process_io("big", "big").await.unwrap();
    let mut hasher = Sha256::new();
    let mut total = 0usize;
    let mut err = Vec::new();
    while let Some(chunk) = io.next().await.unwrap() {
        match chunk {
            ProcessOutput::Stdout(d) => {
                total += d.len();
                hasher.update(&d);
            }
            ProcessOutput::Stderr(d) => err.extend_from_slice(&d),
        }
    }
    assert_eq!(c.wait_process("big", "big", None).await.unwrap().code, 0);
    assert_eq!(total, SIZE);
    let expected = String::from_utf8_lossy(&err);
    let expected = expected.split_whitespace().next().unwrap_or_default();
    assert_eq!(hex::encode(hasher.finalize()), expected);
}

#[tokio::test]
async fn terminal_size_follows_resize() {
    let agent = start_agent().await;
    let c = &agent.client;
    let root = busybox_rootfs(agent.dir.path());
    let s = spec(&root, &["sh", "-c", "stty size; read x; stty size"], true);
    c.create_process("t", "t", &s, true, true).await.unwrap();
    c.resize_process(
        "t",
        "t",
        TerminalSize {
            rows: 24,
            columns: 80,
        },
    )
    .await
    .unwrap();
    let mut io = c.process_io("t", "t").await.unwrap();
    c.start_process("t", "t").await.unwrap();
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains("24 80") {
        match io.next().await.unwrap() {
            Some(ProcessOutput::Stdout(d)) => out.extend_from_slice(&d),
            Some(ProcessOutput::Stderr(_)) => panic!("a terminal has no separate stderr"),
            None => panic!("output ended early: {:?}", String::from_utf8_lossy(&out)),
        }
    }
    c.resize_process(
        "t",
        "t",
        TerminalSize {
            rows: 40,
            columns: 120,
        },
    )
    .await
    .unwrap();
    io.stdin.write(b"go\n".to_vec()).await.unwrap();
    let (rest, _) = io.collect().await.unwrap();
    out.extend_from_slice(&rest);
    assert!(
        String::from_utf8_lossy(&out).contains("40 120"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(c.wait_process("t", "t", None).await.unwrap().code, 0);
    // Resizing a process without a terminal is refused.
    let s = spec(&root, &["true"], false);
    c.create_process("n", "n", &s, false, false).await.unwrap();
    let err = c
        .resize_process(
            "n",
            "n",
            TerminalSize {
                rows: 1,
                columns: 1,
            },
        )
        .await
        .unwrap_err();
    assert!(err.is_code(Code::InvalidState), "{err:?}");
}

#[tokio::test]
async fn concurrent_execs_join_the_container() {
    let agent = start_agent().await;
    let c = &agent.client;
    let root = busybox_rootfs(agent.dir.path());
    let init = spec(
        &root,
        &["sh", "-c", "echo $$ > /tmp/init.pid; exec sleep 1000"],
        false,
    );
    c.create_process("c", "init", &init, false, false)
        .await
        .unwrap();
    c.start_process("c", "init").await.unwrap();
    // Wait until the init has written its pid file.
    let pidfile = root.join("tmp/init.pid");
    for _ in 0..500 {
        if pidfile.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let run = |id: &'static str, script: &'static str| {
        let c = c.clone();
        let s = spec(&root, &["sh", "-c", script], false);
        async move {
            c.create_process("c", id, &s, false, false).await.unwrap();
            let mut io = c.process_io("c", id).await.unwrap();
            c.start_process("c", id).await.unwrap();
            let (out, err) = io.collect().await.unwrap();
            let code = c.wait_process("c", id, None).await.unwrap().code;
            (
                String::from_utf8_lossy(&out).into_owned(),
                String::from_utf8_lossy(&err).into_owned(),
                code,
            )
        }
    };
    let (a, b) = tokio::join!(
        run("e1", "hostname; cat /tmp/init.pid; exit 5"),
        run(
            "e2",
            "for i in 1 2 3; do echo $i; done; ps -o pid | wc -l >&2"
        )
    );
    // Same UTS and mount namespace as the init; its pid is 1 in the container.
    assert_eq!(a, ("ctr\n1\n".to_string(), String::new(), 5));
    assert_eq!(b.0, "1\n2\n3\n");
    assert_eq!(b.2, 0);
    assert!(
        c.create_process("c", "e1", &init, false, false)
            .await
            .unwrap_err()
            .is_code(Code::Exists)
    );
    c.delete_process("c", "e1").await.unwrap();
    c.signal_process("c", "init", libc::SIGKILL).await.unwrap();
    assert_eq!(c.wait_process("c", "init", None).await.unwrap().code, 137);
    let s = spec(&root, &["true"], false);
    c.create_process("c", "late", &s, false, false)
        .await
        .unwrap();
    let err = c.start_process("c", "late").await.unwrap_err();
    assert!(err.is_code(Code::InvalidState), "{err:?}");
    c.delete_process("c", "init").await.unwrap();
}
