//! Networks for containers (seed section 4: `VmnetNetwork` maps to
//! `BridgeNetwork` here): a Linux bridge per network with NAT, a TAP per
//! interface, static IPs from a persisted IPAM, and a DNS server per network
//! answering container names.

pub mod dns;
pub mod host;
pub mod ipam;
pub mod mac;
pub mod networks;
pub mod tap;

pub use host::{HostNetwork, KernelNetwork};
pub use networks::{
    Attachment, DEFAULT_NETWORK, DEFAULT_SUBNET, NetworkConfiguration, NetworkState, Networks,
};

/// The seed's name for a network: here a bridge network.
pub type VmnetNetwork = Networks;
