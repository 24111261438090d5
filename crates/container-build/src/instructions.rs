//! Parses the arguments of each instruction (except FROM) into typed form.

use crate::ast::{
    ArgDecl, Command, Heredoc, InstructionKind, NetworkMode, Onbuild, PortSpec, Protocol, Run,
};
use crate::error::line_error;
use crate::flags::{check_allowed, split_flags, string_value};
use crate::shell::{Lexer, Vars, raw_words};
use containerization_error::{ContainerizationError, Result};

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
    /// An error naming the instruction's line.
    pub fn err(&self, msg: impl std::fmt::Display) -> ContainerizationError {
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
        "COPY" => crate::copy::parse_copy(ctx, rest, heredocs, false)
            .map(|(c, _)| InstructionKind::Copy(c)),
        "ADD" => crate::copy::parse_copy(ctx, rest, heredocs, true).map(|(c, a)| {
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
        "HEALTHCHECK" => {
            crate::healthcheck::parse_healthcheck(ctx, rest).map(InstructionKind::Healthcheck)
        }
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
pub(crate) fn strings_only(ctx: &Ctx<'_>, args: &str) -> Result<()> {
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
pub(crate) fn command(rest: &str) -> Command {
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
