//! DNS configuration rendered to `/etc/resolv.conf` (seed section 4.5).

/// Resolver configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DNS {
    /// Nameserver addresses.
    pub nameservers: Vec<String>,
    /// Local domain.
    pub domain: Option<String>,
    /// Search domains.
    pub search_domains: Vec<String>,
    /// Resolver options (`ndots:2`, ...).
    pub options: Vec<String>,
}

impl DNS {
    /// The nameservers used when none are given (the seed's `1.1.1.1`).
    pub fn default_nameservers() -> Vec<String> {
        vec!["1.1.1.1".to_string()]
    }

    /// A configuration with these nameservers and nothing else.
    pub fn new(nameservers: Vec<String>) -> Self {
        DNS {
            nameservers,
            domain: None,
            search_domains: Vec::new(),
            options: Vec::new(),
        }
    }

    /// The `resolv.conf` text.
    pub fn resolv_conf(&self) -> String {
        let mut out = String::new();
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if let Some(d) = &self.domain {
            out.push_str(&format!("domain {d}\n"));
        }
        if !self.search_domains.is_empty() {
            out.push_str(&format!("search {}\n", self.search_domains.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

impl Default for DNS {
    fn default() -> Self {
        DNS::new(DNS::default_nameservers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_all_fields() {
        let dns = DNS {
            nameservers: vec!["8.8.8.8".into(), "8.8.4.4".into()],
            domain: Some("corp".into()),
            search_domains: vec!["example.com".into(), "b.org".into()],
            options: vec!["ndots:2".into()],
        };
        assert_eq!(
            dns.resolv_conf(),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\ndomain corp\nsearch example.com b.org\noptions ndots:2\n"
        );
        assert_eq!(DNS::default().resolv_conf(), "nameserver 1.1.1.1\n");
    }
}
