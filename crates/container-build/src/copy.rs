//! `COPY` and `ADD`: flags, sources (paths, globs, heredocs) and destination.

use crate::ast::{Add, Copy, CopySource, Heredoc};
use crate::flags::{Flag, bool_value, check_allowed, split_flags, string_value};
use crate::instructions::{Ctx, json_array};
use crate::lines::markers_in_words;
use crate::shell::raw_words;
use containerization_error::Result;

/// Parses `COPY` (`is_add` false) or `ADD`; the `Add` part is `Some` for ADD.
pub(crate) fn parse_copy(
    ctx: &Ctx<'_>,
    rest: &str,
    heredocs: &[Heredoc],
    is_add: bool,
) -> Result<(Copy, Option<Add>)> {
    let kw = if is_add { "ADD" } else { "COPY" };
    let (flags, args) = split_flags(rest);
    let allowed: &[&str] = if is_add {
        &[
            "chown",
            "chmod",
            "link",
            "exclude",
            "checksum",
            "keep-git-dir",
            "unpack",
        ]
    } else {
        &["from", "chown", "chmod", "link", "parents", "exclude"]
    };
    check_allowed(ctx.line, kw, &flags, allowed)?;
    let mut copy = Copy::default();
    let mut add = Add::default();
    for f in &flags {
        let s = |f: &Flag| -> Result<String> { ctx.word(string_value(ctx.line, f)?) };
        match f.name.as_str() {
            "from" => copy.from = Some(non_empty(ctx, f, s(f)?)?),
            "chown" => copy.chown = Some(non_empty(ctx, f, s(f)?)?),
            "chmod" => copy.chmod = Some(non_empty(ctx, f, s(f)?)?),
            "link" => copy.link = bool_value(ctx.line, f)?,
            "parents" => copy.parents = bool_value(ctx.line, f)?,
            "exclude" => copy.exclude.push(non_empty(ctx, f, s(f)?)?),
            "checksum" => add.checksum = Some(non_empty(ctx, f, s(f)?)?),
            "keep-git-dir" => add.keep_git_dir = bool_value(ctx.line, f)?,
            _ => add.unpack = Some(bool_value(ctx.line, f)?),
        }
    }
    let (words, from_json) = match json_array(args) {
        Some(v) => (v, true),
        None => (raw_words(args, ctx.escape), false),
    };
    let markers = if from_json {
        Vec::new()
    } else {
        markers_in_words(&words, ctx.escape)
    };
    let mut heredocs = heredocs.iter();
    let mut items = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        if let Some((_, span, _)) = markers.iter().find(|(start, _, _)| *start == i) {
            let h = heredocs
                .next()
                .ok_or_else(|| ctx.err(format!("{kw}: heredoc {w} has no body")))?
                .clone();
            items.push(CopySource::Heredoc(h));
            i += span;
            continue;
        }
        if from_json {
            items.push(CopySource::Path(ctx.word(w)?));
        } else {
            for p in ctx.words(w)? {
                items.push(CopySource::Path(p));
            }
        }
        i += 1;
    }
    if items.len() < 2 {
        return Err(ctx.err(format!(
            "{kw} requires at least two arguments: source(s) and destination"
        )));
    }
    copy.dest = match items.pop() {
        Some(CopySource::Path(d)) => d,
        _ => return Err(ctx.err(format!("{kw}: the destination can not be a heredoc"))),
    };
    copy.sources = items;
    // Inline files need expansion unless the delimiter was quoted.
    for src in &mut copy.sources {
        if let CopySource::Heredoc(h) = src
            && h.expand
            && ctx.vars.is_some()
        {
            h.content = expand_heredoc(ctx, &h.content)?;
        }
    }
    Ok((copy, is_add.then_some(add)))
}

/// Expands `$VAR` in a COPY heredoc body; quotes are kept as written.
fn expand_heredoc(ctx: &Ctx<'_>, body: &str) -> Result<String> {
    // Quotes are data in a file body: protect them from quote removal.
    let mut protected = String::new();
    for c in body.chars() {
        if c == '\'' || c == '"' {
            protected.push(ctx.escape);
        }
        protected.push(c);
    }
    ctx.word(&protected)
}

fn non_empty(ctx: &Ctx<'_>, f: &Flag, v: String) -> Result<String> {
    if v.is_empty() {
        Err(ctx.err(format!("--{} must not be empty", f.name)))
    } else {
        Ok(v)
    }
}
