//! Parses the arguments of each instruction (except FROM) into typed form.

use crate::ast::{
    Add, ArgDecl, Command, Copy, CopySource, Healthcheck, Heredoc, InstructionKind, NetworkMode,
    Onbuild, PortSpec, Protocol, Run,
};
use crate::error::line_error;
use crate::flags::{Flag, bool_value, check_allowed, split_flags, string_value};
use crate::lines::markers_in_words;
use crate::shell::{Lexer, Vars, raw_words};
use containerization_error::{ContainerizationError, Result};
use std::time::Duration;

/// What an instruction parse needs to know about its surroundings.
pub struct Ctx<'a> {
    /// Line of the instruction, for errors.
    pub line: usize,
    /// The escape character.
    pub escape: char,
    /// Variables for expansion; `None` disables expansion (ONBUILD).
    pub vars: Option<&'a dyn Vars>,
}

impl Ctx<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> ContainerizationError {
        line_error(self.line, msg)
    }
    /// One word: quotes removed, variables expanded.
    pub fn word(&self, s: &str) -> Result<String> {
        Lexer::new(self.escape, self.vars)
            .word(s)
            .map_err(|e| self.err(e.0))
    }
    /// Words split on unquoted whitespace, quotes removed, variables expanded.
    pub fn words(&self, s: &str) -> Result<Vec<String>> {
        Lexer::new(self.escape, self.vars)
            .words(s)
            .map_err(|e| self.err(e.0))
    }
}

/// Every instruction keyword the parser knows.
pub const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "WORKDIR",
    "USER",
    "CMD",
    "ENTRYPOINT",
    "LABEL",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
    "SHELL",
    "HEALTHCHECK",
    "ONBUILD",
    "MAINTAINER",
];

/// Parses the instruction `keyword` (upper case, not FROM) with arguments `rest`.
pub fn parse_instruction(
    ctx: &Ctx<'_>,
    keyword: &str,
    rest: &str,
    heredocs: &[Heredoc],
) -> Result<InstructionKind> {
    let no_flags = |kw: &str| -> Result<()> {
        let (flags, _) = split_flags(rest);
        check_allowed(ctx.line, kw, &flags, &[])
    };
    let need_args = |kw: &str| -> Result<()> {
        if rest.is_empty() {
            Err(ctx.err(format!("{kw} requires at least one argument")))
        } else {
            Ok(())
        }
    };
    if matches!(
        keyword,
        "RUN" | "CMD" | "ENTRYPOINT" | "SHELL" | "VOLUME" | "COPY" | "ADD"
    ) {
        strings_only(ctx, split_flags(rest).1)?;
    }
    match keyword {
        "RUN" => parse_run(ctx, rest, heredocs).map(InstructionKind::Run),
        "COPY" => parse_copy(ctx, rest, heredocs, false).map(|(c, _)| InstructionKind::Copy(c)),
        "ADD" => parse_copy(ctx, rest, heredocs, true).map(|(c, a)| {
            let mut add = a.unwrap_or_default();
            add.copy = c;
            InstructionKind::Add(add)
        }),
        "ENV" => {
            need_args("ENV")?;
            key_values(ctx, "ENV", rest).map(InstructionKind::Env)
        }
        "LABEL" => {
            need_args("LABEL")?;
            key_values(ctx, "LABEL", rest).map(InstructionKind::Label)
        }
        "ARG" => parse_arg(ctx, rest).map(InstructionKind::Arg),
        "WORKDIR" => {
            need_args("WORKDIR")?;
            no_flags("WORKDIR")?;
            ctx.word(rest).map(InstructionKind::Workdir)
        }
        "USER" => {
            need_args("USER")?;
            let user = ctx.word(rest)?;
            if user.split_whitespace().count() != 1 {
                return Err(ctx.err("USER takes exactly one argument: user[:group]"));
            }
            Ok(InstructionKind::User(user))
        }
        "STOPSIGNAL" => {
            need_args("STOPSIGNAL")?;
            let sig = ctx.word(rest)?;
            if sig.split_whitespace().count() != 1 {
                return Err(ctx.err("STOPSIGNAL takes exactly one argument"));
            }
            Ok(InstructionKind::StopSignal(sig))
        }
        "CMD" => Ok(InstructionKind::Cmd(command(rest))),
        "ENTRYPOINT" => Ok(InstructionKind::Entrypoint(command(rest))),
        "SHELL" => match json_array(rest) {
            Some(v) if !v.is_empty() => Ok(InstructionKind::Shell(v)),
            _ => Err(ctx.err("SHELL requires the JSON form, e.g. SHELL [\"/bin/sh\", \"-c\"]")),
        },
        "EXPOSE" => {
            need_args("EXPOSE")?;
            let mut ports = Vec::new();
            for w in ctx.words(rest)? {
                ports.push(parse_port(ctx, &w)?);
            }
            Ok(InstructionKind::Expose(ports))
        }
        "VOLUME" => {
            need_args("VOLUME")?;
            let vols = match json_array(rest) {
                Some(v) => v.iter().map(|s| ctx.word(s)).collect::<Result<Vec<_>>>()?,
                None => ctx.words(rest)?,
            };
            if vols.iter().any(|v| v.trim().is_empty()) || vols.is_empty() {
                return Err(ctx.err("VOLUME specified can not be an empty string"));
            }
            Ok(InstructionKind::Volume(vols))
        }
        "HEALTHCHECK" => parse_healthcheck(ctx, rest).map(InstructionKind::Healthcheck),
        "ONBUILD" => parse_onbuild(ctx, rest, heredocs).map(InstructionKind::Onbuild),
        "MAINTAINER" => {
            need_args("MAINTAINER")?;
            Ok(InstructionKind::Maintainer(rest.to_string()))
        }
        "FROM" => Err(ctx.err("FROM is not allowed here")),
        other => Err(ctx.err(format!("unknown instruction: {other}"))),
    }
}

