//! Hostile input through the daemon: a registry that lies (wrong digests,
//! cut connections, oversized or malformed manifests and configs, absurd
//! layer counts), archives and layers that try to climb out (path
//! traversal, links, device nodes, a decompression bomb, huge tar headers),
//! and what a container can see of the host. Each bad input gets one clear
//! error, nothing is stored or written outside the state root, and the
//! daemon keeps serving. One daemon, one VM.
//!
//! The library's own tests already pull from a real registry whose blob was
//! corrupted and through a proxy that cuts a transfer
//! (`containerization-oci/tests/registry.rs`); here the same faults and the
//! manifest-level ones come from a server written to misbehave, through the
//! CLI and the apiserver.

mod common;
#[path = "common/oci.rs"]
mod oci;
#[path = "common/procs.rs"]
mod procs;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::{Daemon, Registry, Run, assert_clear_error, busybox_layout};

/// What the server answers for one path.
#[derive(Clone)]
enum Reply {
    /// 200 with this body and a correct Content-Length.
    Body(Vec<u8>),
    /// 200 announcing `len` bytes, sending `body`, then closing.
    Cut { len: usize, body: Vec<u8> },
    /// 200 without Content-Length, `len` bytes, then close.
    Endless(usize),
}

/// A registry v2 server on 127.0.0.1 that serves canned replies and
/// records every request path.
struct Hostile {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Hostile {
    fn start() -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, s) = (routes.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (r, s) = (r.clone(), s.clone());
                std::thread::spawn(move || serve(conn, &r, &s));
            }
        });
        Hostile { port, routes, seen }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn route(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.to_string(), reply);
    }

    /// Serves `manifest` for `repo:1` and each blob under its digest.
    fn image(&self, repo: &str, manifest: &[u8], blobs: &[Vec<u8>]) {
        self.route(
            &format!("/v2/{repo}/manifests/1"),
            Reply::Body(manifest.to_vec()),
        );
        for b in blobs {
            self.blob(repo, &oci::digest(b), Reply::Body(b.clone()));
        }
    }

    fn blob(&self, repo: &str, digest: &str, reply: Reply) {
        self.route(&format!("/v2/{repo}/blobs/{digest}"), reply);
    }

    fn requests_under(&self, prefix: &str) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|p| p.starts_with(prefix)).count()
    }
}

fn serve(conn: TcpStream, routes: &Mutex<HashMap<String, Reply>>, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut header = String::new();
        while reader.read_line(&mut header).unwrap_or(0) > 2 {
            header.clear();
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = path.split('?').next().unwrap_or("").to_string();
        seen.lock().unwrap().push(path.clone());
        let reply = if path == "/v2/" {
            Some(Reply::Body(b"{}".to_vec()))
        } else {
            routes.lock().unwrap().get(&path).cloned()
        };
        let head = |len: Option<usize>| {
            let mut h = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n".to_string();
            if let Some(n) = len {
                h.push_str(&format!("Content-Length: {n}\r\n"));
            } else {
                h.push_str("Connection: close\r\n");
            }
            h.push_str("\r\n");
            h
        };
        let body_too = method != "HEAD";
        let r = match reply {
            None => {
                let msg = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#;
                let h = format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    msg.len()
                );
                out.write_all(h.as_bytes()).and_then(|_| out.write_all(msg))
            }
            Some(Reply::Body(b)) => out
                .write_all(head(Some(b.len())).as_bytes())
                .and_then(|_| if body_too { out.write_all(&b) } else { Ok(()) }),
            Some(Reply::Cut { len, body }) => {
                let _ = out.write_all(head(Some(len)).as_bytes());
                let _ = out.write_all(&body);
                return; // dropping the stream closes the connection mid-body
            }
            Some(Reply::Endless(len)) => {
                let _ = out.write_all(head(None).as_bytes());
                let chunk = vec![b' '; 64 << 10];
                let mut sent = 0;
                while sent < len && out.write_all(&chunk).is_ok() {
                    sent += chunk.len();
                }
                return;
            }
        };
        if r.is_err() {
            return;
        }
    }
}

