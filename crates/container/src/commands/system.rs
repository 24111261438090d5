//! `container system start|stop|status|version|logs`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use container_api::StateRoot;
use containerization_error::{Code, Result, ResultExt};

use crate::cli::{Format, FormatArgs, SystemCommand, SystemLogsArgs};
use crate::daemon;

/// Runs one `system` subcommand.
pub async fn run(root: &StateRoot, cmd: SystemCommand) -> Result<i32> {
    match cmd {
        SystemCommand::Start(a) => {
            if let Some((_, info)) = daemon::running(root).await {
                println!("container system is already running (pid {})", info.pid);
                return Ok(0);
            }
            let info = daemon::start(root, Duration::from_secs(a.timeout)).await?;
            println!(
                "container system started (pid {}, root {})",
                info.pid, info.root
            );
            Ok(0)
        }
        SystemCommand::Stop(a) => {
            let Some((client, info)) = daemon::running(root).await else {
                println!("container system is not running");
                return Ok(0);
            };
            daemon::stop(root, &client, info.pid, Duration::from_secs(a.timeout)).await?;
            println!("container system stopped");
            Ok(0)
        }
        SystemCommand::Status => match daemon::running(root).await {
            Some((_, info)) => {
                println!("apiserver is running");
                println!("version: {}", info.version);
                println!("pid: {}", info.pid);
                println!("root: {}", info.root);
                println!("started: {}", info.started);
                Ok(0)
            }
            None => {
                println!("apiserver is not running");
                Ok(1)
            }
        },
        SystemCommand::Version(f) => version(root, f).await,
        SystemCommand::Logs(a) => logs(root, a).await,
    }
}

async fn version(root: &StateRoot, f: FormatArgs) -> Result<i32> {
    let server = daemon::running(root).await.map(|(_, i)| i.version);
    match f.format {
        Format::Json => println!(
            "{}",
            serde_json::json!({"cli": container_api::VERSION, "apiserver": server})
        ),
        Format::Table => {
            println!("container CLI version {}", container_api::VERSION);
            match server {
                Some(v) => println!("container-apiserver version {v}"),
                None => println!("container-apiserver: not running"),
            }
        }
    }
    Ok(0)
}

async fn logs(root: &StateRoot, a: SystemLogsArgs) -> Result<i32> {
    let path = root.apiserver_log();
    let mut file = std::fs::File::open(&path).context(
        Code::NotFound,
        format!(
            "no apiserver log at {}: has `container system start` run?",
            path.display()
        ),
    )?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .context(Code::InternalError, format!("reading {}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let skip = a.last.map(|n| lines.len().saturating_sub(n)).unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for l in &lines[skip..] {
        let _ = writeln!(out, "{l}");
    }
    let _ = out.flush();
    drop(out);
    if !a.follow {
        return Ok(0);
    }
    let mut pos = file
        .seek(SeekFrom::End(0))
        .context(Code::InternalError, "seeking the log")?;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(pos);
        if len < pos {
            pos = 0; // truncated
        }
        if len > pos {
            let mut buf = Vec::new();
            file.seek(SeekFrom::Start(pos))
                .and_then(|_| file.read_to_end(&mut buf))
                .context(Code::InternalError, "reading the log")?;
            pos += buf.len() as u64;
            let mut out = std::io::stdout().lock();
            if out.write_all(&buf).and_then(|_| out.flush()).is_err() {
                return Ok(0); // reader went away (e.g. `| head`)
            }
        }
    }
}
