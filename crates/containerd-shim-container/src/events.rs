//! Task events published to containerd (`/tasks/create`, `/tasks/exit`, ...).

use std::sync::Arc;
use std::time::SystemTime;

use containerd_shim::publisher::RemotePublisher;
use containerd_shim_protos::protobuf::MessageDyn;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::ttrpc::context::Context;

/// Publishes events for one namespace; failures are logged, never fatal (an
/// event lost while containerd restarts must not fail the task).
#[derive(Clone)]
pub struct Events {
    publisher: Arc<RemotePublisher>,
    namespace: String,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Events {
    /// Events of `namespace` sent through `publisher`.
    pub fn new(publisher: RemotePublisher, namespace: &str) -> Self {
        Events {
            publisher: Arc::new(publisher),
            namespace: namespace.to_string(),
        }
    }

    /// Publishes `event` on `topic`.
    pub async fn publish(&self, topic: &str, event: Box<dyn MessageDyn>) {
        if let Err(e) = self
            .publisher
            .publish(Context::default(), topic, &self.namespace, event)
            .await
        {
            log::warn!("cannot publish {topic} event: {e}");
        }
    }
}

/// A protobuf timestamp of `t`.
pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    }
}
