//! `container build` end to end: one daemon, the busybox fixture as base,
//! real VMs for RUN (four boots in all, counting the `container run`s).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Daemon, busybox_layout};

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Loads the busybox fixture into the daemon as localhost/busybox:latest.
fn load_busybox(d: &Daemon, work: &Path) {
    let archive = work.join("busybox.tar");
    let st = Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:latest", busybox_layout().display()))
        .arg(format!(
            "docker-archive:{}:localhost/busybox:latest",
            archive.display()
        ))
        .status()
        .expect("skopeo is installed (scripts/setup.sh)");
    assert!(st.success(), "skopeo could not write the busybox archive");
    d.run(&["image", "load", "-i", archive.to_str().unwrap()])
        .ok();
}

const DOCKERFILE: &str = r#"ARG BASE=localhost/busybox:latest
FROM $BASE AS build
ARG MSG=default
WORKDIR /src
COPY app.txt ./
COPY --chown=1000:1000 data/ ./data/
RUN echo "$MSG" > msg && rm -f /bin/vi
RUN (sleep 1000 &); echo two > two
RUN ps -o args | grep -c "[s]leep 1000" > procs || true

FROM localhost/busybox:latest
COPY --from=build /src /app
COPY . /ctx/
CMD ["cat", "/app/msg"]
"#;

#[test]
fn build_run_cache_target_export_and_errors() {
    let d = Daemon::started();
    let work = tempfile::tempdir().unwrap();
    load_busybox(&d, work.path());
    let ctx = work.path().join("ctx");
    write(&ctx, "Dockerfile", DOCKERFILE);
    write(&ctx, "app.txt", "app\n");
    write(&ctx, "data/f.txt", "data\n");
    write(&ctx, "secret.txt", "do not send\n");
    write(&ctx, ".dockerignore", "secret.txt\n");
    let ctx_s = ctx.to_str().unwrap();

    // A multi-stage build with a build arg, then the image runs.
    let r = d.run(&[
        "build",
        "-t",
        "localhost/built:1",
        "--build-arg",
        "MSG=hello-arg",
        ctx_s,
    ]);
    assert_eq!(r.code, 0, "build failed: {}", r.stderr);
    assert!(!r.stderr.contains("CACHED"), "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "localhost/built:1");
    let out = d.run(&["run", "--rm", "localhost/built:1"]).ok();
    assert_eq!(out.trim(), "hello-arg");
    let out = d
        .run(&[
            "run",
            "--rm",
            "localhost/built:1",
            "sh",
            "-c",
            "ls /ctx; stat -c %u:%g /app/data/f.txt",
        ])
        .ok();
    assert!(
        out.contains("app.txt") && out.contains("Dockerfile"),
        "{out}"
    );
    assert!(!out.contains("secret.txt"), ".dockerignore ignored: {out}");
    assert!(out.contains("1000:1000"), "COPY --chown: {out}");

    // The same build again: every step comes from the cache.
    let r = d.run(&[
        "build",
        "-t",
        "localhost/built:1",
        "--build-arg",
        "MSG=hello-arg",
        ctx_s,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let run_step = r
        .stderr
        .lines()
        .find(|l| l.contains("] RUN echo \"$MSG\""))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no RUN step in: {}", r.stderr))
        .to_string();
    assert!(
        r.stderr.contains(&format!("{run_step} CACHED")),
        "the RUN step was not cached: {}",
        r.stderr
    );

    // --target stops at the build stage (the last stage is skipped; the
    // RUN is cached), exported as an OCI archive.
    let archive = work.path().join("build-stage.tar");
    let r = d.run(&[
        "build",
        "--target",
        "build",
        "-t",
        "localhost/built:stage",
        "--build-arg",
        "MSG=hello-arg",
        "-o",
        &format!("type=tar,dest={}", archive.display()),
        ctx_s,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("COPY --from=build"), "{}", r.stderr);
    assert!(r.stderr.contains("CACHED"), "{}", r.stderr);
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", archive.display()))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Layers"].as_array().map(Vec::len), Some(7), "{v}");
    d.run(&["image", "delete", "localhost/built:stage"]).ok();
    let loaded = d
        .run(&["image", "load", "-i", archive.to_str().unwrap()])
        .ok();
    assert!(loaded.contains("localhost/built:stage"), "{loaded}");
    let out = d
        .run(&[
            "run",
            "--rm",
            "localhost/built:stage",
            "sh",
            "-c",
            "cat /src/msg /src/two /src/procs; pwd; test -e /bin/vi && echo vi-present || echo vi-removed",
        ])
        .ok();
    // The three RUNs share one VM; what the second left running was ended
    // before the third, as if each RUN had its own container.
    assert_eq!(out, "hello-arg\ntwo\n0\n/src\nvi-removed\n");

    // RUN mounts: a secret (never in the image) and a cache; the result is
    // exported as files with -o type=local.
    write(
        &ctx,
        "Mounts.Dockerfile",
        "FROM localhost/busybox:latest\nRUN --mount=type=secret,id=tok --mount=type=cache,target=/cache sh -c 'cat /run/secrets/tok > /copy; echo x >> /cache/log'\n",
    );
    write(&ctx, "token", "s3cret\n");
    let files = work.path().join("files");
    let r = d.run(&[
        "build",
        "-f",
        ctx.join("Mounts.Dockerfile").to_str().unwrap(),
        "--secret",
        &format!("id=tok,src={}", ctx.join("token").display()),
        "-o",
        &format!("type=local,dest={}", files.display()),
        ctx_s,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(files.join("copy")).unwrap(),
        "s3cret\n"
    );
    assert!(files.join("bin/busybox").is_file());
    assert!(!files.join("run/secrets").exists(), "the secret leaked");
    assert!(!files.join("cache").exists(), "the cache mount leaked");

    // A syntax error names its line.
    write(
        &ctx,
        "Bad.Dockerfile",
        "FROM localhost/busybox:latest\nRUNN true\n",
    );
    let bad = ctx.join("Bad.Dockerfile");
    let r = d.run(&["build", "-f", bad.to_str().unwrap(), ctx_s]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Dockerfile:2"), "{}", r.stderr);

    // A failing RUN shows its line, command, output and exit code.
    write(
        &ctx,
        "Fail.Dockerfile",
        "FROM localhost/busybox:latest\nENV X=1\nRUN echo before-fail && exit 7\n",
    );
    let fail = ctx.join("Fail.Dockerfile");
    let r = d.run(&["build", "-f", fail.to_str().unwrap(), ctx_s]);
    assert_ne!(r.code, 0);
    for want in [
        "Dockerfile:3",
        "exit code 7",
        "before-fail",
        "echo before-fail",
    ] {
        assert!(r.stderr.contains(want), "missing {want}: {}", r.stderr);
    }
}
