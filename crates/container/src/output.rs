//! Table and size formatting shared by the list commands.

use comfy_table::{Table, presets::NOTHING};

/// A borderless table like Docker's and Apple's CLIs print.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(NOTHING);
    t.set_header(header.iter().map(|h| h.to_string()));
    t
}

/// Prints a table without trailing spaces.
pub fn print_table(t: &Table) {
    for line in t.to_string().lines() {
        println!("{}", line.trim_end().trim_start_matches(' '));
    }
}

/// Human-readable size (1000-based like Docker: kB, MB, GB).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[i])
    }
}

/// Splits `host/path:tag@digest` into (name, tag) for display.
pub fn split_reference(reference: &str) -> (String, String) {
    let base = reference.split('@').next().unwrap_or(reference);
    match base.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (base.to_string(), "<none>".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_references_read_well() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_500_000), "1.50 MB");
        assert_eq!(
            split_reference("127.0.0.1:5000/a/b:v1"),
            ("127.0.0.1:5000/a/b".into(), "v1".into())
        );
        assert_eq!(
            split_reference("localhost:5000/a"),
            ("localhost:5000/a".into(), "<none>".into())
        );
    }
}
