//! `list`, `inspect`, `logs` and `stats`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use container_api::{ApiClient, ContainerStatus, RuntimeClient, StateRoot};
use containerization_error::{Code, ContainerizationError, Result, ResultExt};

use super::{IdsArgs, ListArgs, LogsArgs, StatsArgs, get, list_all};
use crate::cli::Format;
use crate::output::{print_table, table};

/// `list`.
pub async fn list(client: &ApiClient, a: ListArgs) -> Result<i32> {
    let list = list_all(client, a.all).await?;
    if a.quiet {
        for s in &list {
            println!("{}", s.configuration.id);
        }
        return Ok(0);
    }
    match a.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&list).context(Code::InternalError, "encoding")?
        ),
        Format::Table => {
            let mut t = table(&["ID", "IMAGE", "COMMAND", "STATE", "EXIT", "ADDR", "CREATED"]);
            for s in &list {
                let c = &s.configuration;
                let mut cmd = c.process.args.join(" ");
                if cmd.len() > 30 {
                    cmd.truncate(27);
                    cmd.push_str("...");
                }
                t.add_row(vec![
                    c.id.clone(),
                    c.image.clone(),
                    cmd,
                    s.status.as_str().to_string(),
                    s.exit_code.map(|e| e.to_string()).unwrap_or_default(),
                    c.networks
                        .iter()
                        .map(|n| n.ip())
                        .collect::<Vec<_>>()
                        .join(","),
                    s.created_at.clone(),
                ]);
            }
            print_table(&t);
        }
    }
    Ok(0)
}

/// `inspect`.
pub async fn inspect(client: &ApiClient, a: IdsArgs) -> Result<i32> {
    let mut out = Vec::new();
    for id in &a.ids {
        out.push(get(client, id).await?);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&out).context(Code::InternalError, "encoding")?
    );
    Ok(0)
}

/// Prints `stdio.log` records (`<time> <stream> <text>`) as the original
/// output: stdout lines to stdout, stderr lines to stderr.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    for rec in text.lines() {
        let mut parts = rec.splitn(3, ' ');
        let (_ts, stream, line) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        if stream == Some("stderr") {
            let _ = writeln!(err, "{line}");
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = out.flush();
}

/// `logs [-f] [-n N] [--boot]`.
pub async fn logs(root: &StateRoot, client: &ApiClient, a: LogsArgs) -> Result<i32> {
    let snap = get(client, &a.id).await?;
    let dir = root.container_dir(&snap.configuration.id);
    let path = dir.join(if a.boot { "bootlog" } else { "stdio.log" });
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(_) if !a.follow => return Ok(0), // never started: no output yet
        Err(e) => {
            return Err(
                ContainerizationError::not_found(format!("no log for container {}", a.id))
                    .with_cause(e),
            );
        }
    };
    let mut text = String::new();
    file.read_to_string(&mut text)
        .context(Code::InternalError, format!("reading {}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let skip = a.lines.map(|n| lines.len().saturating_sub(n)).unwrap_or(0);
    let shown = lines[skip..].join("\n");
    if a.boot {
        println!("{shown}");
    } else {
        emit(&shown);
    }
    if !a.follow {
        return Ok(0);
    }
    let mut pos = file
        .seek(SeekFrom::End(0))
        .context(Code::InternalError, "seeking")?;
    let mut partial = String::new();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(pos);
        if len > pos {
            let mut buf = Vec::new();
            file.seek(SeekFrom::Start(pos))
                .and_then(|_| file.read_to_end(&mut buf))
                .context(Code::InternalError, "reading the log")?;
            pos += buf.len() as u64;
            partial.push_str(&String::from_utf8_lossy(&buf));
            if let Some(end) = partial.rfind('\n') {
                let complete: String = partial.drain(..=end).collect();
                if a.boot {
                    print!("{complete}");
                    let _ = std::io::stdout().flush();
                } else {
                    emit(&complete);
                }
            }
            continue;
        }
        // Follow ends when the container does (as Docker's does).
        match get(client, &a.id).await {
            Ok(s)
                if matches!(
                    s.status,
                    ContainerStatus::Running | ContainerStatus::Starting
                ) => {}
            _ => return Ok(0),
        }
    }
}

/// `stats [--no-stream] [--format]`.
pub async fn stats(root: &StateRoot, client: &ApiClient, a: StatsArgs) -> Result<i32> {
    loop {
        let ids: Vec<String> = if a.ids.is_empty() {
            list_all(client, false)
                .await?
                .into_iter()
                .map(|s| s.configuration.id)
                .collect()
        } else {
            a.ids.clone()
        };
        let mut rows = Vec::new();
        for id in &ids {
            let s = get(client, id).await?;
            if s.status != ContainerStatus::Running {
                return Err(ContainerizationError::invalid_state(format!(
                    "container {id} is not running"
                )));
            }
            let rt = RuntimeClient::connect(&root.container_dir(id).join("runtime.sock")).await?;
            let v: serde_json::Value = serde_json::from_str(&rt.statistics().await?)
                .context(Code::InternalError, "decoding statistics")?;
            rows.push(v);
        }
        match a.format {
            Format::Json => println!("{}", serde_json::Value::Array(rows)),
            Format::Table => {
                let mut t = table(&["ID", "CPU (usec)", "MEMORY", "LIMIT", "PIDS", "BLOCK I/O"]);
                for r in &rows {
                    let n = |k: &str| r[k].as_u64().unwrap_or(0);
                    t.add_row(vec![
                        r["id"].as_str().unwrap_or("").to_string(),
                        n("cpuUsageUsec").to_string(),
                        crate::output::human_size(n("memoryUsageBytes")),
                        crate::output::human_size(n("memoryLimitBytes")),
                        n("pids").to_string(),
                        format!(
                            "{} / {}",
                            crate::output::human_size(n("blockReadBytes")),
                            crate::output::human_size(n("blockWriteBytes"))
                        ),
                    ]);
                }
                print_table(&t);
            }
        }
        if a.no_stream {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
