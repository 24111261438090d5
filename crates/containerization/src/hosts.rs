//! `/etc/hosts` content (seed section 4.6).

/// One line of a hosts file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// IP address.
    pub ip_address: String,
    /// Host names for the address.
    pub hostnames: Vec<String>,
    /// Trailing comment.
    pub comment: Option<String>,
}

impl Entry {
    /// An entry for `ip_address`.
    pub fn new(ip_address: &str, hostnames: &[&str], comment: Option<&str>) -> Entry {
        Entry {
            ip_address: ip_address.into(),
            hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
            comment: comment.map(Into::into),
        }
    }

    /// `127.0.0.1 localhost`.
    pub fn localhost_ipv4(comment: Option<&str>) -> Entry {
        Entry::new("127.0.0.1", &["localhost"], comment)
    }
    /// `::1 localhost ip6-localhost ip6-loopback`.
    pub fn localhost_ipv6(comment: Option<&str>) -> Entry {
        Entry::new(
            "::1",
            &["localhost", "ip6-localhost", "ip6-loopback"],
            comment,
        )
    }
    /// `fe00::0 ip6-localnet`.
    pub fn ipv6_local_net(comment: Option<&str>) -> Entry {
        Entry::new("fe00::0", &["ip6-localnet"], comment)
    }
    /// `ff00::0 ip6-mcastprefix`.
    pub fn ipv6_multicast_prefix(comment: Option<&str>) -> Entry {
        Entry::new("ff00::0", &["ip6-mcastprefix"], comment)
    }
    /// `ff02::1 ip6-allnodes`.
    pub fn ipv6_all_nodes(comment: Option<&str>) -> Entry {
        Entry::new("ff02::1", &["ip6-allnodes"], comment)
    }
    /// `ff02::2 ip6-allrouters`.
    pub fn ipv6_all_routers(comment: Option<&str>) -> Entry {
        Entry::new("ff02::2", &["ip6-allrouters"], comment)
    }

    /// The rendered line, without newline.
    pub fn rendered(&self) -> String {
        let mut line = format!("{} {}", self.ip_address, self.hostnames.join(" "));
        if let Some(c) = &self.comment {
            line.push_str(&format!(" # {c}"));
        }
        line
    }
}

/// A hosts file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hosts {
    /// Entries, in order.
    pub entries: Vec<Entry>,
    /// Comment put at the top.
    pub comment: Option<String>,
}

impl Hosts {
    /// A hosts file with these entries.
    pub fn new(entries: Vec<Entry>, comment: Option<&str>) -> Hosts {
        Hosts {
            entries,
            comment: comment.map(Into::into),
        }
    }

    /// The file text.
    pub fn hosts_file(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.comment {
            out.push_str(&format!("# {c}\n"));
        }
        for e in &self.entries {
            out.push_str(&e.rendered());
            out.push('\n');
        }
        out
    }
}

impl Default for Hosts {
    /// localhost for IPv4 and IPv6 plus the usual IPv6 names, like Docker's.
    fn default() -> Self {
        Hosts::new(
            vec![
                Entry::localhost_ipv4(None),
                Entry::localhost_ipv6(None),
                Entry::ipv6_local_net(None),
                Entry::ipv6_multicast_prefix(None),
                Entry::ipv6_all_nodes(None),
                Entry::ipv6_all_routers(None),
            ],
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file() {
        assert_eq!(
            Hosts::default().hosts_file(),
            "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\nff00::0 ip6-mcastprefix\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n"
        );
    }

    #[test]
    fn comments() {
        let h = Hosts::new(
            vec![Entry::new("192.168.64.10", &["service.local"], Some("svc"))],
            Some("made by container"),
        );
        assert_eq!(
            h.hosts_file(),
            "# made by container\n192.168.64.10 service.local # svc\n"
        );
    }
}
