//! Build output: one numbered line per step (`#3 [build 2/4] RUN make`),
//! then `#3 CACHED`, the command's output, or `#3 DONE 1.2s`.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Where build progress goes.
pub trait Reporter: Send + Sync {
    /// A new step starts; returns its number.
    fn step(&self, label: &str) -> usize;
    /// Step `n` reused a cached result.
    fn cached(&self, n: usize);
    /// Output of step `n`'s command.
    fn output(&self, n: usize, data: &[u8]);
    /// Step `n` finished after `started`.
    fn done(&self, n: usize, started: Instant);
    /// A note not tied to a step (warnings).
    fn note(&self, text: &str);
}

/// Plain lines on a writer (stderr for the CLI), or nothing when quiet.
pub struct PlainReporter {
    out: Mutex<Box<dyn Write + Send>>,
    quiet: bool,
    next: AtomicUsize,
    /// Partial output lines per step, so lines are prefixed whole.
    partial: Mutex<std::collections::HashMap<usize, Vec<u8>>>,
}

impl std::fmt::Debug for PlainReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlainReporter(quiet={})", self.quiet)
    }
}

impl PlainReporter {
    /// Reports to `out`; nothing at all when `quiet`.
    pub fn new(out: Box<dyn Write + Send>, quiet: bool) -> PlainReporter {
        PlainReporter {
            out: Mutex::new(out),
            quiet,
            next: AtomicUsize::new(1),
            partial: Mutex::new(Default::default()),
        }
    }

    fn line(&self, s: &str) {
        if self.quiet {
            return;
        }
        if let Ok(mut o) = self.out.lock() {
            let _ = writeln!(o, "{s}");
            let _ = o.flush();
        }
    }
}

impl Reporter for PlainReporter {
    fn step(&self, label: &str) -> usize {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.line(&format!("#{n} {label}"));
        n
    }

    fn cached(&self, n: usize) {
        self.line(&format!("#{n} CACHED"));
    }

    fn output(&self, n: usize, data: &[u8]) {
        let mut lines = Vec::new();
        if let Ok(mut p) = self.partial.lock() {
            let buf = p.entry(n).or_default();
            buf.extend_from_slice(data);
            while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                let l: Vec<u8> = buf.drain(..=i).collect();
                lines.push(String::from_utf8_lossy(&l[..l.len() - 1]).into_owned());
            }
        }
        for l in lines {
            self.line(&format!("#{n} {}", l.trim_end_matches('\r')));
        }
    }

    fn done(&self, n: usize, started: Instant) {
        let rest = self
            .partial
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&n))
            .filter(|b| !b.is_empty());
        if let Some(b) = rest {
            self.line(&format!("#{n} {}", String::from_utf8_lossy(&b)));
        }
        self.line(&format!(
            "#{n} DONE {:.1}s",
            started.elapsed().as_secs_f64()
        ));
    }

    fn note(&self, text: &str) {
        self.line(text);
    }
}
