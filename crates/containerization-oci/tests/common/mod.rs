//! Test helpers: a real local registry (scripts/start-registry.sh), the
//! busybox fixture image (scripts/build-busybox-image.sh), skopeo, and
//! hand-built OCI layouts.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

/// The workspace's `scripts/` directory.
pub fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

/// A registry on 127.0.0.1, killed on drop.
pub struct Registry {
    pub port: u16,
    pid: u32,
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `htpasswd`, it requires basic auth.
    pub fn start(htpasswd: Option<&Path>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let script = scripts().join("start-registry.sh");
        let mut cmd = Command::new(&script);
        cmd.arg(dir.path());
        if let Some(h) = htpasswd {
            cmd.arg(h);
        }
        let out = cmd.output().unwrap_or_else(|e| {
            panic!(
                "cannot run {} (needs docker-registry; see scripts/setup.sh): {e}",
                script.display()
            )
        });
        assert!(
            out.status.success(),
            "{} failed (is docker-registry installed?): {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut parts = text.split_whitespace();
        let port = parts.next().unwrap().parse().unwrap();
        let pid = parts.next().unwrap().parse().unwrap();
        Registry { port, pid, dir }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Path of a blob's data file in the registry's storage.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// Builds the busybox OCI layout into `out` (scripts/build-busybox-image.sh).
pub fn busybox_layout(out: &Path) -> String {
    let script = scripts().join("build-busybox-image.sh");
    let o = Command::new(&script)
        .arg(out)
        .arg("latest")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        o.status.success(),
        "{} failed (needs busybox-static): {}",
        script.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Runs `skopeo copy` with TLS verification off for the local registry.
pub fn skopeo_copy(args: &[&str]) {
    let o = Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .args(args)
        .output()
        .expect("skopeo missing (apt-get install skopeo)");
    assert!(
        o.status.success(),
        "skopeo copy {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Pushes an OCI layout's `tag` to `docker://<host>/<repo>`; `v2s2` converts
/// to Docker media types; `all` keeps an index.
pub fn push_layout(layout: &Path, tag: &str, dest: &str, v2s2: bool, all: bool) {
    let src = format!("oci:{}:{tag}", layout.display());
    let dst = format!("docker://{dest}");
    let mut args = vec![];
    if v2s2 {
        args.extend(["--format", "v2s2"]);
    }
    if all {
        args.push("--all");
    }
    args.push(&src);
    args.push(&dst);
    skopeo_copy(&args);
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Writes a blob into an OCI layout and returns its digest.
pub fn put_blob(layout: &Path, data: &[u8]) -> String {
    let d = sha256(data);
    let dir = layout.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(d.trim_start_matches("sha256:")), data).unwrap();
    d
}

/// Builds an OCI layout whose single image has uncompressed layers of the
/// given sizes filled with pseudo-random bytes (seeded), tagged `latest`.
pub fn random_layout(out: &Path, layer_sizes: &[usize], seed: u64) -> String {
    random_layout_with(out, layer_sizes, seed, false)
}

/// As `random_layout`; `gzip` stores the layers gzip-compressed (so no tool
/// recompresses them on push).
pub fn random_layout_with(out: &Path, layer_sizes: &[usize], seed: u64, gzip: bool) -> String {
    fs::create_dir_all(out).unwrap();
    fs::write(out.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, size) in layer_sizes.iter().enumerate() {
        // A tar holding one file of random bytes, so the layer is a real one.
        let mut data = vec![0u8; *size];
        fill_random(&mut data, seed.wrapping_add(i as u64));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("file{i}"), &data[..])
            .unwrap();
        let bytes = b.into_inner().unwrap();
        diff_ids.push(sha256(&bytes));
        let (bytes, media_type) = if gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&bytes).unwrap();
            (
                gz.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        } else {
            (bytes, "application/vnd.oci.image.layer.v1.tar")
        };
        let d = put_blob(out, &bytes);
        layers.push(serde_json::json!({
            "mediaType": media_type,
            "digest": d, "size": bytes.len()
        }));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    });
    let config = serde_json::to_vec(&config).unwrap();
    let cd = put_blob(out, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": layers
    }))
    .unwrap();
    let md = put_blob(out, &manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"}
        }]
    });
    fs::write(out.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    md
}

/// xorshift64*: fast deterministic incompressible bytes.
pub fn fill_random(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// Turns the busybox layout into one whose `latest` is an index naming the
/// busybox manifest for linux/amd64 and (same bytes) linux/arm64/v8.
pub fn multi_platform_layout(busybox: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(busybox.join("index.json")).unwrap()).unwrap();
    let m = &index["manifests"][0];
    let entry = |arch: &str, variant: Option<&str>| {
        let mut p = serde_json::json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            p["variant"] = v.into();
        }
        serde_json::json!({"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"], "platform": p})
    };
    let nested = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("amd64", None), entry("arm64", Some("v8"))]
    }))
    .unwrap();
    let nd = put_blob(busybox, &nested);
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": nd, "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"}
        }, index["manifests"][0]]
    });
    fs::write(
        busybox.join("index.json"),
        serde_json::to_vec(&top).unwrap(),
    )
    .unwrap();
    nd
}

/// A TCP proxy on 127.0.0.1 to `upstream` that, while armed, cuts a
/// connection once it has sent `cut_after` bytes towards the client (then
/// disarms itself).
pub struct CuttingProxy {
    pub port: u16,
    pub armed: Arc<AtomicBool>,
}

impl CuttingProxy {
    pub fn start(upstream: u16, cut_after: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(true));
        let a = armed.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(c2, s2, usize::MAX, None));
                let a = a.clone();
                std::thread::spawn(move || pump(server, client, cut_after, Some(a)));
            }
        });
        CuttingProxy { port, armed }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, cut_after: usize, armed: Option<Arc<AtomicBool>>) {
    let mut buf = [0u8; 16384];
    let mut sent = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(a) = &armed
            && a.load(Ordering::SeqCst)
            && sent + n > cut_after
        {
            a.store(false, Ordering::SeqCst);
            let _ = to.write_all(&buf[..cut_after.saturating_sub(sent)]);
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}
