//! The container's cgroup, over libcgroups: placed, limited, listed, killed,
//! removed. Only path strings are kept; managers are made per use because
//! making one is cheap and they are not all `Send`.

mod defaults;
#[cfg(test)]
mod fixtures;
mod kill;
mod path;
mod read;
mod v1;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use defaults::{devices_and_shares_only, with_default_devices};
use libcgroups::common::{
    create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager, ControllerOpt, FreezerState,
};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
#[cfg(test)]
use v1::V1Mounts;
use v1::{fill_cpuset, v1_dirs, v1_mounts, v1_stats};

pub use path::{path_for, Placement};

#[derive(Debug, thiserror::Error)]
#[error("cgroup {path}: {what}: {detail}")]
pub struct CgroupError {
    pub path: String,
    pub what: &'static str,
    pub detail: String,
}

/// A container's cgroup. The libcgroups manager is made once, on first use:
/// making one reads the mount table for every controller.
#[derive(Clone)]
pub struct Cgroup {
    path: PathBuf,
    /// Made by this shim for this container: only then are its processes
    /// killed and its directories removed at the end.
    owned: bool,
    /// The `slice:prefix:name` systemd makes a scope of, where systemd runs.
    systemd: Option<String>,
    /// Where the v2 hierarchy is mounted (a fixture tree in tests).
    v2_root: PathBuf,
    manager: Arc<OnceLock<AnyCgroupManager>>,
}

/// A cgroup's figures as the host's cgroup version gives them: v2 adds
/// memory.events, which libcgroups does not read.
pub enum CgroupStats {
    V1(libcgroups::stats::Stats),
    V2(libcgroups::stats::Stats, HashMap<String, u64>),
}

/// What tells the OOM killer acted: an fd that becomes readable, and the
/// file whose `oom_kill` counter says how often.
pub struct OomSource {
    pub fd: std::os::fd::OwnedFd,
    pub counter: PathBuf,
}

impl Cgroup {
    /// The cgroup a state record names, owned or not as the record says.
    pub fn recorded(placement: Placement, owned: bool) -> Cgroup {
        Cgroup {
            path: placement.path,
            owned,
            systemd: placement.systemd,
            v2_root: PathBuf::from(libcgroups::common::DEFAULT_CGROUP_ROOT),
            manager: Arc::default(),
        }
    }

    /// The cgroup a new container is given. One that already holds
    /// processes (in it or below it) is refused, as runc refuses it: they
    /// are not the container's, and Delete must not end them. One that
    /// exists but is empty is used and left as it was found (not owned).
    pub fn claim(placement: Placement) -> Result<Cgroup, CgroupError> {
        let mut cg = Cgroup::recorded(placement, true);
        let existing = if v1_host() {
            match cg.v1_dir("devices", "claim") {
                Ok(dir) => dir.exists(),
                Err(_) => cg.v1_dirs()?.iter().any(|d| d.exists()),
            }
        } else {
            cg.v2_dir().exists()
        };
        if existing {
            let pids = cg.pids()?;
            if !pids.is_empty() {
                let detail = format!(
                    "already holds {} process(es) (e.g. pid {}); a container needs a cgroup of its own",
                    pids.len(),
                    pids[0]
                );
                return Err(cg.err("claim", detail));
            }
            cg.owned = false;
        }
        Ok(cg)
    }

    /// Whether this shim made the cgroup (and so removes it).
    pub fn owned(&self) -> bool {
        self.owned
    }

    /// Where it is, as a state record keeps it.
    pub fn placement(&self) -> Placement {
        Placement { path: self.path.clone(), systemd: self.systemd.clone() }
    }