/// Nothing at all in the store: no blob, no partial, no snapshot, no name.
fn assert_nothing_stored(d: &Daemon, what: &str) {
    let root = d.root.path();
    for dir in ["content/blobs/sha256", "content/ingest"] {
        let files = procs::files_under(&root.join(dir));
        assert!(files.is_empty(), "{what}: {dir} holds {files:?}");
    }
    let snaps: Vec<String> = procs::files_under(&root.join("snapshots"))
        .into_iter()
        .filter(|f| !f.starts_with(".locks"))
        .collect();
    assert!(snaps.is_empty(), "{what}: snapshots hold {snaps:?}");
    assert_eq!(
        d.run(&["image", "ls", "-q"]).ok().trim(),
        "",
        "{what}: the daemon still answers and lists nothing"
    );
}

/// A small valid image: one layer with one file.
fn small_image() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let layer = oci::gzip(&oci::tar(&[oci::Member::file("hello", b"hi\n")]));
    let config = oci::config(&[oci::digest(&oci::tar(&[oci::Member::file(
        "hello", b"hi\n",
    )]))]);
    let manifest = oci::manifest(&config, std::slice::from_ref(&layer));
    (manifest, config, layer)
}

#[test]
fn a_lying_registry_gets_clear_errors_and_nothing_is_stored() {
    let reg = Hostile::start();
    let d = Daemon::started();
    let (manifest, config, layer) = small_image();

    // The server itself is sound: a correct image pulls.
    reg.image("good/img", &manifest, &[config.clone(), layer.clone()]);
    let good = format!("{}/good/img:1", reg.host());
    d.run(&["image", "pull", "--progress", "none", &good]).ok();
    d.run(&["image", "rm", &good]).ok();
    assert_nothing_stored(&d, "after removing the good image");

    // A layer whose bytes do not match its digest (same length).
    let mut wrong = layer.clone();
    let mid = wrong.len() / 2;
    wrong[mid] ^= 0xff;
    reg.image("digest/img", &manifest, std::slice::from_ref(&config));
    reg.blob("digest/img", &oci::digest(&layer), Reply::Body(wrong));
    // A connection dropped in the middle of the layer.
    let big = oci::gzip(&oci::noise(1 << 20, 3));
    let cut_manifest = oci::manifest(&config, std::slice::from_ref(&big));
    reg.image("cut/img", &cut_manifest, std::slice::from_ref(&config));
    reg.blob(
        "cut/img",
        &oci::digest(&big),
        Reply::Cut {
            len: big.len(),
            body: big[..64 << 10].to_vec(),
        },
    );
    // A manifest over the 4 MiB limit, with and without Content-Length.
    let mut huge = serde_json::from_slice::<serde_json::Value>(&manifest).unwrap();
    huge["annotations"] = serde_json::json!({"pad": "x".repeat(5 << 20)});
    reg.image("huge/img", &serde_json::to_vec(&huge).unwrap(), &[]);
    reg.route("/v2/endless/img/manifests/1", Reply::Endless(64 << 20));
    // Malformed JSON: a cut manifest, an index of the wrong shape, a config
    // that is not a config.
    reg.image("badjson/img", &manifest[..manifest.len() / 2], &[]);
    reg.image(
        "badindex/img",
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":"none"}"#,
        &[],
    );
    let bad_config = br#"{"architecture": 7, "os": ["linux"], "rootfs": "#.to_vec();
    let bad_config_manifest = oci::manifest(&bad_config, std::slice::from_ref(&layer));
    reg.image(
        "badconfig/img",
        &bad_config_manifest,
        &[bad_config, layer.clone()],
    );
    // A manifest naming 5000 layers.
    let many: Vec<Vec<u8>> = (0..5000u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let many_manifest = oci::manifest(&config, &many);
    assert!(many_manifest.len() < 4 << 20);
    reg.image("many/img", &many_manifest, &[]);

    let cases = [
        ("digest", "digest mismatch"),
        ("cut", "failed"),
        ("huge", "larger than the 4 MiB limit"),
        ("endless", "larger than the 4 MiB limit"),
        ("badjson", "not valid JSON"),
        ("badindex", "image index"),
        ("badconfig", "image config"),
        ("many", "5000 layers"),
    ];
    for (repo, expect) in cases {
        let image = format!("{}/{repo}/img:1", reg.host());
        let r = d.run(&["image", "pull", "--progress", "none", &image]);
        assert_clear_error(&r, repo);
        assert!(r.stderr.contains(expect), "{repo}: {}", r.stderr);
        assert_nothing_stored(&d, repo);
    }
    assert_eq!(
        reg.requests_under("/v2/many/img/blobs/"),
        0,
        "no layer of the 5000 was requested"
    );

    // Bad references never reach a registry.
    for bad in ["Bad/Name", "bad//ref", "x@sha256:zz"] {
        let r = d.run(&["image", "pull", "--progress", "none", bad]);
        assert_clear_error(&r, bad);
        assert!(r.stderr.contains("invalid"), "{bad}: {}", r.stderr);
    }
    assert_nothing_stored(&d, "bad references");
}

/// A unique name for a file that must never appear on the host.
fn sentinel(tag: &str) -> String {
    format!("container-faults-{tag}-{}", std::process::id())
}

/// The busybox layer of the fixture (gzip bytes).
fn busybox_layer() -> Vec<u8> {
    let layout = busybox_layout();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let md = index["manifests"][0]["digest"].as_str().unwrap();
    let blob = |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&blob(md)).unwrap();
    blob(m["layers"][0]["digest"].as_str().unwrap())
}

