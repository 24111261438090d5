//! The executor without VMs: a fake RUN executor (behind the `RunExecutor`
//! trait) records what it was asked to run; COPY/ADD layers, image configs,
//! the cache and error messages are checked on the real stores.

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use container_build::exec::progress::Reporter;
use container_build::exec::run::{RunExecutor, RunRequest};
use container_build::exec::{BuildOptions, Builder, BuiltImage};
use containerization_error::Result;
use containerization_oci::ImageStore;
use futures::future::BoxFuture;

/// Records RUN requests; exits with `code`.
#[derive(Default)]
struct FakeRunner {
    seen: Mutex<Vec<RunRequest>>,
    code: i32,
}

impl RunExecutor for FakeRunner {
    fn run(&self, req: RunRequest) -> BoxFuture<'_, Result<i32>> {
        (req.output)(b"fake output\n");
        self.seen.lock().unwrap().push(req);
        let code = self.code;
        Box::pin(async move { Ok(code) })
    }
}

/// Collects every progress line.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Reporter for Lines {
    fn step(&self, label: &str) -> usize {
        let mut l = self.0.lock().unwrap();
        l.push(label.to_string());
        l.len()
    }
    fn cached(&self, _: usize) {
        self.0.lock().unwrap().push("CACHED".into());
    }
    fn output(&self, _: usize, _: &[u8]) {}
    fn done(&self, _: usize, _: std::time::Instant) {}
    fn note(&self, t: &str) {
        self.0.lock().unwrap().push(t.into());
    }
}

struct Env {
    root: tempfile::TempDir,
    ctx: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            root: tempfile::tempdir().unwrap(),
            ctx: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, data: &[u8]) {
        let p = self.ctx.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    fn build(
        &self,
        dockerfile: &str,
        runner: Arc<FakeRunner>,
        tweak: impl FnOnce(&mut BuildOptions),
    ) -> (Result<BuiltImage>, Vec<String>) {
        let lines = Arc::new(Lines::default());
        let builder = Builder::new(self.root.path(), runner, lines.clone()).unwrap();
        let mut opts = BuildOptions::new(self.ctx.path());
        tweak(&mut opts);
        let df = container_build::parse(dockerfile, &opts.build_args).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = rt.block_on(builder.build(&df, &opts));
        let l = lines.0.lock().unwrap().clone();
        (r, l)
    }

    fn store(&self) -> ImageStore {
        ImageStore::open(self.root.path()).unwrap()
    }
}

/// Every entry of every layer of `image`: (path, uid, gid, mode, data).
fn layer_entries(store: &ImageStore, image: &BuiltImage) -> Vec<(String, u64, u64, u32, Vec<u8>)> {
    let mut out = Vec::new();
    for l in &image.layers {
        let f = std::fs::File::open(store.content().blob_path(&l.digest)).unwrap();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push((
                path,
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mode().unwrap(),
                data,
            ));
        }
    }
    out
}

fn config(store: &ImageStore, image: &BuiltImage) -> serde_json::Value {
    serde_json::from_slice(&store.content().read(&image.config_digest).unwrap()).unwrap()
}

fn find<'a>(
    entries: &'a [(String, u64, u64, u32, Vec<u8>)],
    path: &str,
) -> &'a (String, u64, u64, u32, Vec<u8>) {
    entries
        .iter()
        .rev()
        .find(|e| e.0.trim_end_matches('/') == path)
        .unwrap_or_else(|| {
            panic!(
                "{path} not in layers: {:?}",
                entries.iter().map(|e| &e.0).collect::<Vec<_>>()
            )
        })
}

#[test]
fn scratch_copy_add_chown_chmod_and_config() {
    let env = Env::new();
    env.write(
        "etc/passwd",
        b"root:x:0:0::/root:/bin/sh\napp:x:1234:99::/home:/bin/sh\n",
    );
    env.write("etc/group", b"root:x:0:\nstaff:x:77:\n");
    env.write("src/a.txt", b"A");
    env.write("src/sub/b.txt", b"B");
    env.write("src/skip.log", b"no");
    env.write(".dockerignore", b"**/*.log\n");
    let mut tarball = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o600);
    h.set_cksum();
    tarball
        .append_data(&mut h, "inner/x.txt", &b"xx"[..])
        .unwrap();
    env.write("pkg.tgz", &tarball.into_inner().unwrap().finish().unwrap());
    let df = r#"FROM scratch
