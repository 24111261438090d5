//! Shows pull/push progress: indicatif bars on a terminal, plain lines
//! otherwise, or nothing.

use std::collections::HashMap;
use std::io::IsTerminal;

use container_api::apiserver::{ImageInfo, Progress, transfer_event};
use container_api::client::TransferStream;
use containerization_error::{Code, ContainerizationError, Result};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ProgressMode;

/// Consumes a transfer stream, rendering progress; returns the final image.
pub async fn drive(
    mut stream: TransferStream,
    mode: ProgressMode,
    verb: &str,
) -> Result<ImageInfo> {
    let mode = match mode {
        ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Ansi,
        ProgressMode::Auto => ProgressMode::Plain,
        m => m,
    };
    let mut view = View::new(mode, verb);
    while let Some(ev) = stream.next().await {
        match ev?.event {
            Some(transfer_event::Event::Progress(p)) => view.show(&p),
            Some(transfer_event::Event::Done(info)) => {
                view.finish();
                return Ok(info);
            }
            None => {}
        }
    }
    view.finish();
    Err(ContainerizationError::new(
        Code::Interrupted,
        "the apiserver closed the transfer before it finished; see `container system logs`",
    ))
}

struct View {
    mode: ProgressMode,
    verb: String,
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

impl View {
    fn new(mode: ProgressMode, verb: &str) -> View {
        let multi = (mode == ProgressMode::Ansi)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        View {
            mode,
            verb: verb.to_string(),
            multi,
            bars: HashMap::new(),
        }
    }

    fn show(&mut self, p: &Progress) {
        match self.mode {
            ProgressMode::Plain => self.plain(p),
            ProgressMode::Ansi => self.ansi(p),
            _ => {}
        }
    }

    fn plain(&self, p: &Progress) {
        match p.kind.as_str() {
            "resolving" => eprintln!("resolving {}", p.message),
            "blob_start" => eprintln!("{}: {} {} bytes", short(&p.digest), self.verb, p.total),
            "blob_done" if p.message == "cached" => {
                eprintln!("{}: already present", short(&p.digest))
            }
            "blob_done" => eprintln!("{}: done", short(&p.digest)),
            _ => {}
        }
    }

    fn ansi(&mut self, p: &Progress) {
        let Some(multi) = &self.multi else { return };
        match p.kind.as_str() {
            "resolving" => {
                let _ = multi.println(format!("resolving {}", p.message));
            }
            "blob_start" | "blob_bytes" | "blob_done" => {
                let bar = self.bars.entry(p.digest.clone()).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new(p.total));
                    b.set_style(
                        ProgressStyle::with_template(
                            "{prefix} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    b.set_prefix(short(&p.digest).to_string());
                    b
                });
                bar.set_length(p.total);
                bar.set_position(p.current);
                if p.kind == "blob_done" {
                    bar.finish();
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self) {
        for b in self.bars.values() {
            b.finish();
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}
