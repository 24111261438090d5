//! Every instruction and each of its forms.

mod common;
use common::*;
use container_build::*;
use std::time::Duration;

#[test]
fn from_forms() {
    let d = ok(
        "FROM alpine:3.20\nFROM --platform=linux/arm64 busybox AS Build\nFROM scratch\nFROM build\n",
    );
    assert_eq!(d.stages.len(), 4);
    assert_eq!(d.stages[0].base, "alpine:3.20");
    assert_eq!(d.stages[0].name, None);
    assert_eq!(d.stages[1].platform.as_deref(), Some("linux/arm64"));
    assert_eq!(d.stages[1].name.as_deref(), Some("Build"));
    assert!(d.stages[2].is_scratch());
    assert_eq!(
        d.stages[3].base_stage,
        Some(1),
        "stage names compare case-insensitively"
    );
    assert_eq!(d.stages[3].line, 4);
    let d = ok("from alpine as x\n");
    assert_eq!(d.stages[0].name.as_deref(), Some("x"));
}

#[test]
fn run_shell_and_exec() {
    match one("RUN echo hi && \\\n  echo there") {
        InstructionKind::Run(r) => {
            assert_eq!(r.command, Command::Shell("echo hi &&   echo there".into()));
            assert!(r.mounts.is_empty() && r.network.is_none());
        }
        k => panic!("{k:?}"),
    }
    match one(r#"RUN ["/bin/sh", "-c", "echo $HOME"]"#) {
        InstructionKind::Run(r) => assert_eq!(
            r.command,
            Command::Exec(vec!["/bin/sh".into(), "-c".into(), "echo $HOME".into()])
        ),
        k => panic!("{k:?}"),
    }
    // Not valid JSON: Docker falls back to the shell form.
    match one("RUN [not json") {
        InstructionKind::Run(r) => assert_eq!(r.command, Command::Shell("[not json".into())),
        k => panic!("{k:?}"),
    }
}

