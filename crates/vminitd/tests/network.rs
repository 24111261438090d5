//! Interface, address and route RPCs, against an agent running in a
//! network namespace the test creates (nothing touches the host's network).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use containerization_error::Code;
use vminitd_api::Vminitd;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ip_in(pid: u32, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "ip"])
        .args(args)
        .output()
        .expect("nsenter (util-linux) and ip (iproute2) are needed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn links_addresses_and_routes_in_a_private_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    // A veth pair inside a fresh network namespace, then the agent there.
    let script = format!(
        "ip link add v0 type veth peer name v1 && exec {} --listen unix:{}",
        env!("CARGO_BIN_EXE_vminitd"),
        sock.display()
    );
    let child = Killed(
        Command::new("unshare")
            .args(["-n", "sh", "-c", &script])
            .stdout(Stdio::null())
            .spawn()
            .expect("unshare (util-linux)"),
    );
    let pid = child.0.id();
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
    let c = client.expect("the agent did not start in its network namespace (needs veth support)");

    c.up("lo", None).await.unwrap();
    c.up("v0", Some(1400)).await.unwrap();
    c.up("v1", None).await.unwrap();
    let link = ip_in(pid, &["-o", "link", "show", "v0"]);
    assert!(link.contains("mtu 1400") && link.contains(",UP"), "{link}");

    c.address_add("v0", "10.200.0.2/24").await.unwrap();
    let addr = ip_in(pid, &["-o", "-4", "addr", "show", "v0"]);
    assert!(addr.contains("inet 10.200.0.2/24"), "{addr}");

    c.route_add_link("v0", "10.201.0.0/16", None).await.unwrap();
    c.route_add_default("v0", "10.200.0.1").await.unwrap();
    let routes = ip_in(pid, &["-4", "route"]);
    assert!(routes.contains("default via 10.200.0.1 dev v0"), "{routes}");
    assert!(routes.contains("10.201.0.0/16 dev v0"), "{routes}");

    // IPv6: an address (usable at once: no duplicate address detection),
    // a link route and a default route.
    c.address_add("v0", "fd00:64::2/64").await.unwrap();
    let addr = ip_in(pid, &["-o", "-6", "addr", "show", "v0"]);
    assert!(addr.contains("inet6 fd00:64::2/64"), "{addr}");
    // Without DAD the kernel's work item clears "tentative" within
    // milliseconds; with it, only after a second or more.
    let mut usable = false;
    for _ in 0..25 {
        let a = ip_in(pid, &["-o", "-6", "addr", "show", "to", "fd00:64::2"]);
        if !a.is_empty() && !a.contains("tentative") {
            usable = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(usable, "fd00:64::2 still tentative after 500 ms");
    c.route_add_link("v0", "fd00:65::9/48", None).await.unwrap();
    c.route_add_default("v0", "fd00:64::1").await.unwrap();
    let routes = ip_in(pid, &["-6", "route"]);
    assert!(routes.contains("fd00:65::/48 dev v0"), "{routes}");
    assert!(routes.contains("default via fd00:64::1 dev v0"), "{routes}");
    let err = c.address_add("v0", "fd00:64::2/129").await.unwrap_err();
    assert!(err.is_code(Code::InvalidArgument), "{err:?}");
    let err = c
        .address_add("nosuchif0", "fd00:64::2/64")
        .await
        .unwrap_err();
    assert!(err.is_code(Code::NotFound), "{err:?}");

    c.down("v0").await.unwrap();
    let link = ip_in(pid, &["-o", "link", "show", "v0"]);
    assert!(!link.contains(",UP"), "{link}");

    let err = c.up("nosuchif0", None).await.unwrap_err();
    assert!(err.is_code(Code::NotFound), "{err:?}");
    let err = c.address_add("v0", "10.200.0.2").await.unwrap_err();
    assert!(err.is_code(Code::InvalidArgument), "{err:?}");
    let err = c.route_add_default("v0", "gateway").await.unwrap_err();
    assert!(err.is_code(Code::InvalidArgument), "{err:?}");
}
