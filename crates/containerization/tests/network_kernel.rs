//! The kernel side of networks (bridge, TAP, nftables) in a private network
//! namespace this test creates; the host's namespace is never touched.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use containerization::network::{KernelNetwork, Networks};

/// Moves this thread (and what it spawns) into a fresh network namespace
/// with loopback up. Panics rather than ever running in the host's.
fn private_netns() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare(CLONE_NEWNET) failed: network tests need root");
    let ok = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip (iproute2) is installed");
    assert!(ok.success());
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn bridge_tap_and_rules_come_and_go() {
    private_netns();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let n = Networks::open(dir.path(), Arc::new(KernelNetwork)).unwrap();
        n.ensure_default("192.168.64.0/24").await.unwrap();
        let c = n
            .create("iso", Some("10.77.0.0/24"), true, BTreeMap::new())
            .await
            .unwrap();
        let d = n.get("default").unwrap().config;
        let links = sh("ip -br addr");
        assert!(
            links.contains(&d.bridge) && links.contains("192.168.64.1/24"),
            "{links}"
        );
        assert!(
            links.contains(&c.bridge) && links.contains("10.77.0.1/24"),
            "{links}"
        );
        let rules = sh("nft list table inet container");
        assert!(rules.contains("masquerade"), "{rules}");
        assert!(rules.contains(&format!("fwd-{}", c.bridge)), "{rules}");
        assert!(
            !rules.contains(&format!("nat-{}", c.bridge)),
            "internal has no NAT: {rules}"
        );
        // Restore is idempotent (daemon restart): no duplicate rules.
        assert!(n.restore().await.is_empty());
        let again = sh("nft list table inet container");
        assert_eq!(again.matches("masquerade").count(), 1, "{again}");

        let a = n.allocate("default", "web", 0, None).unwrap();
        use containerization::network::HostNetwork;
        KernelNetwork.create_tap(&a.tap, &a.bridge).await.unwrap();
        let tap = sh(&format!("ip -d link show {}", a.tap));
        assert!(
            tap.contains(&format!("master {}", a.bridge)) && tap.contains("tun"),
            "{tap}"
        );
        KernelNetwork.delete_link(&a.tap).await.unwrap();
        n.release("web").unwrap();

        n.delete("iso").await.unwrap();
        let links = sh("ip -br link");
        assert!(!links.contains(&c.bridge), "{links}");
        let rules = sh("nft list table inet container");
        assert!(!rules.contains(&c.bridge), "{rules}");
    });
}
