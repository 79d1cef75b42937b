//! What /proc and cgroupfs show: this containerd's shims and their memory,
//! containerd's RSS, a memory cgroup's charge, and the pods' cgroups, which
//! this run removes as kubelet would.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::pods::pod_name;
use crate::{say, Context, Res};

/// Each handler's shim binary, as /proc/PID/exe names it.
const SHIM_BINARIES: [(&str, &str); 2] = [("myshim", "containerd-shim-myshim-v2"), ("runc", "containerd-shim-runc-v2")];
/// Every pod's cgroup parent lives below this (cgroupfs driver).
pub const CGROUP_PARENT: &str = "myshim-bench-cri";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A shim process of this containerd: its handler and the task id it was
/// started for, which in CRI is the pod's sandbox id (one shim per pod).
pub struct Shim {
    pub pid: i32,
    pub handler: &'static str,
    pub id: String,
}

/// The value after `flag` in a NUL-separated command line.
fn flag_value<'a>(args: &'a [&'a str], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| *a == flag).and_then(|i| args.get(i + 1)).copied()
}

/// `pid` if it is a shim of the containerd on `address`. Its exe says which
/// shim (" (deleted)" once the binary was reinstalled while it ran); the
/// `-address` containerd gave it tells ours from another engineer's.
fn shim_of(pid: i32, address: &str) -> Option<Shim> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let base = exe.file_name()?.to_str()?.trim_end_matches(" (deleted)");
    let handler = SHIM_BINARIES.iter().find(|(_, bin)| *bin == base)?.0;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    let args: Vec<&str> = cmdline.split('\0').collect();
    let theirs = flag_value(&args, "-address").or_else(|| flag_value(&args, "--address"))?;
    if !same_path(theirs, address) {
        return None;
    }
    let id = flag_value(&args, "-id").or_else(|| flag_value(&args, "--id"))?.to_string();
    Some(Shim { pid, handler, id })
}

fn same_path(a: &str, b: &str) -> bool {
    a == b || matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

/// Every shim of this containerd. Processes that exit while /proc is read
/// are simply not there.
pub fn shims(address: &str) -> Res<Vec<Shim>> {
    let dir = std::fs::read_dir("/proc").ctx(|| "read /proc".into())?;
    Ok(dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| shim_of(pid, address))
        .collect())
}

/// The value in kB of `key:` in a /proc file of `key: value kB` lines.
fn kib(text: &str, key: &str, file: &str) -> Res<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {key} in {file}"))
}

fn read(path: &str) -> Res<String> {
    std::fs::read_to_string(path).ctx(|| path.to_string())
}

#[derive(Default)]
pub struct Memory {
    pub rss: u64,
    pub pss: u64,
    pub anonymous: u64,
    pub vm_pte: u64,
}

fn shim_memory(pid: i32) -> Res<Memory> {
    let (rollup, status) = (format!("/proc/{pid}/smaps_rollup"), format!("/proc/{pid}/status"));
    let (r, s) = (read(&rollup)?, read(&status)?);
    Ok(Memory {
        rss: kib(&r, "Rss", &rollup)?,
        pss: kib(&r, "Pss", &rollup)?,
        anonymous: kib(&r, "Anonymous", &rollup)?,
        vm_pte: kib(&s, "VmPTE", &status)?,
    })
}

/// The shims' memory, summed.
pub fn sum_memory(pids: &[i32]) -> Res<Memory> {
    let mut sum = Memory::default();
    for pid in pids {
        let m = shim_memory(*pid)?;
        (sum.rss, sum.pss, sum.anonymous, sum.vm_pte) =
            (sum.rss + m.rss, sum.pss + m.pss, sum.anonymous + m.anonymous, sum.vm_pte + m.vm_pte);
    }
    Ok(sum)
}

pub fn rss_kib(pid: i32) -> Res<u64> {
    let status = format!("/proc/{pid}/status");
    kib(&read(&status)?, "VmRSS", &status)
}

/// A memory cgroup's charge, v1 or v2.
pub fn usage_bytes(dir: &Path) -> Res<u64> {
    let v1 = dir.join("memory.usage_in_bytes");
    let p = if v1.exists() { v1 } else { dir.join("memory.current") };
    let text = std::fs::read_to_string(&p).ctx(|| p.display().to_string())?;
    text.trim().parse().ctx(|| format!("{}: {text:?}", p.display()))
}

/// The hierarchies a pod's cgroups can be in: /sys/fs/cgroup itself on v2,
/// each controller's mount on v1 (symlinks like cpu -> cpu,cpuacct skipped:
/// the real directory is listed too).
fn cgroup_roots() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from(CGROUP_ROOT)];
    if let Ok(dir) = std::fs::read_dir(CGROUP_ROOT) {
        roots.extend(dir.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
    }
    roots
}

/// Our cgroup parent in every hierarchy where it exists.
pub fn parent_dirs() -> BTreeSet<PathBuf> {
    cgroup_roots().into_iter().map(|r| r.join(CGROUP_PARENT)).filter(|d| d.is_dir()).collect()
}

/// What kubelet does once a pod is gone: its cgroup removed in every
/// hierarchy (possible only if the runtime removed its containers' cgroups).
pub fn remove_pod_cgroups(name: &str) {
    for dir in parent_dirs() {
        let pod = dir.join(format!("pod{name}"));
        match std::fs::remove_dir(&pod) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                say(&format!("{}: {e} (a container's cgroup left behind?)", pod.display()))
            }
            _ => {}
        }
    }
}

/// The pods' cgroups of run `run` that no teardown got to (a pod that failed
/// to start, an interrupted one), then the cgroup parents the run created.
/// rmdir only: whatever is not empty stays, and is reported.
pub fn remove_run_cgroups(run: &str, parents_before: &BTreeSet<PathBuf>) {
    let rmdir = |dir: &Path| {
        if let Err(e) = std::fs::remove_dir(dir) {
            say(&format!("rmdir {}: {e}", dir.display()));
        }
    };
    let ours = format!("pod{}", pod_name(run, ""));
    for dir in parent_dirs() {
        for pod in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if pod.file_name().to_string_lossy().starts_with(&ours) {
                rmdir(&pod.path());
            }
        }
    }
    for dir in parent_dirs().difference(parents_before) {
        rmdir(dir);
    }
}
