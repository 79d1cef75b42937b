//! What every integration test needs: the private containerd that
//! scripts/test.sh started (its socket in MYSHIM_TEST_CTR), the locally built
//! image (MYSHIM_TEST_IMAGE), ctr wrappers, specs for `ctr run --config`, and
//! leak probes. A missing environment is a failure, never a skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const RUNTIME: &str = "io.containerd.myshim.v2";
pub const NS: &str = "myshim-test";

fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the integration tests through scripts/test.sh"))
}

pub fn address() -> String {
    var("MYSHIM_TEST_CTR")
}

pub fn image() -> String {
    var("MYSHIM_TEST_IMAGE")
}

/// Where the tests keep their files (rootfs copies, specs).
pub fn work_dir() -> PathBuf {
    let d = PathBuf::from(var("MYSHIM_TEST_DIR")).join("work");
    std::fs::create_dir_all(&d).expect("work dir");
    d
}

/// The shim's state root as the private containerd passes it on.
pub fn shim_root() -> PathBuf {
    PathBuf::from(var("MYSHIM_ROOT"))
}

pub fn shim_binary() -> PathBuf {
    PathBuf::from(
        std::env::var("MYSHIM_TEST_SHIM").unwrap_or_else(|_| "/usr/local/bin/containerd-shim-myshim-v2".into()),
    )
}

fn ctr_cmd(args: &[&str]) -> Command {
    let mut c = Command::new("timeout");
    // ctr forwards signals to the task; -k makes sure a stuck one still ends.
    c.args(["-k", "5", "60", "ctr", "--address", &address(), "-n", NS]).args(args);
    c
}

pub fn ctr(args: &[&str]) -> Output {
    ctr_cmd(args).stdin(Stdio::null()).output().expect("run ctr")
}

pub fn ctr_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child =
        ctr_cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn ctr");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    // ctr 1.6 keeps stdin open at EOF anyway; keep our end open until it exits.
    let out = child.wait_with_output().expect("ctr output");
    drop(stdin);
    out
}

pub fn ctr_spawn(args: &[&str]) -> std::process::Child {
    ctr_cmd(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn ctr")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `ctr run --rm` of the test image with our runtime.
pub fn run_image(id: &str, extra: &[&str], cmd: &[&str]) -> Output {
    let img = image();
    let mut args = vec!["run", "--rm", "--runtime", RUNTIME];
    args.extend_from_slice(extra);
    args.push(&img);
    args.push(id);
    args.extend_from_slice(cmd);
    ctr(&args)
}

/// Polls `ctr task ls` until `id` has `status` (bounded).
pub fn wait_status(id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = text(&ctr(&["task", "ls"]).stdout);
        if out.lines().any(|l| l.split_whitespace().next() == Some(id) && l.contains(status)) {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never reached {status}: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn task_pid(id: &str) -> i32 {
    let out = text(&ctr(&["task", "ls"]).stdout);
    out.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| f[1].parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("no task {id}: {out}"))
}

/// Best-effort removal of a test's container, whatever state it is in.
pub fn remove(id: &str) {
    let _ = ctr(&["task", "kill", "-a", "-s", "KILL", id]);
    let _ = ctr(&["task", "rm", "-f", id]);
    let _ = ctr(&["container", "rm", id]);
}

/// A busybox rootfs directory for specs run with `ctr run --config`.
pub fn rootfs(name: &str) -> PathBuf {
    let root = work_dir().join(format!("rootfs-{name}"));
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root", "data", "work"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    let list = Command::new("/bin/busybox").arg("--list").output().expect("busybox --list");
    for applet in text(&list.stdout).lines().filter(|a| *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000::/work:/bin/sh\n")
        .expect("passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\ntester:x:1000:\ng2:x:2000:\ng3:x:3000:\n").expect("group");
    root
}

/// containerd's default spec (`ctr oci spec`) pointed at `root`, running
/// `args`, in its own cgroup.
pub fn spec(id: &str, root: &Path, args: &[&str]) -> Value {
    let out = ctr(&["oci", "spec"]);
    assert!(out.status.success(), "ctr oci spec: {}", text(&out.stderr));
    let mut s: Value = serde_json::from_slice(&out.stdout).expect("default spec");
    s["root"] = json!({"path": root, "readonly": false});
    s["process"]["args"] = json!(args);
    s["process"]["env"] = json!(["PATH=/bin"]);
    s["linux"]["cgroupsPath"] = json!(format!("/{NS}/{id}"));
    s
}

/// Writes a config the test expects to run: `check` must find no error in
/// it (issue 7, acceptance 3).
pub fn write_spec(id: &str, spec: &Value) -> PathBuf {
    let p = write_spec_unchecked(id, spec);
    assert_checks_clean(&p);
    p
}

/// Writes a config meant to be refused; `check` must refuse it too.
pub fn write_bad_spec(id: &str, spec: &Value) -> PathBuf {
    let p = write_spec_unchecked(id, spec);
    let out = Command::new(shim_binary()).arg("check").arg(&p).output().expect("check");
    assert_eq!(out.status.code(), Some(2), "check accepts a config Create refuses: {}", text(&out.stdout));
    p
}

fn write_spec_unchecked(id: &str, spec: &Value) -> PathBuf {
    let p = work_dir().join(format!("{id}.json"));
    std::fs::write(&p, serde_json::to_vec_pretty(spec).expect("json")).expect("write spec");
    p
}

/// `check` on a config or bundle the tests run reports no error.
pub fn assert_checks_clean(config: &Path) {
    let out = Command::new(shim_binary()).arg("check").arg(config).output().expect("check");
    assert_ne!(out.status.code(), Some(2), "check finds errors in {}: {}", config.display(), text(&out.stdout));
}

/// `ctr run --rm --config` of a spec the test wrote.
pub fn run_spec(id: &str, spec: &Value) -> Output {
    let p = write_spec(id, spec);
    ctr(&["run", "--rm", "--runtime", RUNTIME, "--config", &p.to_string_lossy(), id])
}

/// `ctr run --rm --config` of a spec meant to fail Create, which `check`
/// must refuse as well.
pub fn run_bad_spec(id: &str, spec: &Value) -> Output {
    let p = write_bad_spec(id, spec);
    ctr(&["run", "--rm", "--runtime", RUNTIME, "--config", &p.to_string_lossy(), id])
}

/// Shim processes serving `id`.
pub fn shim_pids(id: &str) -> Vec<i32> {
    let needle = format!("\0-id\0{id}\0");
    std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = text(&c);
                    c.contains("containerd-shim-myshim-v2") && c.contains(&needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// The children of `pid`'s main thread (a shim's: its early init, its
/// containers' inits).
pub fn children(pid: u32) -> Vec<u32> {
    let list = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    list.split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

/// A process that is gone or a zombie (this VM's pid 1 reaps lazily).
pub fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

pub fn wait_gone(pid: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    gone(pid)
}

/// Whether the host has the unified (v2) cgroup hierarchy alone.
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A cgroup's directory (`rel` below the root): in `controller`'s
/// hierarchy on v1, in the unified one on v2.
pub fn cgroup_dir(controller: &str, rel: &str) -> PathBuf {
    let root = Path::new("/sys/fs/cgroup");
    let rel = rel.trim_start_matches('/');
    if cgroup_v2() {
        root.join(rel)
    } else {
        root.join(controller).join(rel)
    }
}

/// The container's cgroup directories that still exist.
pub fn cgroups_of(id: &str) -> Vec<PathBuf> {
    if cgroup_v2() {
        let dir = cgroup_dir("", &format!("{NS}/{id}"));
        return if dir.exists() { vec![dir] } else { Vec::new() };
    }
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.path().join(NS).join(id))).filter(|p| p.exists()).collect())
        .unwrap_or_default()
}

/// Mount points whose path mentions `needle`.
pub fn mounts_with(needle: &str) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.contains(needle)).map(String::from).collect()
}

/// Asserts that `id` left nothing behind: shim, cgroup, mounts, state.
pub fn assert_no_leftovers(id: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !shim_pids(id).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(shim_pids(id).is_empty(), "{id}: shim still running");
    assert!(cgroups_of(id).is_empty(), "{id}: cgroups left: {:?}", cgroups_of(id));
    assert!(mounts_with(&format!("/{id}/")).is_empty(), "{id}: mounts left: {:?}", mounts_with(id));
    let leftover_state: Vec<PathBuf> = std::fs::read_dir(shim_root())
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.path().join(NS).join(id))).filter(|p| p.exists()).collect())
        .unwrap_or_default();
    assert!(leftover_state.is_empty(), "{id}: state left: {leftover_state:?}");
}

