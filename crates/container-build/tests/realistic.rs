//! A realistic multi-stage Dockerfile parsed end to end.

mod common;
use common::*;
use container_build::*;

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG ALPINE=3.20
ARG APP=hello

FROM alpine:${ALPINE} AS builder
ARG APP
WORKDIR /src
COPY --chown=1000:1000 go.mod go.sum ./
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=secret,id=netrc,target=/root/.netrc \
    go build -o /out/${APP} ./cmd/${APP}
RUN <<EOF
set -e
echo built > /out/stamp
EOF

FROM alpine:${ALPINE}
ARG APP
ENV APP_HOME=/opt/${APP} \
    PATH=/opt/${APP}/bin:/usr/bin
LABEL org.opencontainers.image.title="${APP}" maintainer="me"
COPY --from=builder --chmod=0755 /out/${APP} ${APP_HOME}/bin/
COPY <<EOF ${APP_HOME}/config.ini
name=${APP}
EOF
USER 1000:1000
EXPOSE 8080/tcp
VOLUME ["/data"]
HEALTHCHECK --interval=10s CMD ["wget", "-qO-", "http://127.0.0.1:8080/health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["hello"]
CMD ["--port", "8080"]
"#;

#[test]
fn parses_a_multi_stage_build() {
    let d = ok_args(DOCKERFILE, &[("APP", "greeter")]);
    assert_eq!(d.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(d.stages.len(), 2);
    assert_eq!(d.stages[0].base, "alpine:3.20");
    assert_eq!(d.stages[1].base, "alpine:3.20");
    assert_eq!(d.target_stages(None).unwrap(), vec![0, 1]);
    assert_eq!(d.target_stages(Some("builder")).unwrap(), vec![0]);

    let b = &d.stages[0].instructions;
    let InstructionKind::Run(r) = &b[3].kind else {
        panic!("{:?}", b[3])
    };
    assert_eq!(b[3].line, 9);
    assert_eq!(r.mounts.len(), 2);
    assert_eq!(
        r.command,
        Command::Shell("go build -o /out/${APP} ./cmd/${APP}".into())
    );
    let InstructionKind::Run(r) = &b[4].kind else {
        panic!()
    };
    assert_eq!(b[4].line, 12);
    assert_eq!(r.heredocs[0].content, "set -e\necho built > /out/stamp\n");

    let f = &d.stages[1].instructions;
    assert_eq!(
        f[1].kind,
        InstructionKind::Env(vec![
            ("APP_HOME".into(), "/opt/greeter".into()),
            ("PATH".into(), "/opt/greeter/bin:/usr/bin".into()),
        ])
    );
    assert_eq!(
        f[2].kind,
        InstructionKind::Label(vec![
            ("org.opencontainers.image.title".into(), "greeter".into()),
            ("maintainer".into(), "me".into()),
        ])
    );
    let InstructionKind::Copy(c) = &f[3].kind else {
        panic!()
    };
    assert_eq!(c.from.as_deref(), Some("builder"));
    assert_eq!(c.sources, vec![CopySource::Path("/out/greeter".into())]);
    assert_eq!(c.dest, "/opt/greeter/bin/");
    let InstructionKind::Copy(c) = &f[4].kind else {
        panic!()
    };
    assert_eq!(c.dest, "/opt/greeter/config.ini");
    let CopySource::Heredoc(h) = &c.sources[0] else {
        panic!()
    };
    assert_eq!(h.content, "name=greeter\n");
    assert_eq!(
        (f[5].line, &f[5].kind),
        (26, &InstructionKind::User("1000:1000".into()))
    );
    assert_eq!(
        f.last().unwrap().kind,
        InstructionKind::Cmd(Command::Exec(vec!["--port".into(), "8080".into()]))
    );
    assert_eq!(
        d.stages[1].args_before(1),
        vec![("APP".to_string(), "greeter".to_string())]
    );
}
