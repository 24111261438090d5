//! Variable expansion rules and ARG/ENV scoping.

mod common;
use common::*;
use container_build::shell::Lexer;
use container_build::*;
use std::collections::HashMap;

fn vars() -> HashMap<String, String> {
    [("A", "a"), ("EMPTY", ""), ("SP", "x y")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn word(s: &str) -> String {
    let v = vars();
    Lexer::new('\\', Some(&v)).word(s).expect("word")
}

#[test]
fn expansion_table() {
    let cases = [
        ("$A", "a"),
        ("${A}", "a"),
        ("pre${A}post", "preapost"),
        ("$UNSET", ""),
        ("${UNSET:-def}", "def"),
        ("${EMPTY:-def}", "def"),
        ("${EMPTY-def}", ""),
        ("${UNSET-def}", "def"),
        ("${A:-def}", "a"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-$A-nested}", "a-nested"),
        ("\\$A", "$A"),
        ("'$A'", "$A"),
        ("\"$A\"", "a"),
        ("\"\\$A\"", "$A"),
        ("\"a\\b\"", "a\\b"),
        ("\"'$A'\"", "'a'"),
        ("$", "$"),
        ("a$-b", "ab"),
        ("$$", ""),
        ("$1abc", "abc"),
        ("$ x", "$ x"),
        ("${@}", ""),
        ("${A}${A}", "aa"),
        ("x\\ y", "x y"),
    ];
    for (input, want) in cases {
        assert_eq!(word(input), want, "input {input}");
    }
}

#[test]
fn expansion_errors() {
    let v = vars();
    let l = Lexer::new('\\', Some(&v));
    assert!(
        l.word("${UNSET?must be set}")
            .unwrap_err()
            .0
            .contains("UNSET: must be set")
    );
    assert_eq!(
        l.word("${EMPTY:?}").unwrap_err().0,
        "EMPTY: is not allowed to be empty"
    );
    assert_eq!(
        l.word("${UNSET:?}").unwrap_err().0,
        "UNSET: is not allowed to be unset"
    );
    assert_eq!(l.word("${EMPTY?}").unwrap(), "");
    assert!(l.word("${A").is_err());
    assert!(l.word("${}").is_err());
    assert!(l.word("${A^^}").is_err());
    assert!(l.word("${A/x").is_err());
    assert!(l.word("'open").is_err());
    assert!(l.word("\"open").is_err());
}

#[test]
fn words_split_unquoted_expansions() {
    let v = vars();
    let l = Lexer::new('\\', Some(&v));
    assert_eq!(
        l.words("$SP \"$SP\" '' $EMPTY z").unwrap(),
        vec!["x", "y", "x y", "", "z"]
    );
}

#[test]
fn no_expansion_mode_keeps_variables() {
    let l = Lexer::new('\\', None);
    assert_eq!(l.word("$A ${B:-c} 'q'").unwrap(), "$A ${B:-c} q");
}

#[test]
fn expanded_instructions() {
    let d = ok("FROM scratch\nENV D=/data P=8080 U=app S=SIGINT L=lab\n\
        WORKDIR $D/w\nUSER ${U}\nSTOPSIGNAL $S\nEXPOSE $P\nVOLUME $D\nLABEL l=$L\nCOPY $D/a ${D}/b\nADD $D /x\nENV E=$D\n\
        CMD echo $D\nENTRYPOINT [\"$D\"]\n");
    let k: Vec<&InstructionKind> = last_instrs(&d).iter().map(|i| &i.kind).collect();
    assert_eq!(k[1], &InstructionKind::Workdir("/data/w".into()));
    assert_eq!(k[2], &InstructionKind::User("app".into()));
    assert_eq!(k[3], &InstructionKind::StopSignal("SIGINT".into()));
    assert!(matches!(k[4], InstructionKind::Expose(p) if p[0].start == 8080));
    assert_eq!(k[5], &InstructionKind::Volume(vec!["/data".into()]));
    assert_eq!(
        k[6],
        &InstructionKind::Label(vec![("l".into(), "lab".into())])
    );
    let InstructionKind::Copy(c) = k[7] else {
        panic!()
    };
    assert_eq!(c.sources, vec![CopySource::Path("/data/a".into())]);
    assert_eq!(c.dest, "/data/b");
    let InstructionKind::Add(a) = k[8] else {
        panic!()
    };
    assert_eq!(a.copy.sources, vec![CopySource::Path("/data".into())]);
    assert_eq!(
        k[9],
        &InstructionKind::Env(vec![("E".into(), "/data".into())])
    );
    assert_eq!(
        k[10],
        &InstructionKind::Cmd(Command::Shell("echo $D".into()))
    );
    assert_eq!(
        k[11],
        &InstructionKind::Entrypoint(Command::Exec(vec!["$D".into()]))
    );
}

#[test]
fn env_uses_values_from_before_the_instruction() {
    let d = ok("FROM scratch\nENV A=1\nENV A=2 B=$A\nENV C=$A\n");
    let k = &last_instrs(&d)[1].kind;
    assert_eq!(
        k,
        &InstructionKind::Env(vec![("A".into(), "2".into()), ("B".into(), "1".into())])
    );
    assert_eq!(
        last_instrs(&d)[2].kind,
        InstructionKind::Env(vec![("C".into(), "2".into())])
    );
}

#[test]
fn global_args_only_in_from() {
    let d = ok(
        "ARG TAG=3.20\nARG IMG=alpine\nFROM ${IMG}:${TAG} AS base\nWORKDIR /$TAG\nARG TAG\nWORKDIR /$TAG\n",
    );
    assert_eq!(d.stages[0].base, "alpine:3.20");
    assert_eq!(d.global_args.len(), 2);
    assert_eq!(d.global_args[0].value.as_deref(), Some("3.20"));
    let k = last_instrs(&d);
    assert_eq!(
        k[0].kind,
        InstructionKind::Workdir("/".into()),
        "global ARG not visible before redeclaration"
    );
    assert_eq!(
        k[2].kind,
        InstructionKind::Workdir("/3.20".into()),
        "redeclared ARG inherits the global value"
    );
}

#[test]
fn build_args_override_defaults() {
    let src = "ARG TAG=1\nFROM alpine:$TAG\nARG V=def\nARG TAG\nRUN true\nWORKDIR /$V/$TAG\n";
    let d = ok_args(src, &[("TAG", "2"), ("V", "cli"), ("UNDECLARED", "z")]);
    assert_eq!(d.stages[0].base, "alpine:2");
    let k = last_instrs(&d);
    assert_eq!(
        k[0].kind,
        InstructionKind::Arg(vec![ArgDecl {
            name: "V".into(),
            default: Some("def".into()),
            value: Some("cli".into())
        }])
    );
    assert_eq!(k[3].kind, InstructionKind::Workdir("/cli/2".into()));
    let d = ok_args(
        "FROM scratch\nWORKDIR /$UNDECLARED\n",
        &[("UNDECLARED", "z")],
    );
    assert_eq!(
        last_instrs(&d)[0].kind,
        InstructionKind::Workdir("/".into()),
        "only declared ARGs take build args"
    );
}

#[test]
fn stage_default_beats_global_default() {
    let d = ok("ARG V=global\nFROM scratch\nARG V=stage\nWORKDIR /$V\n");
    assert_eq!(
        last_instrs(&d)[1].kind,
        InstructionKind::Workdir("/stage".into())
    );
}

#[test]
fn env_overrides_arg() {
    let d = ok_args(
        "FROM scratch\nARG V=arg\nENV V=env\nWORKDIR /$V\nARG V=again\nWORKDIR /$V\n",
        &[("V", "cli")],
    );
    let k = last_instrs(&d);
    assert_eq!(k[2].kind, InstructionKind::Workdir("/env".into()));
    assert_eq!(k[4].kind, InstructionKind::Workdir("/env".into()));
}

#[test]
fn args_do_not_leak_between_stages_but_env_inherits() {
    let d = ok(
        "FROM scratch AS a\nARG X=1\nENV Y=2\nFROM a\nWORKDIR /$X/$Y\nFROM scratch\nWORKDIR /$Y\n",
    );
    assert_eq!(
        d.stages[1].instructions[0].kind,
        InstructionKind::Workdir("//2".into())
    );
    assert_eq!(
        d.stages[2].instructions[0].kind,
        InstructionKind::Workdir("/".into())
    );
}

#[test]
fn arg_default_is_expanded() {
    let d = ok("ARG A=x\nARG B=${A}y\nFROM img:$B\nARG C=1\nARG D=$C$C\nWORKDIR /$D\n");
    assert_eq!(d.stages[0].base, "img:xy");
    assert_eq!(
        last_instrs(&d)[2].kind,
        InstructionKind::Workdir("/11".into())
    );
}

#[test]
fn automatic_platform_args_reach_from() {
    let d = ok_args(
        "FROM --platform=$BUILDPLATFORM golang AS b\nWORKDIR /$TARGETARCH\nARG TARGETARCH\nWORKDIR /$TARGETARCH\n",
        &[("BUILDPLATFORM", "linux/amd64"), ("TARGETARCH", "arm64")],
    );
    assert_eq!(d.stages[0].platform.as_deref(), Some("linux/amd64"));
    let k = last_instrs(&d);
    assert_eq!(k[0].kind, InstructionKind::Workdir("/".into()));
    assert_eq!(k[2].kind, InstructionKind::Workdir("/arm64".into()));
}

#[test]
fn image_env_is_used_for_expansion() {
    let f = |image: &str| {
        assert_eq!(image, "alpine");
        vec![("HOME".to_string(), "/root".to_string())]
    };
    let args = HashMap::new();
    let d = parse_with(
        "FROM alpine\nWORKDIR $HOME/app\n",
        &ParseOptions {
            build_args: &args,
            image_env: Some(&f),
        },
    )
    .unwrap();
    assert_eq!(
        d.stages[0].instructions[0].kind,
        InstructionKind::Workdir("/root/app".into())
    );
}

#[test]
fn args_and_env_before_an_instruction() {
    let d = ok_args(
        "FROM scratch\nARG A=1 B\nENV E=x\nARG A=2\nENV E=y F=z\nRUN env\n",
        &[("B", "cli")],
    );
    let s = &d.stages[0];
    assert_eq!(
        s.args_before(1),
        vec![
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "cli".to_string())
        ]
    );
    assert_eq!(
        s.args_before(5),
        vec![
            ("B".to_string(), "cli".to_string()),
            ("A".to_string(), "2".to_string())
        ]
    );
    assert_eq!(
        s.env_before(5),
        vec![
            ("E".to_string(), "y".to_string()),
            ("F".to_string(), "z".to_string())
        ]
    );
    assert_eq!(s.env_before(0), vec![]);
}

#[test]
fn pattern_modifiers() {
    let v: HashMap<String, String> = [("P", "/usr/local/bin.tar.gz"), ("S", "aXbXc")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let l = Lexer::new('\\', Some(&v));
    let cases = [
        ("${P#*/}", "usr/local/bin.tar.gz"),
        ("${P##*/}", "bin.tar.gz"),
        ("${P%.*}", "/usr/local/bin.tar"),
        ("${P%%.*}", "/usr/local/bin"),
        ("${P#nomatch}", "/usr/local/bin.tar.gz"),
        ("${S/X/-}", "a-bXc"),
        ("${S//X/-}", "a-b-c"),
        ("${S//?X/_}", "__c"),
        ("${P#*\\.}", "tar.gz"),
        ("${S/X}", "abXc"),
        ("${UNSET#x}", ""),
    ];
    for (input, want) in cases {
        assert_eq!(l.word(input).unwrap(), want, "input {input}");
    }
    assert_eq!(Lexer::new('\\', None).word("${P##*/}").unwrap(), "${P##*/}");
}