    /// A v2 cgroup in a fixture tree at `root`.
    #[cfg(test)]
    fn v2_fixture(root: &Path, path: &str) -> Cgroup {
        let m = libcgroups::v2::manager::Manager::new(root.to_path_buf(), PathBuf::from(path)).expect("v2 manager");
        Cgroup {
            path: PathBuf::from(path),
            owned: true,
            systemd: None,
            v2_root: root.to_path_buf(),
            manager: Arc::new(OnceLock::from(AnyCgroupManager::V2(m))),
        }
    }

    /// The path below a hierarchy's root.
    fn rel(&self) -> &Path {
        self.path.strip_prefix("/").unwrap_or(&self.path)
    }

    fn v2_dir(&self) -> PathBuf {
        self.v2_root.join(self.rel())
    }

    /// This cgroup's directory in the v1 hierarchy of `controller`.
    fn v1_dir(&self, controller: &str, what: &'static str) -> Result<PathBuf, CgroupError> {
        let mounts = v1_mounts().map_err(|e| self.err("find hierarchies", e))?;
        let root = mounts.get(controller).ok_or_else(|| self.err(what, format!("no {controller} hierarchy")))?;
        Ok(root.join(self.rel()))
    }

    fn err(&self, what: &'static str, detail: impl ToString) -> CgroupError {
        CgroupError { path: self.path.display().to_string(), what, detail: detail.to_string() }
    }

    fn manager(&self) -> Result<&AnyCgroupManager, CgroupError> {
        if let Some(m) = self.manager.get() {
            return Ok(m);
        }
        let cfg = match &self.systemd {
            // The manager starts the transient scope, delegated, with the process in it.
            Some(unit) => CgroupConfig {
                cgroup_path: PathBuf::from(unit),
                systemd_cgroup: true,
                container_name: self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            },
            None => {
                CgroupConfig { cgroup_path: self.path.clone(), systemd_cgroup: false, container_name: String::new() }
            }
        };
        let m = create_cgroup_manager(cfg).map_err(|e| self.err("open", e))?;
        Ok(self.manager.get_or_init(|| m))
    }

    /// On cgroup v1, creates the cgroup's directories and returns the `tasks`
    /// files a new process writes "0" to, itself, as its first act; empty on
    /// v2, where the shim `enter`s the process instead. Why: a single thread
    /// moving itself skips the kernel's global threadgroup lock, whose RCU
    /// grace period made the shim's `cgroup.procs` writes take ~1 ms per
    /// container and up to 20 ms under churn (measured here: 0.3 ms, no
    /// tails, this way). `limit` then applies the limits, before the process
    /// joins.
    pub fn prepare(&self) -> Result<Vec<PathBuf>, CgroupError> {
        if !v1_host() {
            return Ok(Vec::new());
        }
        let mounts = v1_mounts().map_err(|e| self.err("find hierarchies", e))?;
        let dirs = v1_dirs(mounts, &self.path);
        for dir in &dirs {
            std::fs::create_dir_all(dir).map_err(|e| self.err("create", format!("{}: {e}", dir.display())))?;
        }
        if let Some(cpuset) = mounts.get("cpuset") {
            fill_cpuset(cpuset, &self.path).map_err(|e| self.err("inherit cpuset", e))?;
        }
        Ok(dirs.into_iter().map(|d| d.join("tasks")).collect())
    }

    /// The `tasks` files of an existing v1 cgroup (for execs), or empty on v2.
    pub fn tasks_files(&self) -> Vec<PathBuf> {
        self.v1_dirs().unwrap_or_default().into_iter().map(|d| d.join("tasks")).collect()
    }

