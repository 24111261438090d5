//! `save`: images to an OCI archive (tar of an OCI image layout).

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use containerization_error::{Code, ContainerizationError, Result, ResultExt};
use oci_spec::image::Descriptor;
use serde_json::json;

use super::ImageStore;
use crate::media_types::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, OCI_INDEX};
use crate::platform::Platform;

impl ImageStore {
    /// Writes `references` into an OCI archive at `out` (replaced
    /// atomically). With `platform`, only that platform's manifest of each
    /// image is saved; otherwise every platform present locally.
    pub fn save(
        &self,
        references: &[String],
        platform: Option<&Platform>,
        out: &Path,
    ) -> Result<()> {
        if references.is_empty() {
            return Err(ContainerizationError::invalid_argument("no image to save"));
        }
        let mut tops: Vec<Descriptor> = Vec::new();
        let mut blobs: BTreeSet<String> = BTreeSet::new();
        for reference in references {
            let image = self.get(reference)?;
            let mut top = match platform {
                Some(p) => {
                    let (d, m) = image.resolve_manifest(&self.content, p)?;
                    blobs.insert(d.digest().to_string());
                    blobs.insert(m.config().digest().to_string());
                    blobs.extend(m.layers().iter().map(|l| l.digest().to_string()));
                    d
                }
                None => {
                    let mut live = std::collections::HashSet::new();
                    self.mark(&image, &mut live)?;
                    blobs.extend(live);
                    image.descriptor.clone()
                }
            };
            let mut annotations: HashMap<String, String> =
                top.annotations().clone().unwrap_or_default();
            annotations.insert(ANNOTATION_REF_NAME.into(), image.reference.clone());
            annotations.insert(ANNOTATION_CONTAINERD_NAME.into(), image.reference.clone());
            top.set_annotations(Some(annotations));
            tops.push(top);
        }
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": tops });

        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".save-")
            .tempfile_in(dir)
            .context(Code::InternalError, format!("creating '{}'", out.display()))?;
        let mut tar = tar::Builder::new(BufWriter::new(tmp.as_file()));
        let write_err = |e: std::io::Error| {
            ContainerizationError::internal(format!("writing archive '{}'", out.display()))
                .with_cause(e)
        };
        append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(write_err)?;
        let index_bytes =
            serde_json::to_vec(&index).context(Code::InternalError, "encoding index.json")?;
        append_bytes(&mut tar, "index.json", &index_bytes).map_err(write_err)?;
        for digest in &blobs {
            let hex = digest.trim_start_matches("sha256:");
            let mut file = self.content.open_blob(digest)?;
            let len = file.metadata().map_err(write_err)?.len();
            let mut header = blob_header(len);
            tar.append_data(&mut header, format!("blobs/sha256/{hex}"), &mut file)
                .map_err(write_err)?;
        }
        let mut writer = tar.into_inner().map_err(write_err)?;
        writer.flush().map_err(write_err)?;
        drop(writer);
        tmp.as_file().sync_all().map_err(write_err)?;
        tmp.persist(out).map_err(|e| write_err(e.error))?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

fn blob_header(len: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(len);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = blob_header(data.len() as u64);
    tar.append_data(&mut header, name, data)
}
