//! Where a container's cgroup goes: containerd's default, a cgroupfs path,
//! or systemd's `slice:prefix:name`, with the paths no container may have.

use std::path::{Component, Path, PathBuf};

use super::CgroupError;

/// Where a container's cgroup goes: its path below the hierarchy root, and,
/// where systemd runs and the config gave `slice:prefix:name`, the unit
/// systemd is to make for it (the path is then where systemd puts it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub path: PathBuf,
    pub systemd: Option<String>,
}

/// The cgroupsPath a config asks for, or containerd's default `/<ns>/<id>`.
/// Relative paths are taken from the hierarchy root. A systemd
/// `slice:prefix:name` path (kubelet's systemd driver and nerdctl write one)
/// becomes a transient scope where systemd runs; without systemd it is
/// placed on cgroupfs where systemd would put it: `/system.slice/nerdctl-ID.scope`.
pub fn path_for(spec_path: Option<&Path>, namespace: &str, id: &str) -> Result<Placement, CgroupError> {
    placement(spec_path, namespace, id, Path::new("/run/systemd/system").is_dir())
}

fn placement(spec_path: Option<&Path>, namespace: &str, id: &str, systemd: bool) -> Result<Placement, CgroupError> {
    let Some(p) = spec_path.filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(Placement { path: PathBuf::from("/").join(namespace).join(id), systemd: None });
    };
    let s = p.to_string_lossy();
    let refuse = |detail: String| CgroupError { path: s.to_string(), what: "resolve", detail };
    if !p.is_absolute() && s.split(':').count() == 3 {
        let path = systemd_path(&s).map_err(refuse)?;
        if systemd {
            return Ok(Placement { path, systemd: Some(s.into_owned()) });
        }
        log::info!("cgroup {s}: systemd is not running; using {} on cgroupfs", path.display());
        return Ok(Placement { path, systemd: None });
    }
    if s.split('/').any(|c| c == "..") {
        return Err(refuse("must not contain '..'".into()));
    }
    let path = PathBuf::from("/").join(p);
    if !path.components().any(|c| matches!(c, Component::Normal(_))) {
        // Delete would kill and remove whatever the host runs there.
        return Err(refuse("is the root of the cgroup hierarchy; a container needs a cgroup of its own".into()));
    }
    Ok(Placement { path, systemd: None })
}

/// Where systemd puts `slice:prefix:name`: the slice expanded by its dashes
/// (`a-b.slice` is `/a.slice/a-b.slice`), then the unit, `prefix-name.scope`
/// (or `name` itself when it is a slice).
fn systemd_path(s: &str) -> Result<PathBuf, String> {
    let mut parts = s.splitn(3, ':');
    let (slice, prefix, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let bad = |what: &str| format!("not a valid systemd cgroup path: {what}");
    if name.is_empty() || [slice, prefix, name].iter().any(|p| p.contains('/') || *p == "..") {
        return Err(bad("slice:prefix:name needs a name, and no part may hold '/'"));
    }
    let mut path = PathBuf::from("/");
    if !slice.is_empty() && slice != "-.slice" {
        let base = slice.strip_suffix(".slice").ok_or_else(|| bad("the slice must end in .slice"))?;
        if base.is_empty() || base.starts_with('-') || base.ends_with('-') || base.contains("--") {
            return Err(bad("the slice's name has a misplaced '-'"));
        }
        let mut so_far = String::new();
        for part in base.split('-') {
            if !so_far.is_empty() {
                so_far.push('-');
            }
            so_far.push_str(part);
            path.push(format!("{so_far}.slice"));
        }
    }
    let unit = match (name.ends_with(".slice"), prefix.is_empty()) {
        (true, _) => name.to_string(),
        (false, true) => format!("{name}.scope"),
        (false, false) => format!("{prefix}-{name}.scope"),
    };
    path.push(unit);
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_given_paths() {
        let path = |p: Option<&str>, ns| placement(p.map(Path::new), ns, "c1", false).expect("ok").path;
        assert_eq!(path(None, "default"), PathBuf::from("/default/c1"));
        assert_eq!(path(Some("/kubepods/pod1/c1"), "k8s.io"), PathBuf::from("/kubepods/pod1/c1"));
        assert_eq!(path(Some("mine/c1"), "n"), PathBuf::from("/mine/c1"));
    }

    #[test]
    fn escaping_paths_are_refused() {
        assert!(placement(Some(Path::new("/a/../../etc")), "n", "c", false).is_err());
    }

    #[test]
    fn a_hierarchy_root_is_refused() {
        for root in ["/", "//", "/.", "."] {
            let e = placement(Some(Path::new(root)), "n", "c", false).expect_err(root);
            assert!(e.to_string().contains("root of the cgroup hierarchy"), "{root}: {e}");
        }
        assert!(placement(Some(Path::new("/system.slice")), "n", "c", false).is_ok());
    }

    #[test]
    fn systemd_paths_become_units_where_systemd_runs() {
        let p = Some(Path::new("kubepods-burstable-pod1.slice:cri-containerd:c1"));
        let with = placement(p, "k8s.io", "c1", true).expect("ok");
        assert_eq!(with.systemd.as_deref(), Some("kubepods-burstable-pod1.slice:cri-containerd:c1"));
        let without = placement(p, "k8s.io", "c1", false).expect("ok");
        assert_eq!((with.path, without.systemd), (without.path, None));
        assert!(placement(Some(Path::new("/a/b")), "n", "c", true).expect("ok").systemd.is_none());
    }

    #[test]
    fn systemd_paths_land_where_systemd_would_put_them() {
        let p = |s: &str| systemd_path(s).map(|p| p.display().to_string());
        assert_eq!(p("system.slice:nerdctl:abc").as_deref(), Ok("/system.slice/nerdctl-abc.scope"));
        assert_eq!(
            p("kubepods-burstable-pod1.slice:cri-containerd:c1").as_deref(),
            Ok("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-c1.scope")
        );
        assert_eq!(p(":docker:abc").as_deref(), Ok("/docker-abc.scope"));
        assert_eq!(p("-.slice::abc").as_deref(), Ok("/abc.scope"));
        assert_eq!(p("user.slice:x:sub.slice").as_deref(), Ok("/user.slice/sub.slice"));
        for bad in [
            "system:nerdctl:abc",
            "a--b.slice:p:n",
            "-a.slice:p:n",
            "system.slice:p:",
            "system.slice:p:a/b",
            "system.slice:..:x",
        ] {
            assert!(systemd_path(bad).is_err(), "{bad}");
        }
    }
}