/// The rootfs owned by `uid` (a user namespace's root), and the way to it
/// open to it: the test's work dir is mktemp's 0700.
pub fn give_rootfs_to(root: &Path, uid: u32) {
    let ok = Command::new("chown").args(["-hR", &format!("{uid}:{uid}")]).arg(root).status().expect("chown");
    assert!(ok.success(), "chown {}", root.display());
    use std::os::unix::fs::PermissionsExt;
    for dir in root.ancestors().skip(1) {
        let mode = std::fs::metadata(dir).expect("stat").permissions().mode();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o111)).expect("chmod");
    }
}

/// The host's devices as containerd's `--privileged` lists them in the
/// config (oci.WithHostDevices): every char and block node under /dev but
/// /dev/console, skipping pts, shm, fd, mqueue and links.
pub fn host_devices() -> Value {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    fn walk(dir: &Path, out: &mut Vec<Value>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let (path, name) = (e.path(), e.file_name());
            let Ok(md) = std::fs::symlink_metadata(&path) else { continue };
            let ft = md.file_type();
            if ft.is_dir() {
                if !["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"].iter().any(|s| name == *s) {
                    walk(&path, out);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            if name == "console" {
                continue;
            }
            let rdev = md.rdev();
            out.push(json!({
                "path": path, "type": typ,
                "major": libc::major(rdev), "minor": libc::minor(rdev),
                "fileMode": md.permissions().mode() & 0o777, "uid": md.uid(), "gid": md.gid(),
            }));
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out);
    json!(out)
}

/// `ctr task metrics` of a container started with a 64 MiB memory limit,
/// and a reader of its `name value` lines.
pub fn task_metrics(id: &str) -> (String, impl Fn(&str) -> Option<u64>) {
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, "--memory-limit", "67108864", &image(), id, "sleep", "1000"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let out = ctr(&["task", "metrics", id]);
    let o = text(&out.stdout);
    assert!(out.status.success(), "{o} {}", text(&out.stderr));
    let lines = o.clone();
    let value = move |name: &str| -> Option<u64> {
        lines.lines().find(|l| l.split_whitespace().next() == Some(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    (o, value)
}
