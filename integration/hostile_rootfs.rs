//! Issue 6, acceptance 2: rootfs images that try to get the runtime to
//! mount, mknod or write outside the rootfs through symlinks. Each case
//! either fails Create with a clear error or keeps everything inside the
//! rootfs; the host directory planted as the target is checked unchanged.

use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::harness::*;

/// A host directory holding a file, as the bait.
fn bait(name: &str) -> PathBuf {
    let d = work_dir().join(format!("host-bait-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("bait dir");
    std::fs::write(d.join("secret"), "host data").expect("bait file");
    d
}

/// Everything about the bait that a write, mknod, chmod or chown changes.
fn snapshot(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .expect("read bait")
        .map(|e| {
            let p = e.expect("entry").path();
            let md = std::fs::symlink_metadata(&p).expect("stat");
            let body = if md.is_file() { std::fs::read_to_string(&p).unwrap_or_default() } else { String::new() };
            format!("{} {:o} {}:{} {} {body}", p.display(), md.mode(), md.uid(), md.gid(), md.len())
        })
        .collect();
    let md = std::fs::metadata(dir).expect("stat bait");
    out.push(format!("{} {:o} {}:{} mtime={}", dir.display(), md.mode(), md.uid(), md.gid(), md.mtime_nsec()));
    out.sort();
    out
}

/// How deep `..` must climb from the rootfs to reach `/`.
fn up_to_host_root(root: &Path) -> String {
    "../".repeat(root.components().count() + 2)
}

fn replace_with_symlink(at: &Path, target: &Path) {
    let _ = std::fs::remove_dir_all(at);
    let _ = std::fs::remove_file(at);
    symlink(target, at).expect("plant symlink");
}

struct Case {
    name: &'static str,
    /// Plants the trap in the rootfs and edits the spec.
    plant: fn(root: &Path, bait: &Path, spec: &mut Value),
    /// None: the container runs and prints `ran`; Some(text): Create fails
    /// with an error containing it.
    fails_with: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "proc-symlink-absolute",
        plant: |root, bait, _| replace_with_symlink(&root.join("proc"), bait),
        fails_with: Some("mount proc on /proc: /proc in the rootfs is or passes through a symlink; refusing"),
    },
    Case {
        name: "sys-symlink-dotdot",
        plant: |root, bait, _| {
            let rel = PathBuf::from(up_to_host_root(root)).join(bait.strip_prefix("/").expect("absolute"));
            replace_with_symlink(&root.join("sys"), &rel)
        },
        fails_with: Some("mount sysfs on /sys: /sys in the rootfs is or passes through a symlink; refusing"),
    },
    Case {
        name: "proc-is-a-file",
        plant: |root, _, _| {
            let _ = std::fs::remove_dir_all(root.join("proc"));
            std::fs::write(root.join("proc"), "not a directory").expect("file");
        },
        fails_with: Some("mount proc on /proc: /proc in the rootfs is not a directory"),
    },
    Case {
        name: "dev-symlink",
        plant: |root, bait, _| replace_with_symlink(&root.join("dev"), bait),
        fails_with: None,
    },
    Case {
        name: "dev-null-symlink-no-dev-mount",
        plant: |root, bait, spec| {
            std::fs::create_dir_all(root.join("dev")).expect("dev");
            replace_with_symlink(&root.join("dev/null"), &bait.join("secret"));
            replace_with_symlink(&root.join("dev/zero"), bait);
            if let Some(m) = spec["mounts"].as_array_mut() {
                m.retain(|m| {
                    m["destination"] != "/dev" && !m["destination"].as_str().unwrap_or("").starts_with("/dev/")
                });
            }
        },
        fails_with: None,
    },
    Case {
        name: "bind-destination-symlink",
        plant: |root, bait, spec| {
            replace_with_symlink(&root.join("data"), bait);
            let src = work_dir().join("hostile-bind-src");
            std::fs::create_dir_all(&src).expect("src");
            std::fs::write(src.join("f"), "bound").expect("src file");
            spec["mounts"]
                .as_array_mut()
                .expect("mounts")
                .push(json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "rw"]}));
        },
        fails_with: None,
    },
    Case {
        name: "bind-destination-dotdot",
        plant: |root, bait, spec| {
            let src = work_dir().join("hostile-bind-src");
            std::fs::create_dir_all(&src).expect("src");
            let dest = format!("/{}{}/sub", up_to_host_root(root), bait.display());
            spec["mounts"]
                .as_array_mut()
                .expect("mounts")
                .push(json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind"]}));
        },
        fails_with: None,
    },
    Case {
        name: "masked-and-readonly-symlinks",
        plant: |root, bait, spec| {
            replace_with_symlink(&root.join("etc/masked"), &bait.join("secret"));
            replace_with_symlink(&root.join("etc/ro"), bait);
            spec["linux"]["maskedPaths"].as_array_mut().expect("masked").push(json!("/etc/masked"));
            spec["linux"]["readonlyPaths"].as_array_mut().expect("ro").push(json!("/etc/ro"));
        },
        fails_with: None,
    },
];

