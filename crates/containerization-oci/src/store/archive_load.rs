//! `load`: OCI archives and `docker save` archives into the store.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use containerization_archive::{ArchiveReader, Compression, detect};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use oci_spec::image::{Descriptor, ImageManifest};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::ImageStore;
use super::pull::descriptor;
use crate::image::Image;
use crate::media_types::*;
use crate::reference::Reference;

/// One image of a `docker save` manifest.json.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl ImageStore {
    /// Imports the images of an OCI archive (`index.json` + `blobs/`) or a
    /// `docker save` archive (`manifest.json` + layer tars, converted to OCI
    /// manifests), plain or gzip/zstd compressed. Every blob is verified.
    pub fn load(&self, input: &Path) -> Result<Vec<Image>> {
        let staging = tempfile::Builder::new()
            .prefix(&crate::content::ingest_prefix("load"))
            .tempdir_in(self.content.root().join("ingest"))
            .context(Code::InternalError, "creating staging directory")?;
        ArchiveReader::open(input)?.extract_contents(staging.path())?;
        // Members are read through `open_member`, which refuses symlinks
        // leading out of the staging directory; resolve it once.
        let dir = &staging
            .path()
            .canonicalize()
            .context(Code::InternalError, "resolving the staging directory")?;
        let mut written = Vec::new();
        let result = if dir.join("index.json").is_file() {
            self.load_oci_layout(dir, input, &mut written)
        } else if dir.join("manifest.json").is_file() {
            self.load_docker(dir, input, &mut written)
        } else {
            Err(ContainerizationError::invalid_argument(format!(
                "'{}' is neither an OCI archive (index.json) nor a docker save archive (manifest.json)",
                input.display()
            )))
        };
        if result.is_err() {
            self.forget_unreferenced(&written);
        }
        result
    }

    /// After a refused load: removes the blobs it wrote that no image names.
    fn forget_unreferenced(&self, written: &[String]) {
        let mut live = std::collections::HashSet::new();
        for image in self.list().unwrap_or_default() {
            let _ = self.mark(&image, &mut live);
        }
        for digest in written.iter().filter(|d| !live.contains(*d)) {
            let _ = self.content.delete(digest);
        }
    }

    fn load_oci_layout(
        &self,
        dir: &Path,
        input: &Path,
        written: &mut Vec<String>,
    ) -> Result<Vec<Image>> {
        let index: serde_json::Value = read_json(dir, &dir.join("index.json"), input)?;
        let entries: Vec<Descriptor> =
            serde_json::from_value(index.get("manifests").cloned().unwrap_or(json!([]))).context(
                Code::InvalidArgument,
                format!("'{}': index.json is invalid", input.display()),
            )?;
        let mut images = Vec::new();
        for top in entries {
            let top_digest = top.digest().to_string();
            let top_type = top.media_type().to_string();
            self.import_layout_blob(dir, &top_digest, input, written)?;
            let manifests: Vec<String> = if is_index(&top_type) {
                let idx: serde_json::Value = read_json(dir, &blob_file(dir, &top_digest), input)?;
                let children: Vec<Descriptor> =
                    serde_json::from_value(idx.get("manifests").cloned().unwrap_or(json!([])))
                        .context(
                            Code::InvalidArgument,
                            format!("'{}': invalid index {top_digest}", input.display()),
                        )?;
                // Platforms not saved in the archive are simply absent.
                children
                    .iter()
                    .map(|c| c.digest().to_string())
                    .filter(|d| blob_file(dir, d).is_file())
                    .collect()
            } else {
                vec![top_digest.clone()]
            };
            for m in manifests {
                self.import_layout_blob(dir, &m, input, written)?;
                let manifest: ImageManifest = read_json(dir, &blob_file(dir, &m), input)?;
                self.import_layout_blob(dir, manifest.config().digest().as_ref(), input, written)?;
                for layer in manifest.layers() {
                    self.import_layout_blob(dir, layer.digest().as_ref(), input, written)?;
                }
            }
            let annotations = top.annotations().clone().unwrap_or_default();
            let name = annotations.get(ANNOTATION_CONTAINERD_NAME).or_else(|| {
                annotations
                    .get(ANNOTATION_REF_NAME)
                    .filter(|n| n.contains('/') || n.contains(':'))
            });
            if let Some(name) = name {
                let key = Reference::parse(name)?.normalize().to_string();
                let mut d = top.clone();
                d.set_annotations(None);
                images.push(self.record(&key, d)?);
            }
        }
        Ok(images)
    }

    fn import_layout_blob(
        &self,
        dir: &Path,
        digest: &str,
        input: &Path,
        written: &mut Vec<String>,
    ) -> Result<()> {
        if self.content.contains(digest) {
            return Ok(());
        }
        let path = blob_file(dir, digest);
        let file = open_member(dir, &path, input).map_err(|e| {
            ContainerizationError::invalid_argument(format!(
                "'{}' is missing blob {digest}: {}",
                input.display(),
                e.message
            ))
        })?;
        self.content
            .write_verified(digest, None, file)
            .map_err(|e| {
                // A mismatch is the archive's fault; a full disk is not.
                if !e.is_code(Code::InvalidArgument) {
                    return e;
                }
                ContainerizationError::invalid_argument(format!(
                    "'{}': blob {digest} is corrupt: {}",
                    input.display(),
                    e.message
                ))
            })?;
        written.push(digest.to_string());
        Ok(())
    }

    fn load_docker(
        &self,
        dir: &Path,
        input: &Path,
        written: &mut Vec<String>,
    ) -> Result<Vec<Image>> {
        let entries: Vec<DockerEntry> = read_json(dir, &dir.join("manifest.json"), input)?;
        let mut images = Vec::new();
        for entry in entries {
            let (config_digest, config_size) = self.import_file(
                dir,
                &dir.join(safe_rel(&entry.config, input)?),
                input,
                written,
            )?;
            let mut layers = Vec::new();
            for layer in &entry.layers {
                let path = dir.join(safe_rel(layer, input)?);
                let media_type = match sniff(dir, &path, input)? {
                    Compression::Gzip => OCI_LAYER_GZIP,
                    Compression::Zstd => OCI_LAYER_ZSTD,
                    Compression::None => OCI_LAYER_TAR,
                };
                let (digest, size) = self.import_file(dir, &path, input, written)?;
                layers.push(descriptor(media_type, size, &digest)?);
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_CONFIG, config_size, &config_digest)?,
                "layers": layers,
            });
            let bytes =
                serde_json::to_vec(&manifest).context(Code::InternalError, "encoding manifest")?;
            let digest = crate::digest::sha256_digest(&bytes);
            if !self.content.contains(&digest) {
                self.content.write_bytes(&bytes)?;
                written.push(digest.clone());
            }
            let top = descriptor(OCI_MANIFEST, bytes.len() as u64, &digest)?;
            for tag in entry.repo_tags.unwrap_or_default() {
                let key = Reference::parse(&tag)?.normalize().to_string();
                images.push(self.record(&key, top.clone())?);
            }
        }
        Ok(images)
    }

    /// Stores a file under its computed digest.
    fn import_file(
        &self,
        dir: &Path,
        path: &Path,
        input: &Path,
        written: &mut Vec<String>,
    ) -> Result<(String, u64)> {
        let open = || open_member(dir, path, input);
        let mut hasher = Sha256::new();
        let mut file = open()?;
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .context(Code::InternalError, "reading archive member")?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        if !self.content.contains(&digest) {
            self.content.write_verified(&digest, Some(size), open()?)?;
            written.push(digest.clone());
        }
        Ok((digest, size))
    }
}