COPY etc/ /etc/
COPY --chown=app:staff --chmod=0640 src /data
COPY src/*.txt /globbed/
ADD pkg.tgz /opt/
COPY <<EOF /hello.txt
hi $NAME
EOF
ARG NAME=world
ENV GREETING="hello ${NAME}" PATH=/bin
WORKDIR app
LABEL a=b
EXPOSE 80/tcp 53/udp
USER app
ENTRYPOINT ["/bin/app"]
CMD ["--serve"]
HEALTHCHECK --interval=5s CMD /bin/check
STOPSIGNAL SIGINT
VOLUME /var/data
"#;
    let runner = Arc::new(FakeRunner::default());
    let (r, lines) = env.build(df, runner, |o| {
        o.tags = vec!["localhost/t:1".into()];
        o.labels = vec![("from".into(), "cli".into())];
    });
    let image = r.unwrap();
    assert!(!lines.iter().any(|l| l == "CACHED"), "{lines:?}");
    let store = env.store();
    let e = layer_entries(&store, &image);
    let f = find(&e, "data/sub/b.txt");
    assert_eq!((f.1, f.2, f.3 & 0o7777), (1234, 77, 0o640));
    assert!(
        !e.iter().any(|x| x.0.ends_with("skip.log")),
        ".dockerignore"
    );
    assert_eq!(find(&e, "globbed/a.txt").4, b"A");
    assert_eq!(
        find(&e, "opt/inner/x.txt").4,
        b"xx",
        "ADD extracts a local tar"
    );
    assert_eq!(
        find(&e, "hello.txt").4,
        b"hi \n",
        "NAME is declared after the COPY"
    );
    find(&e, "app");
    let c = config(&store, &image);
    let cfg = &c["config"];
    assert_eq!(cfg["WorkingDir"], "/app");
    assert_eq!(cfg["User"], "app");
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/app"]));
    assert_eq!(cfg["Cmd"], serde_json::json!(["--serve"]));
    assert_eq!(cfg["Labels"]["a"], "b");
    assert_eq!(cfg["Labels"]["from"], "cli");
    assert!(cfg["ExposedPorts"].get("53/udp").is_some());
    assert!(cfg["Volumes"].get("/var/data").is_some());
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert_eq!(cfg["Healthcheck"]["Interval"], 5_000_000_000u64);
    let env_list: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env_list.contains(&"GREETING=hello world"), "{env_list:?}");
    assert_eq!(
        c["rootfs"]["diff_ids"].as_array().unwrap().len(),
        image.layers.len()
    );
    assert_eq!(
        store.get("localhost/t:1").unwrap().digest(),
        image.digest,
        "tagged in the image store"
    );
}

#[test]
fn run_requests_cache_and_errors() {
    let env = Env::new();
    env.write("f.txt", b"1");
    let df = "FROM scratch AS base\nCOPY f.txt /f.txt\nARG V=1\nENV E=x\nWORKDIR /w\nUSER 5:6\nSHELL [\"/bin/ash\", \"-e\", \"-c\"]\nRUN echo $V\nFROM base\nRUN [\"/bin/true\"]\n";
    let runner = Arc::new(FakeRunner::default());
    let (r, lines) = env.build(df, runner.clone(), |o| {
        o.build_args.insert("V".into(), "2".into());
    });
    let first = r.unwrap();
    {
        let seen = runner.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let first = &seen[0];
        assert_eq!(first.args, vec!["/bin/ash", "-e", "-c", "echo $V"]);
        assert!(first.env.contains(&"V=2".to_string()), "{:?}", first.env);
        assert!(first.env.contains(&"E=x".to_string()));
        assert_eq!((first.cwd.as_str(), first.uid, first.gid), ("/w", 5, 6));
        assert_eq!(seen[1].args, vec!["/bin/true"]);
    }
    assert!(!lines.iter().any(|l| l == "CACHED"), "{lines:?}");

    // Again: both RUNs and the COPY come from the cache, nothing runs.
    let again = Arc::new(FakeRunner::default());
    let (r, lines) = env.build(df, again.clone(), |o| {
        o.build_args.insert("V".into(), "2".into());
    });
    assert!(again.seen.lock().unwrap().is_empty());
    assert_eq!(
        lines.iter().filter(|l| *l == "CACHED").count(),
        3,
        "{lines:?}"
    );
    assert_eq!(
        r.unwrap().digest,
        first.digest,
        "an unchanged rebuild is the same image"
    );

    // A changed build arg invalidates the RUN that sees it, not the COPY.
    let changed = Arc::new(FakeRunner::default());
    let (r, _) = env.build(df, changed.clone(), |o| {
        o.build_args.insert("V".into(), "3".into());
    });
    r.unwrap();
    assert_eq!(changed.seen.lock().unwrap().len(), 2);

    // --no-cache runs everything.
    let fresh = Arc::new(FakeRunner::default());
    let (r, lines) = env.build(df, fresh.clone(), |o| {
        o.build_args.insert("V".into(), "2".into());
        o.no_cache = true;
    });
    r.unwrap();
    assert_eq!(fresh.seen.lock().unwrap().len(), 2);
    assert!(!lines.iter().any(|l| l == "CACHED"));

    // --target base skips the last stage.
    let target = Arc::new(FakeRunner::default());
    let (r, lines) = env.build(df, target.clone(), |o| {
        o.target = Some("base".into());
        o.no_cache = true;
    });
    r.unwrap();
    assert_eq!(target.seen.lock().unwrap().len(), 1);
    assert!(!lines.iter().any(|l| l.contains("/bin/true")), "{lines:?}");

    // A failing RUN names the line, the command, the output and the code.
    let failing = Arc::new(FakeRunner {
        code: 9,
        ..Default::default()
    });
    let (r, _) = env.build("FROM scratch\n\nRUN false\n", failing, |_| {});
    let e = r.unwrap_err();
    for want in ["Dockerfile:3", "RUN false", "exit code 9", "fake output"] {
        assert!(e.message.contains(want), "{want}: {}", e.message);
    }

    // A missing COPY source names the line and the path.
    let (r, _) = env.build(
        "FROM scratch\nCOPY nope.txt /\n",
        Arc::new(FakeRunner::default()),
        |_| {},
    );
    let e = r.unwrap_err();
    assert!(
        e.message.contains("Dockerfile:2") && e.message.contains("nope.txt"),
        "{}",
        e.message
    );

    // Remote ADD and foreign platforms are refused clearly.
    let (r, _) = env.build(
        "FROM scratch\nADD https://example.com/x /x\n",
        Arc::new(FakeRunner::default()),
        |_| {},
    );
    assert!(
        r.unwrap_err()
            .message
            .contains("remote sources are not supported")
    );
    let (r, _) = env.build("FROM scratch\n", Arc::new(FakeRunner::default()), |o| {
        o.platform = containerization_oci::Platform::parse("linux/s390x").unwrap();
    });
    assert!(r.unwrap_err().message.contains("only the host platform"));

    let (r, _) = env.build(
        "FROM --platform=linux/arm64 scratch\n",
        Arc::new(FakeRunner::default()),
        |_| {},
    );
    let e = r.unwrap_err();
    assert!(
        e.message.contains("Dockerfile:1") && e.message.contains("--platform"),
        "{}",
        e.message
    );

    // A required secret that was not given fails before anything runs.
    let (r, _) = env.build(
        "FROM scratch\nRUN --mount=type=secret,id=tok,required cat /run/secrets/tok\n",
        Arc::new(FakeRunner::default()),
        |_| {},
    );
    assert!(r.unwrap_err().message.contains("secret tok is required"));
}

#[test]
fn onbuild_triggers_run_in_the_child() {
    let env = Env::new();
    env.write("f.txt", b"F");
    let (r, _) = env.build(
        "FROM scratch\nONBUILD COPY f.txt /from-trigger.txt\n",
        Arc::new(FakeRunner::default()),
        |o| o.tags = vec!["localhost/onbuild:1".into()],
    );
    let parent = r.unwrap();
    let store = env.store();
    assert_eq!(
        config(&store, &parent)["config"]["OnBuild"],
        serde_json::json!(["COPY f.txt /from-trigger.txt"])
    );
    let (r, _) = env.build(
        "FROM localhost/onbuild:1\n",
        Arc::new(FakeRunner::default()),
        |_| {},
    );
    let child = r.unwrap();
    assert_eq!(
        find(&layer_entries(&store, &child), "from-trigger.txt").4,
        b"F"
    );
    assert!(config(&store, &child)["config"].get("OnBuild").is_none());
}

#[test]
fn missing_context_is_an_error() {
    let env = Env::new();
    let root = env.root.path().to_path_buf();
    let (r, _) = env.build("FROM scratch\n", Arc::new(FakeRunner::default()), |o| {
        o.context = Path::new(&root).join("absent");
    });
    assert!(r.unwrap_err().message.contains("is not a directory"));
}