#[test]
fn symlinks_in_the_rootfs_never_reach_the_host() {
    let mut problems = Vec::new();
    for case in CASES {
        let id = format!("hostile-{}", case.name);
        let root = rootfs(&id);
        let bait = bait(case.name);
        let before = snapshot(&bait);
        let mut s = spec(&id, &root, &["sh", "-c", "echo ran; cat /data/f 2>/dev/null; true"]);
        (case.plant)(&root, &bait, &mut s);
        let out = run_spec(&id, &s);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        match case.fails_with {
            None if !(out.status.success() && stdout.starts_with("ran")) => {
                problems.push(format!("{id}: should run: {stdout} {stderr}"))
            }
            Some(why) if out.status.success() || !stderr.contains(why) => {
                problems.push(format!("{id}: should fail with {why:?}: {stdout} {stderr}"))
            }
            _ => {}
        }
        if case.name == "bind-destination-symlink" && !stdout.contains("bound") {
            problems.push(format!("{id}: the bind mount is not at /data inside the container: {stdout}"));
        }
        let after = snapshot(&bait);
        if before != after {
            problems.push(format!("{id}: the host bait changed:\n{before:#?}\n{after:#?}"));
        }
        remove(&id);
        assert_no_leftovers(&id);
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&bait);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Acceptance 4: nothing of the shim's reaches the container. Driven
/// directly so the init can be looked at between Create and Start.
#[test]
fn the_container_holds_only_its_stdio_and_cannot_write_the_shim_binary() {
    use crate::direct::*;
    use containerd_shim_protos::api::{ConnectRequest, CreateTaskRequest, DeleteRequest, KillRequest, StartRequest};

    let id = "hostile-fds";
    let b = bundle(&format!("bundle-{id}"));
    let root = rootfs(id);
    let s = spec(id, &root, &["sleep", "30"]);
    std::fs::write(b.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");
    assert_checks_clean(&b);
    let addr = text(&start(&b, id, None));
    let fds = |pid: u32| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("fd dir")
            .map(|e| e.expect("fd").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
        let req = CreateTaskRequest { id: id.into(), bundle: b.to_string_lossy().into(), ..Default::default() };
        let pid = c.create(ctx(), &req).await.expect("Create").pid;
        // Created, not started: the init is the shim's binary seen through
        // a read-only view (see init_exe.rs), not the host's path.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
        assert_ne!(exe, shim_binary(), "the init runs from the host's binary itself");
        let w = std::fs::OpenOptions::new().write(true).open(format!("/proc/{pid}/exe"));
        assert!(w.is_err(), "the init's executable could be opened for writing");
        assert_eq!(fds(pid), ["0", "1", "2", "3"], "the created init holds only stdio and its channel");
        c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");
        assert_eq!(fds(pid), ["0", "1", "2"], "the container process holds only its stdio");
        let kill = KillRequest { id: id.into(), signal: 9, ..Default::default() };
        c.kill(ctx(), &kill).await.expect("Kill");
        c.wait(ctx(), &containerd_shim_protos::api::WaitRequest { id: id.into(), ..Default::default() })
            .await
            .expect("Wait");
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, shim).await;
    });
    assert_no_leftovers(id);
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&b);
}
