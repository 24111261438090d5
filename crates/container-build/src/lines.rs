//! Splits Dockerfile text into directives and logical instruction lines:
//! joins continuations, drops comments, and reads heredoc bodies.

use crate::ast::{Directives, Heredoc};
use crate::error::line_error;
use containerization_error::Result;

/// One instruction as written, before its arguments are parsed.
#[derive(Debug)]
pub struct LogicalLine {
    /// 1-based line where it starts.
    pub line: usize,
    /// The instruction keyword, upper-cased.
    pub keyword: String,
    /// Everything after the keyword, continuations joined, trimmed.
    pub rest: String,
    /// Heredoc bodies read after the line, in order of their `<<` markers.
    pub heredocs: Vec<Heredoc>,
}

/// Reads the parser directives at the top of `lines`; returns them and the
/// index of the first line that is not a directive.
pub fn directives(lines: &[&str]) -> Result<(Directives, usize)> {
    let mut d = Directives::default();
    let mut seen: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some((key, value)) = directive(lines[i]) else {
            break;
        };
        let lower = key.to_ascii_lowercase();
        if !matches!(lower.as_str(), "escape" | "syntax" | "check") {
            // Unknown directives are plain comments and end the directive block.
            break;
        }
        if seen.contains(&lower) {
            return Err(line_error(
                i + 1,
                format!("only one {lower} parser directive can be used"),
            ));
        }
        seen.push(lower.clone());
        match lower.as_str() {
            "escape" => {
                d.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(line_error(
                            i + 1,
                            format!("invalid escape token '{value}': must be ` or \\"),
                        ));
                    }
                }
            }
            "syntax" => d.syntax = Some(value),
            _ => d.check = Some(value),
        }
        i += 1;
    }
    Ok((d, i))
}

/// `# key=value` with a simple key.
fn directive(line: &str) -> Option<(String, String)> {
    let t = line.trim_start().strip_prefix('#')?;
    let (key, value) = t.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((key.to_string(), value.trim().to_string()))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// The line without its trailing escape character (and whitespace after it),
/// or `None` when it does not continue.
fn continued(line: &str, escape: char) -> Option<&str> {
    line.trim_end().strip_suffix(escape)
}

/// Splits the lines after the directives into logical lines.
pub fn logical_lines(lines: &[&str], start: usize, escape: char) -> Result<Vec<LogicalLine>> {
    let mut out = Vec::new();
    let mut i = start;
    while i < lines.len() {
        let first = lines[i];
        if first.trim().is_empty() || is_comment(first) {
            i += 1;
            continue;
        }
        let line_no = i + 1;
        let mut text = String::new();
        let mut cur = first;
        i += 1;
        loop {
            match continued(cur, escape) {
                Some(head) => {
                    text.push_str(head);
                    // Comments and blank lines inside a continuation are skipped.
                    while i < lines.len() && (lines[i].trim().is_empty() || is_comment(lines[i])) {
                        i += 1;
                    }
                    if i >= lines.len() {
                        break;
                    }
                    cur = lines[i];
                    i += 1;
                }
                None => {
                    text.push_str(cur);
                    break;
                }
            }
        }
        let text = text.trim();
        let (keyword, rest) = match text.find(char::is_whitespace) {
            Some(p) => (&text[..p], text[p..].trim()),
            None => (text, ""),
        };
        let keyword = keyword.to_ascii_uppercase();
        let mut heredocs = Vec::new();
        if heredoc_capable(&keyword, rest) {
            for marker in heredoc_markers(rest, escape) {
                let (body, next) = read_heredoc(lines, i, &marker, line_no)?;
                heredocs.push(body);
                i = next;
            }
        }
        out.push(LogicalLine {
            line: line_no,
            keyword,
            rest: rest.to_string(),
            heredocs,
        });
    }
    Ok(out)
}

fn heredoc_capable(keyword: &str, rest: &str) -> bool {
    match keyword {
        "RUN" | "COPY" | "ADD" => true,
        "ONBUILD" => {
            let inner = rest
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            matches!(inner.as_str(), "RUN" | "COPY" | "ADD")
        }
        _ => false,
    }
}

/// A `<<[-]WORD` marker found in an instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The delimiter without quotes.
    pub delimiter: String,
    /// `<<-`.
    pub strip_tabs: bool,
    /// The delimiter was quoted.
    pub quoted: bool,
}

/// Parses one word as a heredoc marker, as BuildKit's `ParseHeredoc`
/// (`^\d*<<(-?)\s*([^<]*)$`): `<<EOF`, `3<<EOF`, `<<-"EOF"`, `<<eo'f'`.
/// Any unescaped quote in the delimiter disables expansion of the body.
pub fn parse_marker(word: &str, escape: char) -> Option<Marker> {
    let rest = word
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .strip_prefix("<<")?;
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let mut quoted = false;
    let mut escaped = false;
    for c in rest.chars() {
        if escaped {
            escaped = false;
        } else if c == escape {
            escaped = true;
        } else if c == '\'' || c == '"' {
            quoted = true;
        }
    }
    let delimiter = crate::shell::Lexer::new(escape, None).word(rest).ok()?;
    if delimiter.is_empty() {
        return None;
    }
    Some(Marker {
        delimiter,
        strip_tabs,
        quoted,
    })
}

/// The heredoc markers among raw shell words: (index of the first word,
/// number of words it spans, marker). `<< EOF` spans two words; a word
/// that starts with a quote is never a marker.
pub fn markers_in_words(words: &[String], escape: char) -> Vec<(usize, usize, Marker)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let bare = w.trim_start_matches(|c: char| c.is_ascii_digit());
        if (bare == "<<" || bare == "<<-") && i + 1 < words.len() {
            if let Some(m) = parse_marker(&format!("{w} {}", words[i + 1]), escape) {
                out.push((i, 2, m));
                i += 2;
                continue;
            }
        } else if let Some(m) = parse_marker(w, escape) {
            out.push((i, 1, m));
        }
        i += 1;
    }
    out
}

/// The heredoc markers in an instruction's arguments, in order; none for
/// the JSON (exec) form.
pub fn heredoc_markers(rest: &str, escape: char) -> Vec<Marker> {
    let (_, args) = crate::flags::split_flags(rest);
    if crate::instructions::json_array(args).is_some() {
        return Vec::new();
    }
    let words = crate::shell::raw_words(args, escape);
    markers_in_words(&words, escape)
        .into_iter()
        .map(|(_, _, m)| m)
        .collect()
}

fn read_heredoc(
    lines: &[&str],
    mut i: usize,
    m: &Marker,
    line_no: usize,
) -> Result<(Heredoc, usize)> {
    let mut content = String::new();
    while i < lines.len() {
        let mut l = lines[i];
        i += 1;
        if m.strip_tabs {
            l = l.trim_start_matches('\t');
        }
        if l == m.delimiter {
            return Ok((
                Heredoc {
                    delimiter: m.delimiter.clone(),
                    content,
                    expand: !m.quoted,
                    strip_tabs: m.strip_tabs,
                },
                i,
            ));
        }
        content.push_str(l);
        content.push('\n');
    }
    Err(line_error(
        line_no,
        format!("unterminated heredoc: no line '{}' closes it", m.delimiter),
    ))
}