    /// What signals an OOM kill in this cgroup: on v1 an eventfd registered
    /// for memory.oom_control through cgroup.event_control; on v2 an inotify
    /// watch on memory.events. None without a memory controller.
    pub fn oom_source(&self) -> Result<Option<OomSource>, CgroupError> {
        use std::os::fd::AsRawFd;
        let fail = |e: std::io::Error| self.err("watch oom", e);
        if !v1_host() {
            let counter = self.v2_dir().join("memory.events");
            if !counter.exists() {
                return Ok(None);
            }
            let fd = crate::sys::inotify_modify(&counter).map_err(fail)?;
            return Ok(Some(OomSource { fd, counter }));
        }
        let Ok(dir) = self.v1_dir("memory", "watch oom") else { return Ok(None) };
        let control = std::fs::File::open(dir.join("memory.oom_control")).map_err(fail)?;
        let fd = crate::sys::eventfd().map_err(fail)?;
        let line = format!("{} {}", fd.as_raw_fd(), control.as_raw_fd());
        std::fs::write(dir.join("cgroup.event_control"), line).map_err(fail)?;
        Ok(Some(OomSource { fd, counter: dir.join("memory.oom_control") }))
    }

    /// Applies the limits to the cgroup as it is. On v1, device rules and a
    /// cpu weight (most configs' only limits: `ctr run` sets shares 1024) are
    /// written here (see `v1`), the same writes libcgroups would make.
    pub fn limit(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let Some(r) = resources else { return Ok(()) };
        if v1_host() && devices_and_shares_only(r) {
            let rules = with_default_devices(r).devices().clone().unwrap_or_default();
            let dir = self.v1_dir("devices", "apply limits")?;
            v1::write_devices(&dir, &rules).map_err(|e| self.err("apply limits", e))?;
            // Zero means "not set" to libcgroups too.
            if let Some(shares) = r.cpu().as_ref().and_then(|c| c.shares()).filter(|s| *s != 0) {
                let file = self.v1_dir("cpu", "apply limits")?.join("cpu.shares");
                std::fs::write(&file, shares.to_string())
                    .map_err(|e| self.err("apply limits", format!("{}: {e}", file.display())))?;
            }
            return Ok(());
        }
        let m = self.manager()?;
        self.apply(m, resources)
    }

    /// Update: the new limits as given (the device rules only if given:
    /// libcgroups re-adds the default allows, which takes nothing away).
    pub fn update(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        let m = self.manager()?;
        let opt = ControllerOpt { resources: r, disable_oom_killer: false, oom_score_adj: None, freezer_state: None };
        self.apply_opt(m, &opt, "update limits")
    }

    fn apply(&self, m: &AnyCgroupManager, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        if let Some(r) = resources {
            let r = with_default_devices(r);
            let opt =
                ControllerOpt { resources: &r, disable_oom_killer: false, oom_score_adj: None, freezer_state: None };
            self.apply_opt(m, &opt, "apply limits")?;
        }
        Ok(())
    }

    /// The limits through the manager; under systemd, also written to the
    /// scope's own files, as runc's systemd driver does: systemd has no
    /// property for some (the device filter among them).
    fn apply_opt(&self, m: &AnyCgroupManager, opt: &ControllerOpt, what: &'static str) -> Result<(), CgroupError> {
        m.apply(opt).map_err(|e| self.err(what, e))?;
        if self.systemd.is_some() {
            let fs = libcgroups::v2::manager::Manager::new(self.v2_root.clone(), self.path.clone())
                .map_err(|e| self.err(what, e))?;
            fs.apply(opt).map_err(|e| self.err(what, e))?;
        }
        Ok(())
    }

    /// Creates the cgroup, moves `pid` in and applies the limits.
    pub fn enter(&self, pid: i32, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let m = self.manager()?;
        if let Some(parent) = self.v2_dir().parent().filter(|_| self.systemd.is_none() && !v1_host()) {
            // libcgroups' v2 manager makes each missing directory with
            // mkdir(2) and fails on EEXIST: two Creates making the same
            // parent (a namespace's first containers) raced. The parents
            // are made here, where one that exists is no error; libcgroups
            // still enables the controllers in each, and makes the leaf
            // (one it finds made, it only joins).
            std::fs::create_dir_all(parent).map_err(|e| self.err("make the parent directories", e))?;
        }
        m.add_task(Pid::from_raw(pid)).map_err(|e| self.err("add process", e))?;
        self.apply(m, resources)
    }

