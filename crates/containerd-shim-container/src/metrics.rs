//! Task statistics as containerd's cgroup v2 `Metrics` (what `ctr task
//! metrics` and the CRI decode), filled from the guest cgroup's figures.

use containerd_shim_protos::cgroups_v2::metrics::{CPUStat, MemoryStat, Metrics, PidsStat};
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerization::ContainerStatistics;
use containerization_error::{ContainerizationError, Result};

/// The type URL containerd's typeurl registry knows this message by.
pub const METRICS_TYPE_URL: &str = "io.containerd.cgroups.v2.Metrics";

/// The statistics as a cgroup v2 `Metrics` message.
pub fn to_metrics(s: &ContainerStatistics) -> Metrics {
    Metrics {
        pids: Some(PidsStat {
            current: s.pids,
            ..Default::default()
        })
        .into(),
        cpu: Some(CPUStat {
            usage_usec: s.cpu_usage_usec,
            ..Default::default()
        })
        .into(),
        memory: Some(MemoryStat {
            usage: s.memory_usage_bytes,
            usage_limit: s.memory_limit_bytes,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

/// The statistics packed into an `Any`.
pub fn to_any(s: &ContainerStatistics) -> Result<Any> {
    let value = to_metrics(s)
        .write_to_bytes()
        .map_err(|e| ContainerizationError::internal("cannot encode task metrics").with_cause(e))?;
    Ok(Any {
        type_url: METRICS_TYPE_URL.into(),
        value,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_round_trip() {
        let s = ContainerStatistics {
            cpu_usage_usec: 7,
            memory_usage_bytes: 1 << 20,
            memory_limit_bytes: 512 << 20,
            pids: 3,
            ..Default::default()
        };
        let any = to_any(&s).unwrap();
        assert_eq!(any.type_url, METRICS_TYPE_URL);
        let m = Metrics::parse_from_bytes(&any.value).unwrap();
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.cpu.usage_usec, 7);
        assert_eq!(m.memory.usage_limit, 512 << 20);
    }
}
