//! Entry points for the fuzz targets (`fuzz/fuzz_targets/oci_*.rs`) and
//! their stable replay test: hostile references, platforms, and image
//! indexes, manifests and configs must give errors, never panics.

use oci_spec::image::{Descriptor, MediaType};

use crate::content::ContentStore;
use crate::image::Image;
use crate::platform::Platform;
use crate::reference::Reference;

/// A reference or platform string: parsed; what parses prints back to a
/// string that parses to the same reference.
pub fn reference(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(s) {
        let printed = r.to_string();
        let again = Reference::parse(&printed)
            .unwrap_or_else(|e| panic!("{s:?} printed as {printed:?}, which does not parse: {e}"));
        assert_eq!(again.to_string(), printed, "{s:?} does not print stably");
        let _ = (r.name(), r.tag(), r.digest());
    }
    if let Ok(p) = Platform::parse(s) {
        let _ = Platform::parse(&p.to_string());
    }
}

/// `data` is `TOP 0xff CONFIG`: TOP is stored as an image's top-level blob
/// (an index if its first byte is odd, else a manifest), CONFIG as a blob
/// beside it; a manifest's `config.digest` is pointed at CONFIG so the
/// config parser is reached. Every read of the image is then tried.
pub fn image_json(data: &[u8]) {
    let (top, config) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let Ok(content) = ContentStore::open(dir.path()) else {
        return;
    };
    let Ok(config_digest) = content.write_bytes(config) else {
        return;
    };
    let mut top = top.to_vec();
    if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&top)
        && let Some(c) = v.get_mut("config").and_then(|c| c.as_object_mut())
    {
        c.insert("digest".into(), config_digest.clone().into());
        c.insert("size".into(), config.len().into());
        top = serde_json::to_vec(&v).unwrap_or(top);
    }
    let Ok(digest) = content.write_bytes(&top) else {
        return;
    };
    let media_type = if data.first().is_some_and(|b| b % 2 == 1) {
        MediaType::ImageIndex
    } else {
        MediaType::ImageManifest
    };
    let Ok(digest) = digest.parse::<oci_spec::image::Digest>() else {
        return;
    };
    let image = Image {
        reference: "localhost/fuzz:latest".into(),
        descriptor: Descriptor::new(media_type, top.len() as u64, digest),
        created: None,
    };
    let host = Platform::host();
    let _ = image.index(&content);
    let _ = image.resolve_manifest(&content, &host);
    let _ = image.config(&content, &host);
    let _ = image.run_platform(&content, None);
    let _ = image.run_platform(&content, Some(&host));
    let _ = image.platforms(&content);
    let _ = image.local_manifests(&content);
    let _ = image.size(&content);
}
