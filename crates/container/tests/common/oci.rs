//! Hand-made OCI images for hostile-input and fault tests: raw tar entries
//! (any name, any type, no sanity checks), digests, and OCI archives.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

/// `sha256:<hex>` of everything `r` yields.
pub fn digest_of(mut r: impl std::io::Read) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("sha256:{}", hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_level(data, flate2::Compression::fast())
}

/// gzip of `data` at compression `level`.
pub fn gzip_level(data: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Deterministic pseudo-random bytes (incompressible).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// One tar member as written, without the checks `tar::Builder` would make.
pub struct Member {
    pub name: Vec<u8>,
    pub kind: tar::EntryType,
    pub link: Vec<u8>,
    pub data: Vec<u8>,
    pub mode: u32,
    pub device: (u32, u32),
    /// PAX records written before the member (e.g. a huge `path`).
    pub pax: Vec<(String, Vec<u8>)>,
}

impl Member {
    pub fn file(name: &str, data: &[u8]) -> Member {
        Member {
            name: name.as_bytes().to_vec(),
            kind: tar::EntryType::Regular,
            link: Vec::new(),
            data: data.to_vec(),
            mode: 0o644,
            device: (0, 0),
            pax: Vec::new(),
        }
    }

    pub fn dir(name: &str) -> Member {
        Member {
            kind: tar::EntryType::Directory,
            mode: 0o755,
            ..Member::file(name, b"")
        }
    }

    pub fn symlink(name: &str, target: &str) -> Member {
        Member {
            kind: tar::EntryType::Symlink,
            link: target.as_bytes().to_vec(),
            mode: 0o777,
            ..Member::file(name, b"")
        }
    }

    pub fn hardlink(name: &str, target: &str) -> Member {
        Member {
            kind: tar::EntryType::Link,
            link: target.as_bytes().to_vec(),
            ..Member::file(name, b"")
        }
    }

    pub fn device(name: &str, kind: tar::EntryType, major: u32, minor: u32) -> Member {
        Member {
            kind,
            device: (major, minor),
            mode: 0o666,
            ..Member::file(name, b"")
        }
    }
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // "<len> <key>=<value>\n", where len counts itself.
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while body + len.to_string().len() != len {
        len = body + len.to_string().len();
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

/// A tar stream of `members`, names and link targets stored verbatim.
pub fn tar(members: &[Member]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        if !m.pax.is_empty() {
            let data: Vec<u8> = m.pax.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::XHeader);
            h.as_ustar_mut().unwrap().name[..9].copy_from_slice(b"PaxHeader");
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, &data[..]).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(m.kind);
        h.set_mode(m.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(m.data.len() as u64);
        let n = m.name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&m.name[..n]);
        let l = m.link.len().min(100);
        h.as_old_mut().linkname[..l].copy_from_slice(&m.link[..l]);
        if m.device != (0, 0) {
            h.set_device_major(m.device.0).unwrap();
            h.set_device_minor(m.device.1).unwrap();
        }
        h.set_cksum();
        b.append(&h, &m.data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// An image config for linux/amd64 with `layers` uncompressed digests.
pub fn config(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// A manifest naming `config` and `layers` (gzip layers when they start
/// with the gzip magic).
pub fn manifest(config: &[u8], layers: &[Vec<u8>]) -> Vec<u8> {
    let layer_desc: Vec<_> = layers
        .iter()
        .map(|l| {
            let mt = if l.starts_with(&[0x1f, 0x8b]) {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            } else {
                "application/vnd.oci.image.layer.v1.tar"
            };
            serde_json::json!({"mediaType": mt, "digest": digest(l), "size": l.len()})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": config.len()},
        "layers": layer_desc,
    }))
    .unwrap()
}

/// Writes an OCI archive (a tar of an OCI layout) holding one image named
/// `reference` with `layers` (already compressed or not) to `out`.
pub fn archive(out: &Path, reference: &str, layers: &[Vec<u8>]) {
    archive_with(out, reference, layers, diff_ids(layers));
}

/// The uncompressed digests of `layers`.
pub fn diff_ids(layers: &[Vec<u8>]) -> Vec<String> {
    layers
        .iter()
        .map(|l| {
            if l.starts_with(&[0x1f, 0x8b]) {
                digest_of(flate2::read::MultiGzDecoder::new(&l[..]))
            } else {
                digest(l)
            }
        })
        .collect()
}

/// `archive` with the config's `diff_ids` given (loading does not check
/// them, so a bomb need not be expanded here to name its layer).
pub fn archive_with(out: &Path, reference: &str, layers: &[Vec<u8>], diff_ids: Vec<String>) {
    let config = config(&diff_ids);
    let manifest = manifest(&config, layers);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": reference},
        }],
    }))
    .unwrap();
    let mut members = vec![
        Member::file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        Member::file("index.json", &index),
    ];
    for blob in [&config, &manifest].into_iter().chain(layers.iter()) {
        let name = format!("blobs/sha256/{}", &digest(blob)[7..]);
        members.push(Member::file(&name, blob));
    }
    write_tar_file(out, &members);
}

/// Writes `members` as a tar file, streaming (big members are not copied).
pub fn write_tar_file(out: &Path, members: &[Member]) {
    std::fs::write(out, tar(members)).unwrap();
}

/// Writes the OCI layout at `layout` as an OCI archive whose one image is
/// named `reference`.
pub fn layout_archive(layout: &Path, reference: &str, out: &Path) {
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["annotations"] =
        serde_json::json!({"org.opencontainers.image.ref.name": reference});
    let mut members = vec![
        Member::file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        Member::file("index.json", &serde_json::to_vec(&index).unwrap()),
    ];
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = format!("blobs/sha256/{}", e.file_name().to_string_lossy());
        members.push(Member::file(&name, &std::fs::read(e.path()).unwrap()));
    }
    write_tar_file(out, &members);
}
