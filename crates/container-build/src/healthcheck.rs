//! `HEALTHCHECK`: `NONE`, or options and a `CMD`.

use crate::ast::Healthcheck;
use crate::flags::{check_allowed, split_flags, string_value};
use crate::instructions::{Ctx, command, strings_only};
use containerization_error::Result;
use std::time::Duration;

/// Parses the arguments of `HEALTHCHECK`.
pub(crate) fn parse_healthcheck(ctx: &Ctx<'_>, rest: &str) -> Result<Healthcheck> {
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
