//! `container image ...` and `container registry ...` through the real CLI
//! against a real local registry (scripts/start-registry.sh) with the
//! busybox fixture (scripts/build-busybox-image.sh).

mod common;

use common::{Daemon, Registry, busybox_layout};

#[test]
fn pull_list_inspect_tag_push_save_load_delete_prune() {
    let reg = Registry::start(None);
    reg.push_busybox("test/busybox:latest", None);
    let d = Daemon::started();
    let image = format!("{}/test/busybox:latest", reg.host());

    let out = d
        .run(&["image", "pull", "--progress", "plain", &image])
        .ok();
    assert!(out.contains(&image), "{out}");
    let snapshots = || {
        std::fs::read_dir(d.root.path().join("snapshots"))
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .filter(|e| e.path().join("rootfs.ext4").exists())
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(snapshots(), 1, "the pull prepared the ext4 snapshot");

    let q = d.run(&["image", "list", "-q"]).ok();
    assert_eq!(q.trim(), image);
    let table = d.run(&["images"]).ok();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("test/busybox"), "{table}");
    let json = d.run(&["i", "ls", "--format", "json"]).ok();
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list[0]["reference"], image.as_str());
    assert!(
        list[0]["platforms"][0]
            .as_str()
            .unwrap()
            .contains("linux/amd64")
    );

    let inspect = d.run(&["image", "inspect", &image]).ok();
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert!(
        inspect.contains("\"Cmd\""),
        "inspect shows the config: {inspect}"
    );
    assert!(v.is_array());

    // Tag, push the new name, and pull it back after deleting it locally.
    let copy = format!("{}/test/copy:v1", reg.host());
    d.run(&["image", "tag", &image, &copy]).ok();
    d.run(&["image", "push", "--progress", "none", &copy]).ok();
    d.run(&["image", "delete", &copy]).ok();
    d.run(&["image", "pull", "--progress", "none", &copy]).ok();

    // Save both names, delete everything, load them back.
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("images.tar");
    d.run(&[
        "image",
        "save",
        "-o",
        archive.to_str().unwrap(),
        &image,
        &copy,
    ])
    .ok();
    assert!(archive.metadata().unwrap().len() > 100_000);
    d.run(&["image", "delete", "--all"]).ok();
    assert_eq!(d.run(&["image", "list", "-q"]).ok().trim(), "");
    assert_eq!(
        snapshots(),
        0,
        "deleting the images removed their snapshots"
    );
    let loaded = d
        .run(&["image", "load", "-i", archive.to_str().unwrap()])
        .ok();
    assert!(
        loaded.contains(&image) && loaded.contains(&copy),
        "{loaded}"
    );

    // A docker-archive made by skopeo loads too.
    let docker = work.path().join("docker.tar");
    let st = std::process::Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:latest", busybox_layout().display()))
        .arg(format!(
            "docker-archive:{}:localhost/x:latest",
            docker.display()
        ))
        .status()
        .expect("skopeo");
    assert!(st.success());
    let loaded = d
        .run(&["image", "load", "-i", docker.to_str().unwrap()])
        .ok();
    assert!(loaded.contains("localhost/x:latest"), "{loaded}");

    // Deleting a missing image fails, -f ignores it.
    let r = d.run(&["image", "rm", "127.0.0.1:1/none:latest"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    d.run(&["image", "rm", "-f", "127.0.0.1:1/none:latest"])
        .ok();

    // prune -a removes everything (no container uses them).
    let pruned = d.run(&["image", "prune", "-a"]).ok();
    assert!(pruned.contains("Reclaimed"), "{pruned}");
    assert_eq!(d.run(&["image", "list", "-q"]).ok().trim(), "");
    let blobs = d.root.path().join("content/blobs/sha256");
    let left = std::fs::read_dir(&blobs).map(|r| r.count()).unwrap_or(0);
    assert_eq!(left, 0, "prune -a leaves no blobs behind");
}

#[test]
fn unknown_image_and_bad_reference_errors() {
    let reg = Registry::start(None);
    let d = Daemon::started();

    let missing = format!("{}/test/nosuch:latest", reg.host());
    let r = d.run(&["image", "pull", "--progress", "none", &missing]);
    assert_eq!(r.code, 3, "not found exit code: {}", r.stderr);
    assert!(r.stderr.starts_with("Error: "), "{}", r.stderr);
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "one line: {}", r.stderr);

    let r = d.run(&["image", "pull", "--progress", "none", "Bad/UPPER:x"]);
    assert_eq!(r.code, 2, "invalidArgument exit code: {}", r.stderr);
    assert!(
        r.stderr.contains("Bad/UPPER"),
        "names the text: {}",
        r.stderr
    );

    let r = d.run(&["image", "inspect", "nosuch:latest"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
}

#[test]
fn registry_login_with_htpasswd() {
    let work = tempfile::tempdir().unwrap();
    let htpasswd = work.path().join("htpasswd");
    let out = std::process::Command::new("htpasswd")
        .args(["-Bbn", "u", "secret-pw"])
        .output()
        .expect("htpasswd is installed (apt-get install apache2-utils)");
    std::fs::write(&htpasswd, &out.stdout).unwrap();
    let reg = Registry::start(Some(&htpasswd));
    reg.push_busybox("private/busybox:latest", Some("u:secret-pw"));
    let d = Daemon::started();
    let image = format!("{}/private/busybox:latest", reg.host());

    let r = d.run(&["image", "pull", "--progress", "none", &image]);
    assert_ne!(r.code, 0, "anonymous pull of a private image fails");

    let r = d.run_with_stdin(
        &[
            "registry",
            "login",
            "--username",
            "u",
            "--password-stdin",
            &reg.host(),
        ],
        "wrong\n",
    );
    assert_ne!(r.code, 0, "a wrong password is refused");

    d.run_with_stdin(
        &[
            "registry",
            "login",
            "-u",
            "u",
            "--password-stdin",
            &reg.host(),
        ],
        "secret-pw\n",
    )
    .ok();
    let list = d.run(&["registry", "list"]).ok();
    assert!(list.contains(&reg.host()) && list.contains('u'), "{list}");
    assert!(!list.contains("secret-pw"), "passwords are never printed");

    d.run(&["image", "pull", "--progress", "none", &image]).ok();

    d.run(&["registry", "logout", &reg.host()]).ok();
    let list = d.run(&["registry", "list"]).ok();
    assert!(!list.contains(&reg.host()), "{list}");
}
