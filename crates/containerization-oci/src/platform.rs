//! Platforms (`os/architecture[/variant]`) and manifest selection from an
//! index, with containerd's normalisation (`aarch64` = `arm64`, `arm64` =
//! `arm64/v8`, `arm` = `arm/v7`).

use std::fmt;

use containerization_error::{ContainerizationError, Result};
use oci_spec::image::{Descriptor, ImageIndex};

/// An operating system, CPU architecture and optional variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Architecture in OCI spelling, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// Variant, e.g. `v8` for arm64.
    pub variant: Option<String>,
}

const KNOWN_OS: [&str; 6] = ["linux", "windows", "darwin", "freebsd", "netbsd", "openbsd"];

impl Platform {
    /// A Linux platform.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// The platform this process runs on (always `linux/<arch>`).
    pub fn host() -> Platform {
        Platform::from_arch(std::env::consts::ARCH)
    }

    /// `linux/<arch>` from an architecture name in Rust, GNU or OCI spelling.
    pub fn from_arch(arch: &str) -> Platform {
        let (architecture, variant) = normalize_arch(arch, None);
        Platform {
            os: "linux".to_string(),
            architecture,
            variant,
        }
    }

    /// Parses `os[/arch[/variant]]`, or a bare architecture (`arm64`).
    pub fn parse(s: &str) -> Result<Platform> {
        let invalid = |why: &str| {
            ContainerizationError::invalid_argument(format!("invalid platform '{s}': {why}"))
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(invalid("expected os/arch[/variant]"));
        }
        if parts.iter().any(|p| {
            !p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }) {
            return Err(invalid("only letters, digits, '_' and '-' are allowed"));
        }
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let (os, arch, variant) = match lower.as_slice() {
            [one] if KNOWN_OS.contains(&one.as_str()) => {
                let host = Platform::host();
                (one.clone(), host.architecture, host.variant)
            }
            [arch] => {
                let (a, v) = normalize_arch(arch, None);
                ("linux".to_string(), a, v)
            }
            [os, arch] => {
                let (a, v) = normalize_arch(arch, None);
                (os.clone(), a, v)
            }
            [os, arch, variant] => {
                let (a, v) = normalize_arch(arch, Some(variant));
                (os.clone(), a, v)
            }
            _ => return Err(invalid("expected os/arch[/variant]")),
        };
        Ok(Platform {
            os,
            architecture: arch,
            variant,
        })
    }

    /// The platform of an index entry, if it declares one.
    pub fn of_descriptor(d: &Descriptor) -> Option<Platform> {
        let p = d.platform().as_ref()?;
        let (architecture, variant) =
            normalize_arch(&p.architecture().to_string(), p.variant().as_deref());
        Some(Platform {
            os: p.os().to_string(),
            architecture,
            variant,
        })
    }

    /// True when an image for `other` runs here, comparing after
    /// normalisation; a missing variant matches the default variant.
    pub fn matches(&self, other: &Platform) -> bool {
        self.rank(other).is_some()
    }

    /// Lower is better; `None` means incompatible. arm/v7 also runs v6 and
    /// v5 images, amd64 runs v1 images, as in containerd.
    fn rank(&self, other: &Platform) -> Option<u32> {
        if self.os != other.os || self.architecture != other.architecture {
            return None;
        }
        let want = effective_variant(&self.architecture, self.variant.as_deref());
        let have = effective_variant(&other.architecture, other.variant.as_deref());
        if want == have {
            return Some(0);
        }
        if self.architecture == "arm" {
            let order = ["v8", "v7", "v6", "v5"];
            let w = order.iter().position(|v| Some(*v) == want.as_deref())?;
            let h = order.iter().position(|v| Some(*v) == have.as_deref())?;
            return (h > w).then(|| (h - w) as u32);
        }
        if self.architecture == "amd64" && have.as_deref() == Some("v1") {
            return Some(1);
        }
        None
    }