    /// The v1 directories of this cgroup (empty on v2).
    fn v1_dirs(&self) -> Result<Vec<PathBuf>, CgroupError> {
        if !v1_host() {
            return Ok(Vec::new());
        }
        Ok(v1_dirs(v1_mounts().map_err(|e| self.err("find hierarchies", e))?, &self.path))
    }

    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        if v1_host() {
            // As libcgroups does: the devices hierarchy, nested cgroups too.
            let dir = self.v1_dir("devices", "list processes")?;
            return v1::pids(&dir).map_err(|e| self.err("list processes", e));
        }
        let m = self.manager()?;
        let pids = m.get_all_pids().map_err(|e| self.err("list processes", e))?;
        Ok(pids.into_iter().map(|p| p.as_raw()).collect())
    }

    /// The cgroup's figures: on v1 read from its files (`read`), on v2 by
    /// libcgroups plus memory.events.
    pub fn stats(&self) -> Result<CgroupStats, CgroupError> {
        if v1_host() {
            let mounts = v1_mounts().map_err(|e| self.err("stats", e))?;
            return v1_stats(mounts, &self.path).map(CgroupStats::V1).map_err(|e| self.err("stats", e));
        }
        self.stats_v2()
    }

    fn stats_v2(&self) -> Result<CgroupStats, CgroupError> {
        let stats = self.manager()?.stats().map_err(|e| self.err("stats", e))?;
        let events = read::flat(&self.v2_dir().join("memory.events")).map_err(|e| self.err("stats", e))?;
        Ok(CgroupStats::V2(stats, events))
    }

    /// The directory whose freezer holds every process of the cgroup (CRIU
    /// freezes the tree through it): v1's freezer hierarchy, or the v2 dir.
    pub fn freezer_dir(&self) -> Result<PathBuf, CgroupError> {
        if v1_host() {
            self.v1_dir("freezer", "find the freezer")
        } else {
            Ok(self.v2_dir())
        }
    }

    /// Freezes (or thaws) every process in the cgroup: v1 freezer.state,
    /// v2 cgroup.freeze, through libcgroups.
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let state = if frozen { FreezerState::Frozen } else { FreezerState::Thawed };
        self.manager()?.freeze(state).map_err(|e| self.err(if frozen { "freeze" } else { "thaw" }, e))
    }
}

/// Moves this process, the shim, into the existing cgroup `path` (runc's
/// `ShimCgroup`): on v1 in every hierarchy that has it, on v2 the one.
pub fn move_self(path: &Path) -> Result<(), CgroupError> {
    let err = |what, detail: String| CgroupError { path: path.display().to_string(), what, detail };
    let dirs = if v1_host() {
        let mounts = v1_mounts().map_err(|e| err("find hierarchies", e.to_string()))?;
        v1_dirs(mounts, path).into_iter().filter(|d| d.exists()).collect::<Vec<_>>()
    } else {
        let dir = Path::new(libcgroups::common::DEFAULT_CGROUP_ROOT).join(path.strip_prefix("/").unwrap_or(path));
        dir.exists().then_some(dir).into_iter().collect()
    };
    if dirs.is_empty() {
        return Err(err("move the shim", "no such cgroup".into()));
    }
    let pid = std::process::id().to_string();
    for dir in dirs {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, &pid).map_err(|e| err("move the shim", format!("{}: {e}", procs.display())))?;
    }
    Ok(())
}

/// Whether this host's cgroups are v1 (legacy or hybrid), asked once.
fn v1_host() -> bool {
    static V1: OnceLock<bool> = OnceLock::new();
    *V1.get_or_init(|| {
        matches!(
            libcgroups::common::get_cgroup_setup(),
            Ok(libcgroups::common::CgroupSetup::Legacy | libcgroups::common::CgroupSetup::Hybrid)
        )
    })
}
