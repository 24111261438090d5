//! Network interfaces of a container (seed sections 4.1-4.3).

use async_trait::async_trait;
use containerization_error::Result;

/// A network interface the container gets.
pub trait Interface: Send + Sync + std::fmt::Debug {
    /// IPv4 address with prefix length, e.g. `192.168.64.3/24`.
    fn address(&self) -> &str;
    /// Default-route gateway, if any.
    fn gateway(&self) -> Option<&str>;
    /// MAC address, or `None` to let the VMM choose.
    fn mac_address(&self) -> Option<&str>;
    /// Host TAP device backing this interface, if any.
    fn tap(&self) -> Option<&str> {
        None
    }
}

/// A NAT'd interface on a host bridge (seed `NATInterface`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NATInterface {
    /// CIDR address.
    pub address: String,
    /// Gateway address.
    pub gateway: Option<String>,
    /// MAC address.
    pub mac_address: Option<String>,
    /// Host TAP device.
    pub tap: Option<String>,
}

impl NATInterface {
    /// An interface with `address` and `gateway`.
    pub fn new(address: &str, gateway: Option<&str>, mac_address: Option<&str>) -> Self {
        NATInterface {
            address: address.into(),
            gateway: gateway.map(Into::into),
            mac_address: mac_address.map(Into::into),
            tap: None,
        }
    }
}

impl Interface for NATInterface {
    fn address(&self) -> &str {
        &self.address
    }
    fn gateway(&self) -> Option<&str> {
        self.gateway.as_deref()
    }
    fn mac_address(&self) -> Option<&str> {
        self.mac_address.as_deref()
    }
    fn tap(&self) -> Option<&str> {
        self.tap.as_deref()
    }
}

/// Allocates interfaces for containers (seed `Network`).
#[async_trait]
pub trait Network: Send + Sync + std::fmt::Debug {
    /// Allocates an interface for container `id`.
    async fn create(&self, id: &str) -> Result<Box<dyn Interface>>;
    /// Releases the interface of container `id`.
    async fn release(&self, id: &str) -> Result<()>;
}
