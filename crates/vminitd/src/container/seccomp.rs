//! The OCI spec's `linux.seccomp` profile, compiled to BPF with
//! `seccompiler` (rust-vmm, pure Rust, so the agent stays static) and
//! installed just before the container's program is exec'd.
//!
//! OCI profiles give each syscall rule its own action, while a seccompiler
//! filter has one action on match and one on mismatch. The kernel runs every
//! installed filter and keeps the most restrictive answer, so a profile
//! becomes: one filter that applies the default action to every syscall the
//! profile does not list (listed ones pass it), plus one filter per
//! non-allow action that applies that action to its rules (others pass).

use std::collections::BTreeMap;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator, LinuxSyscall,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::rootfs::StepResult;

type Rules = BTreeMap<i64, Vec<SeccompRule>>;

/// The last profile this process compiled, with its programs. A
/// container's exec server compiles its execs' profile once; the children
/// it forks find the programs here instead of compiling them again.
static LAST: std::sync::Mutex<Option<(LinuxSeccomp, Vec<BpfProgram>)>> =
    std::sync::Mutex::new(None);

/// [`compile`], answered from [`LAST`] when the profile is the same.
pub fn compile_cached(profile: &LinuxSeccomp) -> StepResult<Vec<BpfProgram>> {
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, programs)) = last.as_ref()
        && p == profile
    {
        return Ok(programs.clone());
    }
    let programs = compile(profile)?;
    *last = Some((profile.clone(), programs.clone()));
    Ok(programs)
}

/// Compiles `profile` to the BPF programs to install, in order.
pub fn compile(profile: &LinuxSeccomp) -> StepResult<Vec<BpfProgram>> {
    let arch = target_arch()?;
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    let mut listed = Rules::new();
    let mut by_action: Vec<(SeccompAction, Rules)> = Vec::new();
    for rule in profile.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        for (nr, r) in syscall_rules(rule)? {
            add(&mut listed, nr, r.clone());
            if act == SeccompAction::Allow {
                continue;
            }
            match by_action.iter_mut().find(|(a, _)| *a == act) {
                Some((_, rules)) => add(rules, nr, r),
                None => {
                    let mut rules = Rules::new();
                    add(&mut rules, nr, r);
                    by_action.push((act.clone(), rules));
                }
            }
        }
    }
    let mut programs = Vec::new();
    if default != SeccompAction::Allow {
        programs.push(program(listed, default, SeccompAction::Allow, arch)?);
    }
    for (act, rules) in by_action {
        programs.push(program(rules, SeccompAction::Allow, act, arch)?);
    }
    Ok(programs)
}

/// Installs the programs on the calling thread (needs no_new_privs or
/// CAP_SYS_ADMIN).
pub fn install(programs: &[BpfProgram]) -> StepResult {
    for p in programs {
        seccompiler::apply_filter(p).map_err(|e| format!("cannot install seccomp filter: {e}"))?;
    }
    Ok(())
}

fn target_arch() -> StepResult<TargetArch> {
    std::env::consts::ARCH.try_into().map_err(|_| {
        format!(
            "seccomp: unsupported architecture {}",
            std::env::consts::ARCH
        )
    })
}

fn program(
    rules: Rules,
    mismatch: SeccompAction,
    matched: SeccompAction,
    arch: TargetArch,
) -> StepResult<BpfProgram> {
    let filter = SeccompFilter::new(rules, mismatch, matched, arch)
        .map_err(|e| format!("invalid seccomp profile: {e}"))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("invalid seccomp profile: {e}"))
}

/// A syscall with no conditions matches unconditionally (an empty rule list
/// in seccompiler); one rule with conditions must not be merged into that.
fn add(rules: &mut Rules, nr: i64, rule: Option<SeccompRule>) {
    let entry = rules.entry(nr);
    match rule {
        None => {
            entry.insert_entry(Vec::new());
        }
        Some(r) => {
            let list = entry.or_insert_with(|| vec![r.clone()]);
            // Already unconditional, or just created with `r`: nothing to add.
            if !list.is_empty() && !list.contains(&r) {
                list.push(r);
            }
        }
    }
}

/// The syscall numbers of a rule (names unknown to this architecture are
/// skipped, as libseccomp does) and its argument conditions.
fn syscall_rules(rule: &LinuxSyscall) -> StepResult<Vec<(i64, Option<SeccompRule>)>> {
    let conditions = rule
        .args()
        .iter()
        .flatten()
        .map(condition)
        .collect::<StepResult<Vec<_>>>()?;
    let seccomp_rule = if conditions.is_empty() {
        None
    } else {
        Some(SeccompRule::new(conditions).map_err(|e| format!("invalid seccomp rule: {e}"))?)
    };
    Ok(rule
        .names()
        .iter()
        .filter_map(|n| n.parse::<syscalls::Sysno>().ok())
        .map(|nr| (nr.id() as i64, seccomp_rule.clone()))
        .collect())
}

fn condition(arg: &LinuxSeccompArg) -> StepResult<SeccompCondition> {
    let index = u8::try_from(arg.index()).map_err(|_| "seccomp argument index out of range")?;
    let (op, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        // OCI: value is the mask, valueTwo the expected result.
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            SeccompCmpOp::MaskedEq(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| format!("invalid seccomp condition: {e}"))
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> StepResult<SeccompAction> {
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => {
            SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32))
        }
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(errno.unwrap_or(0)),
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActNotify => {
            return Err("seccomp: SCMP_ACT_NOTIFY is not supported".into());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn profiles_compile_to_one_filter_per_action() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["read","write","exit_group","no_such_call"],"action":"SCMP_ACT_ALLOW"},
                {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                {"names":["personality"],"action":"SCMP_ACT_ALLOW",
                 "args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        assert_eq!(compile(&p).unwrap().len(), 2);
        let allow_all = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
        assert!(compile(&allow_all).unwrap().is_empty());
        let notify = profile(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#);
        assert!(compile(&notify).unwrap_err().contains("NOTIFY"));
    }

    #[test]
    fn an_unconditional_rule_wins_over_conditional_ones() {
        let mut rules = Rules::new();
        let cond = SeccompRule::new(vec![
            SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, 1).unwrap(),
        ])
        .unwrap();
        add(&mut rules, 1, Some(cond.clone()));
        add(&mut rules, 1, Some(cond.clone()));
        assert_eq!(rules[&1].len(), 1);
        add(&mut rules, 1, None);
        assert!(rules[&1].is_empty());
        add(&mut rules, 1, Some(cond));
        assert!(rules[&1].is_empty());
    }
}
