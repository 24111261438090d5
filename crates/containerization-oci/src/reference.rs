//! Image references (`[domain/]path[:tag][@digest]`), parsed as Docker's
//! distribution/reference does. Validation is delegated to
//! `oci_spec::distribution::Reference`; this type keeps what the user wrote
//! (no implied domain or tag) so `normalize` is explicit.

use std::fmt;

use containerization_error::{ContainerizationError, Result};
use oci_spec::distribution::{ParseError, Reference as SpecReference};

use crate::digest::validate_digest;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
pub(crate) const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses `s`; errors are `InvalidArgument` quoting `s`.
    pub fn parse(s: &str) -> Result<Reference> {
        let invalid = |why: &str| {
            ContainerizationError::invalid_argument(format!("invalid reference '{s}': {why}"))
        };
        if let Err(e) = SpecReference::try_from(s) {
            let why = match e {
                ParseError::ReferenceInvalidFormat
                    if SpecReference::try_from(s.to_ascii_lowercase().as_str()).is_ok() =>
                {
                    "repository name must be lowercase".to_string()
                }
                other => other.to_string(),
            };
            return Err(invalid(&why));
        }
        // The grammar is valid; split it the way distribution/reference does.
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (s, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid(&format!(
                "repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
            )));
        }
        if let Some(d) = &digest {
            validate_digest(d).map_err(|e| invalid(&e.message))?;
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first.to_string()), rest.to_string())
            }
            _ => (None, name.to_string()),
        };
        if path.len() == 64 && path.bytes().all(|b| b.is_ascii_hexdigit()) && domain.is_none() {
            return Err(invalid(
                "cannot specify 64-byte hexadecimal strings as a repository name",
            ));
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The registry host (and port) as written, if any.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The registry host to contact: the domain, or `docker.io`.
    pub fn resolved_domain(&self) -> String {
        match self.domain.as_deref() {
            None | Some(LEGACY_DEFAULT_DOMAIN) => DEFAULT_DOMAIN.to_string(),
            Some(d) => d.to_string(),
        }
    }

    /// The repository path (without domain, tag or digest).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `domain/path`, or just `path` without a domain.
    pub fn name(&self) -> String {
        match &self.domain {
            Some(d) => format!("{d}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// A copy with `tag` (validated) in place of the current tag.
    pub fn with_tag(&self, tag: &str) -> Result<Reference> {
        let candidate = format!("{}:{tag}", self.name());
        let parsed = Reference::parse(&candidate)
            .map_err(|_| ContainerizationError::invalid_argument(format!("invalid tag '{tag}'")))?;
        Ok(Reference {
            tag: parsed.tag,
            ..self.clone()
        })
    }

    /// A copy with `digest` (validated) in place of the current digest.
    pub fn with_digest(&self, digest: &str) -> Result<Reference> {
        validate_digest(digest)?;
        Ok(Reference {
            digest: Some(digest.to_string()),
            ..self.clone()
        })
    }

    /// A copy with the implied Docker Hub domain (and `library/` for
    /// single-component paths) made explicit.
    pub fn resolve_domain(&self) -> Reference {
        let domain = self.resolved_domain();
        let path = if domain == DEFAULT_DOMAIN && !self.path.contains('/') {
            format!("{OFFICIAL_REPO_PREFIX}{}", self.path)
        } else {
            self.path.clone()
        };
        Reference {
            domain: Some(domain),
            path,
            ..self.clone()
        }
    }

    /// The fully qualified form: `nginx` -> `docker.io/library/nginx:latest`
    /// (`latest` only when there is neither tag nor digest).
    pub fn normalize(&self) -> Reference {
        let mut r = self.resolve_domain();
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        r
    }

    /// This reference as `oci-client` wants it (normalized).
    pub(crate) fn to_client(&self) -> oci_client::Reference {
        let n = self.normalize();
        let registry = n.domain.clone().unwrap_or_default();
        match (n.tag, n.digest) {
            (Some(t), Some(d)) => SpecReference::with_tag_and_digest(registry, n.path, t, d),
            (None, Some(d)) => SpecReference::with_digest(registry, n.path, d),
            (t, None) => {
                SpecReference::with_tag(registry, n.path, t.unwrap_or_else(|| DEFAULT_TAG.into()))
            }
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ContainerizationError;

    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerization_error::Code;

    const HEX: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    #[test]
    fn valid_references() {
        let d = format!("sha256:{HEX}");
        // input, domain, path, tag, digest
        type Case<'a> = (
            String,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            ("nginx".into(), None, "nginx", None, None),
            ("nginx:1.25".into(), None, "nginx", Some("1.25"), None),
            ("library/nginx".into(), None, "library/nginx", None, None),
            ("foo/bar/baz".into(), None, "foo/bar/baz", None, None),
            ("localhost/a".into(), Some("localhost"), "a", None, None),
            (
                "localhost:5000/a/b".into(),
                Some("localhost:5000"),
                "a/b",
                None,
                None,
            ),
            (
                "localhost:5000/a/b:v1".into(),
                Some("localhost:5000"),
                "a/b",
                Some("v1"),
                None,
            ),
            (
                "127.0.0.1:5000/test/busybox:latest".into(),
                Some("127.0.0.1:5000"),
                "test/busybox",
                Some("latest"),
                None,
            ),
            (
                format!("host:5000/p@{d}"),
                Some("host:5000"),
                "p",
                None,
                Some(d.as_str()),
            ),
            (
                format!("host:5000/p:t@{d}"),
                Some("host:5000"),
                "p",
                Some("t"),
                Some(d.as_str()),
            ),
            ("test.com:5000".into(), None, "test.com", Some("5000"), None),
            (
                "a.b/c_d/e__f/g-h---i:Tag_1.x".into(),
                Some("a.b"),
                "c_d/e__f/g-h---i",
                Some("Tag_1.x"),
                None,
            ),
            (
                "ghcr.io/org/app:v1.2.3".into(),
                Some("ghcr.io"),
                "org/app",
                Some("v1.2.3"),
                None,
            ),
            (
                "xn--7o8h.com/myimage".into(),
                Some("xn--7o8h.com"),
                "myimage",
                None,
                None,
            ),
        ];
        for (input, domain, path, tag, digest) in cases {
            let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.domain(), domain, "{input}");
            assert_eq!(r.path(), path, "{input}");
            assert_eq!(r.tag(), tag, "{input}");
            assert_eq!(r.digest(), digest, "{input}");
            assert_eq!(r.to_string(), input, "display round-trips");
        }
    }

    #[test]
    fn invalid_references_are_invalid_argument_quoting_the_input() {
        let long_name = format!("a/{}", "b".repeat(254));
        let cases = vec![
            "".to_string(),
            "Nginx".into(),
            "docker.io/Library/nginx".into(),
            "nginx:".into(),
            ":tag".into(),
            "a//b".into(),
            "/a".into(),
            "a/".into(),
            "a:b:c".into(),
            "nginx@sha256:abc".into(),
            format!("nginx@sha256:{}", HEX.to_uppercase()),
            format!("nginx@md5:{HEX}"),
            format!("nginx@{HEX}"),
            "nginx:-tag".into(),
            format!("nginx:{}", "t".repeat(129)),
            "a b".into(),
            "-a".into(),
            "a/-b".into(),
            "a..b/c".into(),
            "host:port/a".into(),
            long_name,
            HEX.into(),
        ];
        for input in cases {
            let err = Reference::parse(&input).expect_err(&input);
            assert!(err.is_code(Code::InvalidArgument), "{input}: {err}");
            assert!(err.message.contains(&format!("'{input}'")), "{err}");
        }
        let err = Reference::parse("Nginx").unwrap_err();
        assert!(err.message.contains("lowercase"), "{err}");
    }

    #[test]
    fn name_limit_counts_the_whole_name() {
        let ok = format!("a/{}", "b".repeat(253));
        assert_eq!(ok.len(), 255);
        Reference::parse(&ok).unwrap();
    }

    #[test]
    fn normalization() {
        let n = |s: &str| Reference::parse(s).unwrap().normalize().to_string();
        assert_eq!(n("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(n("user/app:1"), "docker.io/user/app:1");
        assert_eq!(n("index.docker.io/nginx"), "docker.io/library/nginx:latest");
        assert_eq!(n("localhost:5000/a"), "localhost:5000/a:latest");
        let d = format!("sha256:{HEX}");
        assert_eq!(
            n(&format!("nginx@{d}")),
            format!("docker.io/library/nginx@{d}")
        );
        let r = Reference::parse("nginx").unwrap();
        assert_eq!(r.domain(), None);
        assert_eq!(r.resolved_domain(), "docker.io");
        assert_eq!(r.resolve_domain().to_string(), "docker.io/library/nginx");
        assert_eq!(r.with_tag("v2").unwrap().to_string(), "nginx:v2");
        assert!(
            r.with_tag("bad tag")
                .unwrap_err()
                .is_code(Code::InvalidArgument)
        );
        assert_eq!(r.with_digest(&d).unwrap().to_string(), format!("nginx@{d}"));
        assert!(r.with_digest("sha256:xyz").is_err());
        let c = Reference::parse("localhost:5000/a/b").unwrap().to_client();
        assert_eq!(c.registry(), "localhost:5000");
        assert_eq!(c.repository(), "a/b");
        assert_eq!(c.tag(), Some("latest"));
    }
}