/// A JSON array holding anything but strings is an error (as in BuildKit),
/// not a shell command that happens to start with `[`.
fn strings_only(ctx: &Ctx<'_>, args: &str) -> Result<()> {
    let t = args.trim();
    if t.starts_with('[')
        && let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(t)
        && values.iter().any(|v| !v.is_string())
    {
        return Err(
            ctx.err("when using JSON array syntax, arrays must be comprised of strings only")
        );
    }
    Ok(())
}

/// The JSON array of strings in `rest`, if it is one.
pub fn json_array(rest: &str) -> Option<Vec<String>> {
    let t = rest.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

/// Exec form when `rest` is a JSON array, else shell form (as Docker falls back).
fn command(rest: &str) -> Command {
    match json_array(rest) {
        Some(v) => Command::Exec(v),
        None => Command::Shell(rest.to_string()),
    }
}

fn parse_run(ctx: &Ctx<'_>, rest: &str, heredocs: &[Heredoc]) -> Result<Run> {
    let (flags, cmd) = split_flags(rest);
    check_allowed(ctx.line, "RUN", &flags, &["mount", "network", "security"])?;
    let mut run = Run {
        command: command(cmd),
        heredocs: heredocs.to_vec(),
        mounts: Vec::new(),
        network: None,
        security: None,
    };
    if cmd.trim().is_empty() {
        return Err(ctx.err("RUN requires a command"));
    }
    for f in &flags {
        let value = ctx.word(string_value(ctx.line, f)?)?;
        match f.name.as_str() {
            "mount" => run
                .mounts
                .push(crate::mount::parse_mount(ctx.line, &value)?),
            "network" => {
                run.network = Some(match value.as_str() {
                    "default" => NetworkMode::Default,
                    "none" => NetworkMode::None,
                    "host" => NetworkMode::Host,
                    v => {
                        return Err(ctx.err(format!(
                            "invalid --network={v}: expected default, none or host"
                        )));
                    }
                })
            }
            _ => {
                if value != "sandbox" && value != "insecure" {
                    return Err(ctx.err(format!(
                        "invalid --security={value}: expected sandbox or insecure"
                    )));
                }
                run.security = Some(value);
            }
        }
    }
    Ok(run)
}

fn parse_copy(
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

/// `K=V K2=V2` or the legacy `K V` form.
fn key_values(ctx: &Ctx<'_>, kw: &str, rest: &str) -> Result<Vec<(String, String)>> {
    let words = raw_words(rest, ctx.escape);
    let Some(first) = words.first() else {
        return Err(ctx.err(format!("{kw} requires at least one argument")));
    };
    if !first.contains('=') {
        // Legacy form: the key, then the rest of the line as the value.
        let value = rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..].trim();
        if value.is_empty() {
            return Err(ctx.err(format!(
                "{kw} {first}: missing value (use {kw} {first}=value)"
            )));
        }
        return Ok(vec![(ctx.word(first)?, ctx.word(value)?)]);
    }
    let mut out = Vec::new();
    for w in &words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(ctx.err(format!("{kw}: can't find = in '{w}'; use name=value")));
        };
        let key = ctx.word(k)?;
        if key.is_empty() {
            return Err(ctx.err(format!("{kw} names can not be blank")));
        }
        out.push((key, ctx.word(v)?));
    }
    Ok(out)
}

