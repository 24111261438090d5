//! A small QMP client over the QEMU monitor's unix socket, written by hand
//! over serde_json: one JSON object per line in each direction.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use containerization_error::{ContainerizationError, Result};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{Mutex, broadcast, oneshot};

type Pending = Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Result<Value>>>>>;

/// An asynchronous QMP event (`STOP`, `RESUME`, `SHUTDOWN`, ...).
#[derive(Debug, Clone)]
pub struct QmpEvent {
    /// Event name.
    pub event: String,
    /// Event data, `null` when absent.
    pub data: Value,
}

/// A connected QMP session past the `qmp_capabilities` handshake.
#[derive(Debug)]
pub struct Qmp {
    writer: Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: AtomicU64,
    events: broadcast::Sender<QmpEvent>,
}

impl Qmp {
    /// Connects to the QMP socket at `path` and negotiates capabilities.
    pub async fn connect(path: &Path) -> Result<Qmp> {
        // QEMU binds the socket a moment before it listens: a refused
        // connect while the file already exists is retried briefly.
        let mut tries = 0;
        let stream = loop {
            match UnixStream::connect(path).await {
                Ok(s) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && tries < 200 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(e) => {
                    return Err(ContainerizationError::internal(format!(
                        "cannot connect to QMP at {}",
                        path.display()
                    ))
                    .with_cause(e));
                }
            }
        };
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        // The greeting comes first, before any command.
        let greeting = next_json(&mut lines).await?;
        if greeting.get("QMP").is_none() {
            return Err(ContainerizationError::internal(
                "QMP socket did not greet with a QMP banner",
            ));
        }
        let pending: Pending = Arc::default();
        let (events, _) = broadcast::channel(64);
        let qmp = Qmp {
            writer: Mutex::new(write),
            pending: pending.clone(),
            next_id: AtomicU64::new(1),
            events: events.clone(),
        };
        tokio::spawn(read_loop(lines, pending, events));
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    /// Runs `command` with optional `arguments`; returns its `return` value.
    pub async fn execute(&self, command: &str, arguments: Option<Value>) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({ "execute": command, "id": id });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| ContainerizationError::internal("QMP state poisoned"))?
            .insert(id, tx);
        let mut line = serde_json::to_vec(&msg).map_err(|e| {
            ContainerizationError::internal("cannot encode QMP command").with_cause(e)
        })?;
        line.push(b'\n');
        {
            let mut w = self.writer.lock().await;
            w.write_all(&line).await.map_err(|e| {
                ContainerizationError::internal(format!("QMP {command}: VM is gone")).with_cause(e)
            })?;
        }
        rx.await
            .map_err(|_| ContainerizationError::internal(format!("QMP {command}: VM is gone")))?
    }

    /// Subscribes to events arriving from now on.
    pub fn events(&self) -> broadcast::Receiver<QmpEvent> {
        self.events.subscribe()
    }

    /// `stop`: pauses the guest CPUs.
    pub async fn stop(&self) -> Result<()> {
        self.execute("stop", None).await.map(drop)
    }

    /// `cont`: resumes the guest CPUs.
    pub async fn cont(&self) -> Result<()> {
        self.execute("cont", None).await.map(drop)
    }

    /// `quit`: ends QEMU.
    pub async fn quit(&self) -> Result<()> {
        self.execute("quit", None).await.map(drop)
    }

    /// `query-status`: returns the run state string (`running`, `paused`, ...).
    pub async fn query_status(&self) -> Result<String> {
        let v = self.execute("query-status", None).await?;
        v.get("status")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ContainerizationError::internal("QMP query-status: no status field"))
    }
}

async fn next_json(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
) -> Result<Value> {
    let line = lines
        .next_line()
        .await
        .map_err(|e| ContainerizationError::internal("QMP read failed").with_cause(e))?
        .ok_or_else(|| ContainerizationError::internal("QMP connection closed"))?;
    serde_json::from_str(&line)
        .map_err(|e| ContainerizationError::internal("QMP sent invalid JSON").with_cause(e))
}

async fn read_loop(
    mut lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    pending: Pending,
    events: broadcast::Sender<QmpEvent>,
) {
    while let Ok(v) = next_json(&mut lines).await {
        if let Some(event) = v.get("event").and_then(Value::as_str) {
            let _ = events.send(QmpEvent {
                event: event.to_string(),
                data: v.get("data").cloned().unwrap_or(Value::Null),
            });
            continue;
        }
        let Some(id) = v.get("id").and_then(Value::as_u64) else {
            continue;
        };
        let Some(tx) = pending.lock().ok().and_then(|mut p| p.remove(&id)) else {
            continue;
        };
        let result = if let Some(ret) = v.get("return") {
            Ok(ret.clone())
        } else {
            let desc = v
                .pointer("/error/desc")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            Err(ContainerizationError::internal(format!("QMP: {desc}")))
        };
        let _ = tx.send(result);
    }
    // Connection gone: fail every waiter instead of leaving it hanging.
    if let Ok(mut p) = pending.lock() {
        p.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    /// A fake QMP server speaking the protocol's framing.
    #[tokio::test]
    async fn handshake_command_and_event() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut lines = BufReader::new(r).lines();
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
                .await
                .unwrap();
            while let Some(line) = lines.next_line().await.unwrap() {
                let v: Value = serde_json::from_str(&line).unwrap();
                let id = v["id"].clone();
                let reply = match v["execute"].as_str().unwrap() {
                    "query-status" => {
                        w.write_all(b"{\"event\": \"STOP\", \"timestamp\": {}}\n")
                            .await
                            .unwrap();
                        json!({"return": {"status": "paused", "running": false}, "id": id})
                    }
                    "bogus" => {
                        json!({"error": {"class": "CommandNotFound", "desc": "no bogus"}, "id": id})
                    }
                    _ => json!({"return": {}, "id": id}),
                };
                let mut b = serde_json::to_vec(&reply).unwrap();
                b.push(b'\n');
                w.write_all(&b).await.unwrap();
            }
        });
        let qmp = Qmp::connect(&sock).await.unwrap();
        let mut ev = qmp.events();
        assert_eq!(qmp.query_status().await.unwrap(), "paused");
        assert_eq!(ev.recv().await.unwrap().event, "STOP");
        let err = qmp.execute("bogus", None).await.unwrap_err();
        assert!(err.message.contains("no bogus"));
        drop(qmp);
        server.await.unwrap();
    }
}