    /// The best manifest of `index` for this platform, preferring an exact
    /// match; `NotFound` listing what the index offers otherwise.
    pub fn select<'a>(&self, index: &'a ImageIndex) -> Result<&'a Descriptor> {
        index
            .manifests()
            .iter()
            .filter_map(|d| Some((self.rank(&Platform::of_descriptor(d)?)?, d)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, d)| d)
            .ok_or_else(|| {
                let offered: Vec<String> = index
                    .manifests()
                    .iter()
                    .filter_map(Platform::of_descriptor)
                    .map(|p| p.to_string())
                    .collect();
                ContainerizationError::not_found(format!(
                    "no image for platform {self} (available: {})",
                    if offered.is_empty() {
                        "none".to_string()
                    } else {
                        offered.join(", ")
                    }
                ))
            })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = ContainerizationError;

    fn from_str(s: &str) -> Result<Self> {
        Platform::parse(s)
    }
}

/// Architecture aliases to OCI names, with the variant they imply.
fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.map(str::to_ascii_lowercase);
    match arch.as_str() {
        "i386" | "i486" | "i586" | "i686" | "x86" => ("386".into(), None),
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => (
            "arm64".into(),
            match variant.as_deref() {
                Some("8") | Some("v8") | None => Some("v8".into()),
                _ => variant,
            },
        ),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => (
            "arm".into(),
            match variant.as_deref() {
                None | Some("7") => Some("v7".into()),
                Some("5") => Some("v5".into()),
                Some("6") => Some("v6".into()),
                Some("8") => Some("v8".into()),
                _ => variant,
            },
        ),
        _ => (arch, variant),
    }
}

fn effective_variant(arch: &str, variant: Option<&str>) -> Option<String> {
    normalize_arch(arch, variant).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{ImageIndexBuilder, MediaType};

    fn index(platforms: &[(&str, &str, Option<&str>)]) -> ImageIndex {
        let manifests = platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch, variant))| {
                let mut p = oci_spec::image::PlatformBuilder::default()
                    .os(oci_spec::image::Os::from(*os))
                    .architecture(oci_spec::image::Arch::from(*arch));
                if let Some(v) = variant {
                    p = p.variant(v.to_string());
                }
                let digest: oci_spec::image::Digest =
                    format!("sha256:{:064x}", i + 1).parse().unwrap();
                let mut d = Descriptor::new(MediaType::ImageManifest, 1, digest);
                d.set_platform(Some(p.build().unwrap()));
                d
            })
            .collect::<Vec<_>>();
        ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .unwrap()
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/arm64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/aarch64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("arm64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(Platform::from_arch("x86_64").to_string(), "linux/amd64");
        assert_eq!(Platform::from_arch("aarch64").to_string(), "linux/arm64/v8");
        for bad in ["", "linux/", "/amd64", "linux/amd64/v1/x", "li nux/amd64"] {
            let e = Platform::parse(bad).unwrap_err();
            assert!(e.message.contains(&format!("'{bad}'")), "{e}");
        }
        assert!(Platform::host().os == "linux");
    }

    #[test]
    fn selection_prefers_exact_and_applies_variant_defaults() {
        let idx = index(&[
            ("linux", "amd64", None),
            ("linux", "arm", Some("v6")),
            ("linux", "arm", Some("v7")),
            ("linux", "arm64", Some("v8")),
            ("unknown", "unknown", None),
        ]);
        let pick = |p: &str| {
            let d = Platform::parse(p).unwrap().select(&idx).unwrap();
            Platform::of_descriptor(d).unwrap().to_string()
        };
        assert_eq!(pick("linux/amd64"), "linux/amd64");
        assert_eq!(pick("linux/arm64"), "linux/arm64/v8");
        assert_eq!(pick("linux/arm/v7"), "linux/arm/v7");
        assert_eq!(pick("linux/arm/v6"), "linux/arm/v6");
        // arm64 without variant in the index still matches arm64/v8.
        let idx2 = index(&[("linux", "arm64", None)]);
        assert!(
            Platform::parse("linux/arm64/v8")
                .unwrap()
                .select(&idx2)
                .is_ok()
        );
        let e = Platform::parse("linux/s390x")
            .unwrap()
            .select(&idx)
            .unwrap_err();
        assert!(e.message.contains("linux/amd64"), "{e}");
    }
}