fn parse_arg(ctx: &Ctx<'_>, rest: &str) -> Result<Vec<ArgDecl>> {
    let words = raw_words(rest, ctx.escape);
    if words.is_empty() {
        return Err(ctx.err("ARG requires at least one argument"));
    }
    let mut out = Vec::new();
    for w in &words {
        let (name, default) = match w.split_once('=') {
            Some((n, d)) => (n.to_string(), Some(ctx.word(d)?)),
            None => (w.clone(), None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ctx.err(format!("invalid ARG name '{name}'")));
        }
        out.push(ArgDecl {
            name,
            value: default.clone(),
            default,
        });
    }
    Ok(out)
}

fn parse_port(ctx: &Ctx<'_>, w: &str) -> Result<PortSpec> {
    let (ports, proto) = match w.split_once('/') {
        Some((p, proto)) => (p, proto),
        None => (w, "tcp"),
    };
    let protocol = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => {
            return Err(ctx.err(format!(
                "invalid protocol in EXPOSE {w}: expected tcp, udp or sctp"
            )));
        }
    };
    let port = |s: &str| -> Result<u16> {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| ctx.err(format!("invalid port in EXPOSE: '{w}'")))
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(ports)?, port(ports)?),
    };
    if end < start {
        return Err(ctx.err(format!("invalid port range in EXPOSE: '{w}'")));
    }
    Ok(PortSpec {
        start,
        end,
        protocol,
    })
}

fn parse_healthcheck(ctx: &Ctx<'_>, rest: &str) -> Result<Healthcheck> {
    let (flags, args) = split_flags(rest);
    let mut words = args.splitn(2, char::is_whitespace);
    let kind = words.next().unwrap_or("").to_ascii_uppercase();
    let cmd = words.next().unwrap_or("").trim();
    if kind == "NONE" {
        if !flags.is_empty() || !cmd.is_empty() {
            return Err(ctx.err("HEALTHCHECK NONE takes no options or arguments"));
        }
        return Ok(Healthcheck::None);
    }
    if kind != "CMD" {
        return Err(ctx.err("HEALTHCHECK needs NONE or [options] CMD command"));
    }
    if cmd.is_empty() {
        return Err(ctx.err("HEALTHCHECK CMD requires a command"));
    }
    strings_only(ctx, cmd)?;
    check_allowed(
        ctx.line,
        "HEALTHCHECK",
        &flags,
        &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
    )?;
    let (mut interval, mut timeout, mut start_period, mut start_interval, mut retries) =
        (None, None, None, None, None);
    for f in &flags {
        let v = string_value(ctx.line, f)?;
        if f.name == "retries" {
            retries = Some(
                v.parse::<u32>()
                    .map_err(|_| ctx.err(format!("--retries={v} is not a non-negative number")))?,
            );
            continue;
        }
        let d = parse_duration(v).ok_or_else(|| {
            ctx.err(format!(
                "--{}={v} is not a duration like 30s or 1m30s",
                f.name
            ))
        })?;
        match f.name.as_str() {
            "interval" => interval = Some(d),
            "timeout" => timeout = Some(d),
            "start-period" => start_period = Some(d),
            _ => start_interval = Some(d),
        }
    }
    Ok(Healthcheck::Check {
        command: command(cmd),
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    })
}

/// Go's `time.ParseDuration` (`1h2m3.5s`, `500ms`, `0`), non-negative only.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += num * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

fn parse_onbuild(ctx: &Ctx<'_>, rest: &str, heredocs: &[Heredoc]) -> Result<Onbuild> {
    let t = rest.trim();
    let (kw, inner) = match t.find(char::is_whitespace) {
        Some(p) => (&t[..p], t[p..].trim()),
        None => (t, ""),
    };
    let kw = kw.to_ascii_uppercase();
    match kw.as_str() {
        "" => return Err(ctx.err("ONBUILD requires an instruction")),
        "ONBUILD" => return Err(ctx.err("chaining ONBUILD via ONBUILD ONBUILD isn't allowed")),
        "FROM" | "MAINTAINER" => {
            return Err(ctx.err(format!("{kw} isn't allowed as an ONBUILD trigger")));
        }
        _ => {}
    }
    // Triggers are expanded when they run in the child build, not now.
    let raw_ctx = Ctx {
        line: ctx.line,
        escape: ctx.escape,
        vars: None,
    };
    if !KEYWORDS.contains(&kw.as_str()) {
        return Err(ctx.err(format!("unknown instruction in ONBUILD: {kw}")));
    }
    let instruction = match parse_instruction(&raw_ctx, &kw, inner, heredocs) {
        Ok(i) => Some(Box::new(i)),
        // `EXPOSE $PORT` can only be checked once the child build expands it.
        Err(_) if inner.contains('$') => None,
        Err(e) => return Err(e),
    };
    Ok(Onbuild {
        raw: t.to_string(),
        instruction,
    })
}