/// gzip members of zeros whose concatenation is a tar holding one file of
/// `size` zero bytes: a bomb of a few MiB that expands to `size`.
fn zero_bomb(size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_path("zeros").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    // deflate tops out near 1030:1; best compression gets close.
    let chunk = 4u64 << 20;
    let zeros = oci::gzip_level(&vec![0u8; chunk as usize], flate2::Compression::best());
    let mut out = oci::gzip(h.as_bytes());
    for _ in 0..size / chunk {
        out.extend_from_slice(&zeros);
    }
    // The rest of the file, its padding and the end-of-archive blocks.
    let tail = (size % chunk) as usize + (512 - (size % 512) as usize) % 512 + 1024;
    out.extend_from_slice(&oci::gzip(&vec![0u8; tail]));
    out
}

/// A tar whose only member claims a metadata header of `size` bytes (gzip
/// makes the zeros it is made of almost free).
fn huge_header(kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    let mut out = oci::gzip(h.as_bytes());
    out.extend_from_slice(&oci::gzip(&vec![0u8; 1 << 20]));
    out
}

#[test]
fn hostile_archives_and_layers_are_refused_or_contained() {
    let work = tempfile::tempdir().unwrap();
    let d = Daemon::started();
    let load = |name: &str, layers: &[Vec<u8>]| -> Run {
        let path = work.path().join(format!("{name}.tar"));
        oci::archive(&path, &format!("localhost/{name}:1"), layers);
        d.run(&["image", "load", "-i", path.to_str().unwrap()])
    };
    let outside = Path::new("/tmp").join(sentinel("escape"));
    let layer = |members: &[oci::Member]| oci::tar(members);

    // Entries that climb out of the image are refused, and nothing is kept.
    let climb = format!("../../../../../../tmp/{}", sentinel("escape"));
    let refused = [
        (
            "traversal",
            layer(&[oci::Member::file(&climb, b"x")]),
            "escapes the root",
        ),
        (
            "hardlink-out",
            layer(&[oci::Member::hardlink("hl", "../../../../etc/passwd")]),
            "escapes the root",
        ),
        (
            "through-symlink",
            layer(&[
                oci::Member::symlink("up", "/"),
                oci::Member::file(&format!("up/tmp/{}", sentinel("escape")), b"x"),
            ]),
            "not a directory",
        ),
        (
            "pax-header",
            huge_header(tar::EntryType::XHeader, 2 << 30),
            "exceeds the limit",
        ),
        (
            "long-name",
            huge_header(tar::EntryType::GNULongName, 4 << 30),
            "exceeds the limit",
        ),
    ];
    for (name, l, expect) in refused {
        let r = load(name, &[l]);
        assert_clear_error(&r, name);
        assert!(r.stderr.contains(expect), "{name}: {}", r.stderr);
        assert!(r.stderr.contains("not kept"), "{name}: {}", r.stderr);
        assert!(!outside.exists(), "{name} wrote {}", outside.display());
        assert_nothing_stored(&d, name);
    }

    // The archive itself may hold links: one leading to a host file (here a
    // valid layer the test planted) is refused, never read.
    let secret = work.path().join("secret-layer.tar");
    std::fs::write(&secret, layer(&[oci::Member::file("secret", b"host data")])).unwrap();
    let secret_layer = std::fs::read(&secret).unwrap();
    let diff = oci::digest(&secret_layer);
    let config = oci::config(std::slice::from_ref(&diff));
    let manifest = oci::manifest(&config, std::slice::from_ref(&secret_layer));
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": oci::digest(&manifest), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "localhost/linked:1"}}]});
    let blob_name = |b: &[u8]| format!("blobs/sha256/{}", &oci::digest(b)[7..]);
    let linked = work.path().join("linked.tar");
    oci::write_tar_file(
        &linked,
        &[
            oci::Member::file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            oci::Member::file("index.json", &serde_json::to_vec(&index).unwrap()),
            oci::Member::file(&blob_name(&config), &config),
            oci::Member::file(&blob_name(&manifest), &manifest),
            oci::Member::symlink(&blob_name(&secret_layer), secret.to_str().unwrap()),
        ],
    );
    let r = d.run(&["image", "load", "-i", linked.to_str().unwrap()]);
    assert_clear_error(&r, "archive link to a host file");
    assert!(r.stderr.contains("outside the archive"), "{}", r.stderr);
    assert_nothing_stored(&d, "archive link");

    // A bomb: 10 GiB of zeros in a few MiB of gzip. It is unpacked as it
    // streams and zeros take no blocks, so the disk barely notices.
    let before = procs::disk_use(d.root.path());
    let bomb = zero_bomb(10 << 30);
    assert!(bomb.len() < 16 << 20, "{} bytes", bomb.len());
    let started = std::time::Instant::now();
    let path = work.path().join("bomb.tar");
    oci::archive_with(
        &path,
        "localhost/bomb:1",
        std::slice::from_ref(&bomb),
        vec![oci::digest(&bomb)],
    );
    let r = d.run(&["image", "load", "-i", path.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let grew = procs::disk_use(d.root.path()) - before;
    eprintln!(
        "bomb: {} bytes of gzip -> 10 GiB, loaded in {:.1} s, state root grew {} KiB",
        bomb.len(),
        started.elapsed().as_secs_f64(),
        grew >> 10
    );
    assert!(
        grew < bomb.len() as u64 + (32 << 20),
        "state root grew {grew} bytes"
    );
    d.run(&["image", "rm", "localhost/bomb:1"]).ok();
    assert_nothing_stored(&d, "bomb removed");

    // What stays inside the image is safe there: an absolute path is the
    // image's own /tmp, an absolute symlink resolves in the container, a
    // hard link to /etc/passwd is the image's passwd, device nodes reach
    // only the VM's own devices (and /dev/mem needs CAP_SYS_RAWIO).
    let inside = sentinel("inside");
    let odd = layer(&[
        oci::Member::file(&format!("/tmp/{inside}"), b"in-image\n"),
        oci::Member::symlink("abs-link", "/etc/shadow"),
        oci::Member::hardlink("hl", "/etc/passwd"),
        oci::Member::dir("evil"),
        oci::Member::device("evil/mem", tar::EntryType::Char, 1, 1),
        oci::Member::device("evil/vda", tar::EntryType::Block, 254, 0),
    ]);
    let r = load("odd", &[busybox_layer(), odd]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!Path::new("/tmp").join(&inside).exists());

    // One VM: the odd image's entries, and the isolation of the container.
    let host_only = Path::new("/tmp").join(sentinel("host-only"));
    std::fs::write(&host_only, b"host").unwrap();
    let script = format!(
        "cat /tmp/{inside}; readlink /abs-link; head -1 /hl; \
         stat -c '%t:%T' /evil/mem /evil/vda | tr '\\n' ' '; echo; \
         head -c 1 /evil/mem >/dev/null 2>&1 && echo mem-read || echo mem-denied; \
         test -e {host_only} && echo host-visible || echo host-hidden; \
         find / -xdev \\( -name apiserver.sock -o -name 'container-root-*' \\) | head -3; \
         grep -c virtiofs /proc/mounts; ls /",
        host_only = host_only.display()
    );
    let r = d.run(&["run", "--rm", "localhost/odd:1", "sh", "-c", &script]);
    let _ = std::fs::remove_file(&host_only);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "in-image", "{}", r.stdout);
    assert_eq!(lines[1], "/etc/shadow", "{}", r.stdout);
    assert!(lines[2].starts_with("root:x:0:0"), "{}", r.stdout);
    assert_eq!(lines[3].trim(), "1:1 fe:0", "device numbers: {}", r.stdout);
    assert_eq!(lines[4], "mem-denied", "{}", r.stdout);
    assert_eq!(lines[5], "host-hidden", "{}", r.stdout);
    assert_eq!(
        lines[6], "0",
        "no host share, no daemon socket: {}",
        r.stdout
    );
    let top: Vec<&str> = lines[7..].to_vec();
    for name in ["bin", "etc", "evil", "hl", "abs-link", "tmp"] {
        assert!(top.contains(&name), "ls / shows the image: {top:?}");
    }
    assert!(!top.iter().any(|n| n.contains("container-root")), "{top:?}");
}

#[test]
fn the_socket_is_private_and_passwords_never_leak() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let password = format!("pw-{}-leak-check", std::process::id());
    let htpasswd = work.path().join("htpasswd");
    let out = std::process::Command::new("htpasswd")
        .args(["-Bbn", "u", &password])
        .output()
        .expect("htpasswd is installed (apt-get install apache2-utils)");
    std::fs::write(&htpasswd, &out.stdout).unwrap();
    let reg = Registry::start(Some(&htpasswd));
    reg.push_busybox("private/busybox:latest", Some(&format!("u:{password}")));
    let d = Daemon::started();

    let mode = std::fs::metadata(d.root.path().join("apiserver.sock"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert!(mode == 0o600 || mode == 0o660, "socket mode {mode:o}");
    assert_eq!(mode & 0o002, 0, "not world-writable");

    let login = [
        "registry",
        "login",
        "-u",
        "u",
        "--password-stdin",
        &reg.host(),
    ];
    let r = d.run_with_stdin(&login, &format!("{password}-wrong\n"));
    assert_clear_error(&r, "wrong password");
    assert!(!r.stderr.contains(&password), "{}", r.stderr);
    d.run_with_stdin(&login, &format!("{password}\n")).ok();
    let image = format!("{}/private/busybox:latest", reg.host());
    d.run(&["image", "pull", "--progress", "none", &image]).ok();
    let missing = format!("{}/private/nosuch:1", reg.host());
    let r = d.run(&["image", "pull", "--progress", "none", &missing]);
    assert_clear_error(&r, "missing image");
    assert!(!r.stderr.contains(&password), "{}", r.stderr);
    d.run(&["create", "--name", "c", &image, "true"]).ok();
    let inspect = d.run(&["inspect", "c"]).ok();
    assert!(!inspect.contains(&password), "{inspect}");
    let logs = d.run(&["system", "logs"]).ok();
    assert!(logs.contains("pull"), "the log has content: {logs}");
    assert!(!logs.contains(&password), "system logs");
    // Nowhere in the state root but the 0600 credentials file.
    for f in procs::files_under(d.root.path()) {
        let path = d.root.path().join(&f);
        // Image data and disks (large, sparse) hold only what images hold.
        if f.starts_with("content") || f.starts_with("snapshots") || f.ends_with(".qcow2") {
            continue;
        }
        if f == "credentials.json" {
            let m = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600, "credentials.json mode");
            continue;
        }
        if path.is_file() && !path.is_symlink() {
            let data = std::fs::read(&path).unwrap_or_default();
            assert!(
                !data
                    .windows(password.len())
                    .any(|w| w == password.as_bytes()),
                "the password is in {f}"
            );
        }
    }
}