fn blob_file(dir: &Path, digest: &str) -> std::path::PathBuf {
    match digest.split_once(':') {
        Some((alg, hex)) if !alg.contains('/') && !hex.contains('/') && !hex.contains("..") => {
            dir.join("blobs").join(alg).join(hex)
        }
        _ => dir.join("blobs/invalid"),
    }
}

/// A member path from manifest.json that stays inside the archive.
fn safe_rel<'a>(p: &'a str, input: &Path) -> Result<&'a str> {
    if p.starts_with('/') || p.split('/').any(|c| c == "..") {
        return Err(ContainerizationError::invalid_argument(format!(
            "'{}': manifest.json names '{p}' outside the archive",
            input.display()
        )));
    }
    Ok(p)
}

fn sniff(dir: &Path, path: &Path, input: &Path) -> Result<Compression> {
    let mut prefix = [0u8; 4];
    let mut f = open_member(dir, path, input)?;
    let n = f
        .read(&mut prefix)
        .context(Code::InternalError, "reading layer")?;
    Ok(detect(&prefix[..n]))
}

/// Largest JSON document (index, manifest, config) read from an archive.
const MAX_JSON_BYTES: u64 = 8 << 20;

/// Opens the regular file `path` inside the extracted archive `dir`
/// (canonical). A symlink in the archive may point anywhere: one that
/// leads out of `dir` (say to a host file) is refused, never read.
fn open_member(dir: &Path, path: &Path, input: &Path) -> Result<File> {
    let member = path.strip_prefix(dir).unwrap_or(path).display().to_string();
    let missing = |e: std::io::Error| {
        ContainerizationError::invalid_argument(format!(
            "'{}' is missing '{member}'",
            input.display()
        ))
        .with_cause(e)
    };
    let real = path.canonicalize().map_err(missing)?;
    if !real.starts_with(dir) {
        return Err(ContainerizationError::invalid_argument(format!(
            "'{}': '{member}' is a link that leads outside the archive",
            input.display()
        )));
    }
    let file = File::open(&real).map_err(missing)?;
    let is_file = file.metadata().map(|m| m.is_file()).unwrap_or(false);
    if !is_file {
        return Err(ContainerizationError::invalid_argument(format!(
            "'{}': '{member}' is not a regular file",
            input.display()
        )));
    }
    Ok(file)
}

fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, path: &Path, input: &Path) -> Result<T> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let file = open_member(dir, path, input)?;
    let mut data = Vec::new();
    file.take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut data)
        .context(Code::InternalError, format!("reading '{name}'"))?;
    if data.len() as u64 > MAX_JSON_BYTES {
        return Err(ContainerizationError::invalid_argument(format!(
            "'{}': '{name}' is larger than the {} MiB limit for JSON documents",
            input.display(),
            MAX_JSON_BYTES >> 20
        )));
    }
    serde_json::from_slice(&data).context(
        Code::InvalidArgument,
        format!("'{}': '{name}' is not valid JSON", input.display()),
    )
}
