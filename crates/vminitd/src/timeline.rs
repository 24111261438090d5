//! The agent's boot milestones on the guest clock (CLOCK_BOOTTIME), kept in
//! memory as they happen (a vDSO clock read each, no output). With
//! `vminitd_timeline=1` on the kernel command line the agent prints them on
//! its console as one line when it answers its second Ping, after the
//! first answer has gone out, so printing costs the measured boot nothing.
//! The boot benchmark reads that line to show where the guest's time goes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// Milestones so far: (name, uptime in seconds).
static MARKS: Mutex<Vec<(&'static str, f64)>> = Mutex::new(Vec::new());

/// Pings answered so far (only the first two matter).
static PINGS: AtomicU32 = AtomicU32::new(0);

/// The console line's prefix (the bench looks for it).
pub const PREFIX: &str = "vminitd: timeline";

/// Records milestone `name` at the current uptime.
pub fn mark(name: &'static str) {
    let at = crate::sys::uptime();
    if let Ok(mut marks) = MARKS.lock() {
        marks.push((name, at));
    }
}

/// When milestone `name` was first reached, if it was.
pub fn at(name: &str) -> Option<f64> {
    find(&MARKS.lock().ok()?, name)
}

/// The uptime of milestone `name` among `marks` (recorded here, or parsed
/// from a console line by [`parse`]).
pub fn find<S: AsRef<str>>(marks: &[(S, f64)], name: &str) -> Option<f64> {
    marks
        .iter()
        .find(|(n, _)| n.as_ref() == name)
        .map(|(_, t)| *t)
}

/// Called by each Ping: the first is marked; at the second, the line is
/// printed if the command line asked for it.
pub fn on_ping() {
    match PINGS.fetch_add(1, Ordering::Relaxed) {
        0 => mark("first-ping"),
        1 if std::env::var_os("vminitd_timeline").is_some() => eprintln!("{}", line()),
        _ => {}
    }
}

/// `vminitd: timeline name=uptime ...`, uptimes in seconds.
pub fn line() -> String {
    let marks = MARKS.lock().map(|m| m.clone()).unwrap_or_default();
    let mut out = PREFIX.to_string();
    for (name, at) in marks {
        out.push_str(&format!(" {name}={at:.4}"));
    }
    out
}

/// Parses a `line()` back into (name, uptime) pairs; None if `text` holds no
/// timeline line.
pub fn parse(text: &str) -> Option<Vec<(String, f64)>> {
    let rest = text
        .lines()
        .find_map(|l| l.split_once(PREFIX).map(|(_, r)| r))?;
    Some(
        rest.split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_parses_back() {
        mark("a");
        mark("b");
        let text = format!("noise\n[ 1.0] {}\nmore", line());
        let parsed = parse(&text).expect("a timeline");
        let position = |name: &str| parsed.iter().position(|(n, _)| n == name);
        let (a, b) = (position("a").expect("a"), position("b").expect("b"));
        assert!(a < b && parsed[a].1 <= parsed[b].1, "{parsed:?}");
        // The recorded and the parsed milestones agree (to the line's 0.1 ms).
        let (at_a, at_b) = (at("a").expect("a"), at("b").expect("b"));
        assert!(at_a <= at_b);
        assert!((find(&parsed, "a").expect("a") - at_a).abs() < 1e-4);
        assert_eq!(at("never"), None);
        assert_eq!(find(&parsed, "never"), None);
        assert!(parse("no line here").is_none());
    }
}