#[test]
fn run_is_not_expanded() {
    let d = ok("FROM scratch\nENV A=1\nRUN echo $A ${A:-x} 'q'\n");
    match &last_instrs(&d)[1].kind {
        InstructionKind::Run(r) => {
            assert_eq!(r.command, Command::Shell("echo $A ${A:-x} 'q'".into()))
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn run_mounts_and_network() {
    let k = one(
        "RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1,gid=2 \
         --mount=type=secret,id=tok,target=/run/t,required,env=TOKEN \
         --mount=type=bind,from=build,source=/out,target=/in,rw \
         --mount=target=/ctx \
         --mount=type=tmpfs,target=/tmp,size=1024 \
         --network=none --security=sandbox make",
    );
    let InstructionKind::Run(r) = k else {
        panic!("{k:?}")
    };
    assert_eq!(r.command, Command::Shell("make".into()));
    assert_eq!(r.network, Some(NetworkMode::None));
    assert_eq!(r.security.as_deref(), Some("sandbox"));
    assert_eq!(
        r.mounts[0],
        Mount::Cache(CacheMount {
            target: "/root/.cache".into(),
            id: Some("pip".into()),
            readonly: false,
            sharing: CacheSharing::Locked,
            from: None,
            source: None,
            mode: Some(0o755),
            uid: Some(1),
            gid: Some(2),
        })
    );
    assert_eq!(
        r.mounts[1],
        Mount::Secret(SecretMount {
            id: Some("tok".into()),
            target: Some("/run/t".into()),
            env: Some("TOKEN".into()),
            required: true,
            ..Default::default()
        })
    );
    assert_eq!(
        r.mounts[2],
        Mount::Bind(BindMount {
            target: "/in".into(),
            source: Some("/out".into()),
            from: Some("build".into()),
            readwrite: true,
        })
    );
    assert_eq!(r.mounts[2].from(), Some("build"));
    assert_eq!(
        r.mounts[3],
        Mount::Bind(BindMount {
            target: "/ctx".into(),
            ..Default::default()
        })
    );
    assert_eq!(
        r.mounts[4],
        Mount::Tmpfs(TmpfsMount {
            target: "/tmp".into(),
            size: Some(1024)
        })
    );
}

#[test]
fn run_mount_values_are_expanded() {
    let d = ok("FROM scratch\nARG DIR=/cache\nRUN --mount=type=cache,target=${DIR} true\n");
    let InstructionKind::Run(r) = &last_instrs(&d)[1].kind else {
        panic!()
    };
    assert!(matches!(&r.mounts[0], Mount::Cache(c) if c.target == "/cache"));
}

#[test]
fn copy_forms() {
    let k = one("COPY --from=build --chown=1000:1000 --chmod=0644 --link a.txt b/* /dest/");
    let InstructionKind::Copy(c) = k else {
        panic!("{k:?}")
    };
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("1000:1000"));
    assert_eq!(c.chmod.as_deref(), Some("0644"));
    assert!(c.link);
    assert_eq!(
        c.sources,
        vec![
            CopySource::Path("a.txt".into()),
            CopySource::Path("b/*".into())
        ]
    );
    assert_eq!(c.dest, "/dest/");

    let k = one(r#"COPY ["a b.txt", "/d e/"]"#);
    let InstructionKind::Copy(c) = k else {
        panic!("{k:?}")
    };
    assert_eq!(c.sources, vec![CopySource::Path("a b.txt".into())]);
    assert_eq!(c.dest, "/d e/");

    let k = one("COPY --parents --exclude=*.md --exclude=tmp src /app");
    let InstructionKind::Copy(c) = k else {
        panic!("{k:?}")
    };
    assert!(c.parents);
    assert_eq!(c.exclude, vec!["*.md".to_string(), "tmp".to_string()]);
    assert!(!c.link);
}

#[test]
fn add_forms() {
    let k =
        one("ADD --checksum=sha256:abc --keep-git-dir --chown=app https://example.com/x.tgz /opt/");
    let InstructionKind::Add(a) = k else {
        panic!("{k:?}")
    };
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert!(a.keep_git_dir);
    assert_eq!(a.copy.chown.as_deref(), Some("app"));
    assert_eq!(
        a.copy.sources,
        vec![CopySource::Path("https://example.com/x.tgz".into())]
    );
    assert_eq!(a.copy.dest, "/opt/");
    assert!(err("FROM scratch\nADD --from=x a b\n").contains("unknown flag for ADD: --from"));
}

#[test]
fn env_forms() {
    assert_eq!(
        one(r#"ENV A=1 B="two words" C='$x' D=a\ b"#),
        InstructionKind::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "two words".into()),
            ("C".into(), "$x".into()),
            ("D".into(), "a b".into()),
        ])
    );
    assert_eq!(
        one("ENV KEY some value here"),
        InstructionKind::Env(vec![("KEY".into(), "some value here".into())])
    );
    assert_eq!(
        one("ENV E="),
        InstructionKind::Env(vec![("E".into(), "".into())])
    );
}

#[test]
fn arg_forms() {
    assert_eq!(
        one("ARG A B=2 C=\"x y\""),
        InstructionKind::Arg(vec![
            ArgDecl {
                name: "A".into(),
                default: None,
                value: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("2".into()),
                value: Some("2".into())
            },
            ArgDecl {
                name: "C".into(),
                default: Some("x y".into()),
                value: Some("x y".into())
            },
        ])
    );
}

#[test]
fn simple_instructions() {
    assert_eq!(one("WORKDIR /app"), InstructionKind::Workdir("/app".into()));
    assert_eq!(
        one("USER app:staff"),
        InstructionKind::User("app:staff".into())
    );
    assert_eq!(
        one("STOPSIGNAL SIGTERM"),
        InstructionKind::StopSignal("SIGTERM".into())
    );
    assert_eq!(
        one("MAINTAINER me <me@x>"),
        InstructionKind::Maintainer("me <me@x>".into())
    );
    assert_eq!(
        one("CMD echo hi"),
        InstructionKind::Cmd(Command::Shell("echo hi".into()))
    );
    assert_eq!(
        one(r#"CMD ["a","b"]"#),
        InstructionKind::Cmd(Command::Exec(vec!["a".into(), "b".into()]))
    );
    assert_eq!(one("CMD []"), InstructionKind::Cmd(Command::Exec(vec![])));
    assert_eq!(
        one(r#"ENTRYPOINT ["/bin/app"]"#),
        InstructionKind::Entrypoint(Command::Exec(vec!["/bin/app".into()]))
    );
    assert_eq!(
        one("ENTRYPOINT exec app"),
        InstructionKind::Entrypoint(Command::Shell("exec app".into()))
    );
    assert_eq!(
        one(r#"SHELL ["/bin/bash", "-c"]"#),
        InstructionKind::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
}

#[test]
fn label_forms() {
    assert_eq!(
        one(r#"LABEL "com.example.vendor"="ACME" version=1.0 description="a b""#),
        InstructionKind::Label(vec![
            ("com.example.vendor".into(), "ACME".into()),
            ("version".into(), "1.0".into()),
            ("description".into(), "a b".into()),
        ])
    );
    assert_eq!(
        one("LABEL key the value"),
        InstructionKind::Label(vec![("key".into(), "the value".into())])
    );
}

#[test]
fn expose_forms() {
    let p = |start, end, protocol| PortSpec {
        start,
        end,
        protocol,
    };
    assert_eq!(
        one("EXPOSE 80 443/tcp 53/udp 9/SCTP 8000-8010"),
        InstructionKind::Expose(vec![
            p(80, 80, Protocol::Tcp),
            p(443, 443, Protocol::Tcp),
            p(53, 53, Protocol::Udp),
            p(9, 9, Protocol::Sctp),
            p(8000, 8010, Protocol::Tcp),
        ])
    );
    assert!(err("FROM scratch\nEXPOSE 99999\n").starts_with("Dockerfile:2: invalid port"));
    assert!(err("FROM scratch\nEXPOSE 80/xyz\n").contains("invalid protocol"));
    assert!(err("FROM scratch\nEXPOSE 90-80\n").contains("invalid port range"));
}

#[test]
fn volume_forms() {
    assert_eq!(
        one(r#"VOLUME ["/data", "/logs"]"#),
        InstructionKind::Volume(vec!["/data".into(), "/logs".into()])
    );
    assert_eq!(
        one("VOLUME /a /b"),
        InstructionKind::Volume(vec!["/a".into(), "/b".into()])
    );
    assert!(err("FROM scratch\nVOLUME [\"\"]\n").contains("empty"));
}

#[test]
fn healthcheck_forms() {
    assert_eq!(
        one("HEALTHCHECK NONE"),
        InstructionKind::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        one(
            "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms --start-interval=2s --retries=3 CMD curl -f http://localhost/"
        ),
        InstructionKind::Healthcheck(Healthcheck::Check {
            command: Command::Shell("curl -f http://localhost/".into()),
            interval: Some(Duration::from_secs(30)),
            timeout: Some(Duration::from_secs(90)),
            start_period: Some(Duration::from_millis(500)),
            start_interval: Some(Duration::from_secs(2)),
            retries: Some(3),
        })
    );
    assert_eq!(
        one(r#"HEALTHCHECK CMD ["/bin/check"]"#),
        InstructionKind::Healthcheck(Healthcheck::Check {
            command: Command::Exec(vec!["/bin/check".into()]),
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        })
    );
    assert!(err("FROM scratch\nHEALTHCHECK --interval=soon CMD x\n").contains("--interval=soon"));
    assert!(err("FROM scratch\nHEALTHCHECK echo\n").contains("NONE or [options] CMD"));
    assert!(err("FROM scratch\nHEALTHCHECK --retries=3 NONE\n").contains("NONE takes no options"));
}

#[test]
fn onbuild_wraps_unexpanded() {
    let d = ok("FROM scratch\nENV A=1\nONBUILD COPY $A /dst\nONBUILD run echo hi\n");
    let InstructionKind::Onbuild(o) = &last_instrs(&d)[1].kind else {
        panic!()
    };
    assert_eq!(o.raw, "COPY $A /dst");
    let Some(InstructionKind::Copy(c)) = o.instruction.as_deref() else {
        panic!()
    };
    assert_eq!(c.sources, vec![CopySource::Path("$A".into())]);
    let InstructionKind::Onbuild(o) = &last_instrs(&d)[2].kind else {
        panic!()
    };
    assert!(matches!(
        o.instruction.as_deref(),
        Some(InstructionKind::Run(_))
    ));
    let d = ok("FROM scratch\nONBUILD EXPOSE $PORT\n");
    let InstructionKind::Onbuild(o) = &last_instrs(&d)[0].kind else {
        panic!()
    };
    assert_eq!(
        (o.raw.as_str(), o.instruction.is_none()),
        ("EXPOSE $PORT", true)
    );
    assert!(err("FROM scratch\nONBUILD EXPOSE abc\n").contains("invalid port"));
    assert!(
        err("FROM scratch\nONBUILD COPPY a b\n").contains("unknown instruction in ONBUILD: COPPY")
    );
    assert!(err("FROM scratch\nONBUILD ONBUILD RUN x\n").contains("chaining ONBUILD"));
    assert!(err("FROM scratch\nONBUILD FROM alpine\n").contains("FROM isn't allowed"));
    assert!(err("FROM scratch\nONBUILD\n").contains("ONBUILD requires"));
}

#[test]
fn case_insensitive_keywords_and_lines() {
    let d = ok("\n# comment\nfrom scratch\n\nrun true\nCoPy a b\n");
    let ins = last_instrs(&d);
    assert_eq!(d.stages[0].line, 3);
    assert_eq!(ins[0].line, 5);
    assert_eq!(ins[1].line, 6);
    assert!(matches!(ins[1].kind, InstructionKind::Copy(_)));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("1h2m3s"), Some(Duration::from_secs(3723)));
    assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_duration("0"), Some(Duration::ZERO));
    assert_eq!(parse_duration("10"), None);
    assert_eq!(parse_duration("-1s"), None);
    assert_eq!(parse_duration(""), None);
}
