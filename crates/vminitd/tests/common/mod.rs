//! Shared helpers of the host tests: start `vminitd --listen unix:...`,
//! build a busybox rootfs, make runtime specs.

#![allow(dead_code)]

pub mod vm;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use oci_spec::runtime::{ProcessBuilder, RootBuilder, Spec};
use vminitd_api::Vminitd;

/// A running agent on a unix socket; killed on drop.
pub struct Agent {
    pub client: Vminitd,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the agent built by cargo for this test run.
pub async fn start_agent() -> Agent {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("agent.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_vminitd"))
        .arg("--listen")
        .arg(format!("unix:{}", sock.display()))
        .env(
            "VMINITD_LOG",
            std::env::var("VMINITD_LOG").unwrap_or_else(|_| "warn".to_string()),
        )
        .spawn()
        .expect("spawn vminitd");
    let mut client = None;
    for _ in 0..500 {
        if sock.exists()
            && let Ok(c) = Vminitd::connect_unix(&sock).await
            && c.ping().await.is_ok()
        {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let client = client.expect("vminitd did not answer on its unix socket");
    Agent { client, dir, child }
}

/// A busybox root filesystem under `dir/rootfs` built from the host's
/// static busybox (the busybox-static package; scripts/build-busybox-image.sh
/// uses the same binary).
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: install busybox-static (see scripts/build-busybox-image.sh)"
    );
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    // Run the host's busybox, not the fresh copy: a concurrent test's fork
    // can still hold the copy's write descriptor, and exec then fails with
    // ETXTBSY. The links are rewritten below either way.
    let status = Command::new(busybox)
        .arg("--install")
        .arg("-s")
        .arg(root.join("bin"))
        .status()
        .unwrap();
    assert!(status.success(), "busybox --install failed");
    // --install -s links to the absolute path of the binary; make the links relative to the rootfs.
    for entry in std::fs::read_dir(root.join("bin")).unwrap().flatten() {
        let p = entry.path();
        if p.symlink_metadata().unwrap().file_type().is_symlink() {
            std::fs::remove_file(&p).unwrap();
            std::os::unix::fs::symlink("busybox", &p).unwrap();
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    root
}

/// A default spec running `args` in `root`.
pub fn spec(root: &Path, args: &[&str], terminal: bool) -> Spec {
    let mut spec = Spec::default();
    spec.set_root(Some(
        RootBuilder::default()
            .path(root)
            .readonly(false)
            .build()
            .unwrap(),
    ));
    let base = spec.process().clone().unwrap();
    let process = ProcessBuilder::default()
        .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .env(vec!["PATH=/bin".to_string(), "TERM=xterm".to_string()])
        .cwd("/")
        .terminal(terminal)
        .user(base.user().clone())
        .capabilities(base.capabilities().clone().unwrap())
        .rlimits(base.rlimits().clone().unwrap())
        .no_new_privileges(true)
        .build()
        .unwrap();
    spec.set_process(Some(process));
    spec.set_hostname(Some("ctr".to_string()));
    spec
}
