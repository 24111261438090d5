//! `--flag[=value]` options at the start of an instruction's arguments.

use crate::error::line_error;
use containerization_error::Result;

/// One flag as written: name without `--`, raw value.
#[derive(Debug, Clone)]
pub struct Flag {
    /// Name without the leading `--`.
    pub name: String,
    /// The text after `=`, unprocessed; `None` for a bare `--name`.
    pub value: Option<String>,
}

/// Splits leading `--flags` off `rest`; returns them and the remaining text.
pub fn split_flags(rest: &str) -> (Vec<Flag>, &str) {
    let mut flags = Vec::new();
    let mut s = rest.trim_start();
    while let Some(body) = s.strip_prefix("--") {
        let end = body.find(char::is_whitespace).unwrap_or(body.len());
        let token = &body[..end];
        let (name, value) = match token.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (token.to_string(), None),
        };
        flags.push(Flag { name, value });
        s = body[end..].trim_start();
    }
    (flags, s)
}

/// Fails unless every flag is in `allowed`.
pub fn check_allowed(line: usize, keyword: &str, flags: &[Flag], allowed: &[&str]) -> Result<()> {
    for f in flags {
        if !allowed.contains(&f.name.as_str()) {
            return Err(line_error(
                line,
                format!("unknown flag for {keyword}: --{}", f.name),
            ));
        }
    }
    Ok(())
}

/// The value of a bool flag: bare means true.
pub fn bool_value(line: usize, f: &Flag) -> Result<bool> {
    match f.value.as_deref() {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(line_error(
            line,
            format!(
                "invalid value for --{}: '{v}' (expected true or false)",
                f.name
            ),
        )),
    }
}

/// The value of a string flag; a bare flag is an error.
pub fn string_value(line: usize, f: &Flag) -> Result<&str> {
    f.value.as_deref().ok_or_else(|| {
        line_error(
            line,
            format!("flag --{} needs a value (--{}=...)", f.name, f.name),
        )
    })
}
