//! OCI hooks: which kind runs when, where and with what state (the plan, pure
//! and tested), and running one hook (`run`).
//!
//! | kind            | RPC    | runs in             | path resolved in | status   | on failure            |
//! |-----------------|--------|---------------------|------------------|----------|-----------------------|
//! | prestart        | Create | runtime namespaces  | runtime          | creating | Create fails          |
//! | createRuntime   | Create | runtime namespaces  | runtime          | creating | Create fails          |
//! | createContainer | Create | container namespaces| runtime          | creating | Create fails          |
//! | startContainer  | Start  | container namespaces| container        | created  | Start fails, stopped  |
//! | poststart       | Start  | runtime namespaces  | runtime          | running  | Start fails, stopped  |
//! | poststop        | Delete | runtime namespaces  | runtime          | stopped  | warning, delete goes on |
//!
//! Create hooks run after the namespaces and mounts exist and before
//! pivot_root; poststop runs after the container's processes, cgroup and
//! rootfs mount are gone (also from the `delete` cleanup, at most once).

pub mod run;

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hook, Hooks, Spec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Where {
    Runtime,
    Container,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ];

    /// The key in config.json's `hooks`.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    pub fn rpc(self) -> &'static str {
        match self {
            Kind::Prestart | Kind::CreateRuntime | Kind::CreateContainer => "Create",
            Kind::StartContainer | Kind::Poststart => "Start",
            Kind::Poststop => "Delete",
        }
    }

    /// The namespaces the hook process lives in.
    pub fn runs_in(self) -> Where {
        match self {
            Kind::CreateContainer | Kind::StartContainer => Where::Container,
            _ => Where::Runtime,
        }
    }

    /// Where `path` is looked up: startContainer runs after pivot_root.
    pub fn path_in(self) -> Where {
        if self == Kind::StartContainer {
            Where::Container
        } else {
            Where::Runtime
        }
    }

    /// The hook's working directory, as runc sets it: the bundle in the
    /// runtime namespaces; for createContainer, in the container's mount
    /// namespace before pivot_root, the rootfs; after pivot_root, `/`.
    pub fn cwd(self, bundle: &Path, rootfs: &Path) -> PathBuf {
        match self {
            Kind::CreateContainer => rootfs.to_path_buf(),
            Kind::StartContainer => PathBuf::from("/"),
            _ => bundle.to_path_buf(),
        }
    }

    /// The `status` of the state the hook reads on stdin.
    pub fn status(self) -> &'static str {
        match self {
            Kind::Prestart | Kind::CreateRuntime | Kind::CreateContainer => "creating",
            Kind::StartContainer => "created",
            Kind::Poststart => "running",
            Kind::Poststop => "stopped",
        }
    }

    /// Whether a failure fails the RPC (and stops the container) or is a warning.
    pub fn fatal(self) -> bool {
        self != Kind::Poststop
    }

    /// The moment inside its RPC, in words (for `check`).
    pub fn when(self) -> &'static str {
        match self {
            Kind::Prestart => "Create, after the namespaces and mounts exist, before pivot_root (deprecated kind)",
            Kind::CreateRuntime => "Create, after the namespaces and mounts exist, before pivot_root",
            Kind::CreateContainer => "Create, after createRuntime, in the container before pivot_root",
            Kind::StartContainer => "Start, in the container after pivot_root, just before the program is executed",
            Kind::Poststart => "Start, after the program has been executed, before Start returns",
            Kind::Poststop => {
                "Delete, after the processes, cgroup and rootfs mount are gone; \
                 or containerd's `delete` cleanup if the shim died (at most once)"
            }
        }
    }

    /// What a failure of the hook does, in words (for `check`).
    pub fn on_failure(self) -> &'static str {
        match self.rpc() {
            "Create" => "Create fails; the container is removed",
            "Start" => "Start fails; the container is stopped",
            _ => "a warning in the shim log; Delete goes on",
        }
    }

    pub fn hooks(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            Kind::Prestart => hooks.prestart(),
            Kind::CreateRuntime => hooks.create_runtime(),
            Kind::CreateContainer => hooks.create_container(),
            Kind::StartContainer => hooks.start_container(),
            Kind::Poststart => hooks.poststart(),
            Kind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or_default()
    }
}

/// The hooks of `kinds`, in the order they run, with their index in their list.
pub fn planned<'a>(spec: &'a Spec, kinds: &[Kind]) -> Vec<(Kind, usize, &'a Hook)> {
    let Some(hooks) = spec.hooks() else { return Vec::new() };
    kinds.iter().flat_map(|k| k.hooks(hooks).iter().enumerate().map(move |(i, h)| (*k, i, h))).collect()
}

/// Values config.md requires: an absolute path and a positive timeout.
pub fn validate(spec: &Spec) -> Result<(), String> {
    for (kind, i, hook) in planned(spec, &Kind::ALL) {
        let at = format!("hooks.{}[{i}]", kind.key());
        if !hook.path().is_absolute() {
            return Err(format!("{at}.path: {:?} must be an absolute path", hook.path()));
        }
        if let Some(t) = hook.timeout() {
            if t <= 0 {
                return Err(format!("{at}.timeout: {t} must be greater than zero"));
            }
        }
    }
    Ok(())
}

/// The state a hook reads on stdin (runtime.md "State").
pub fn state_json(spec: &Spec, id: &str, status: &str, pid: i32, bundle: &str) -> Vec<u8> {
    let mut state = serde_json::json!({
        "ociVersion": spec.version(),
        "id": id,
        "status": status,
        "bundle": bundle,
        "annotations": spec.annotations().clone().unwrap_or_default(),
    });
    if pid > 0 {
        state["pid"] = serde_json::json!(pid);
    }
    serde_json::to_vec(&state).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hooks: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "hooks": hooks}))
            .expect("spec")
    }

    #[test]
    fn the_table_matches_the_spec() {
        let rows: Vec<_> =
            Kind::ALL.iter().map(|k| (k.key(), k.rpc(), k.runs_in(), k.path_in(), k.status(), k.fatal())).collect();
        assert_eq!(
            rows,
            [
                ("prestart", "Create", Where::Runtime, Where::Runtime, "creating", true),
                ("createRuntime", "Create", Where::Runtime, Where::Runtime, "creating", true),
                ("createContainer", "Create", Where::Container, Where::Runtime, "creating", true),
                ("startContainer", "Start", Where::Container, Where::Container, "created", true),
                ("poststart", "Start", Where::Runtime, Where::Runtime, "running", true),
                ("poststop", "Delete", Where::Runtime, Where::Runtime, "stopped", false),
            ]
        );
    }

    #[test]
    fn planned_keeps_kind_order_then_array_order() {
        let s = spec(serde_json::json!({
            "createRuntime": [{"path": "/b"}],
            "prestart": [{"path": "/a0"}, {"path": "/a1"}],
            "poststop": [{"path": "/z"}]
        }));
        let order: Vec<_> = planned(&s, &[Kind::Prestart, Kind::CreateRuntime, Kind::CreateContainer])
            .iter()
            .map(|(k, i, h)| (k.key(), *i, h.path().display().to_string()))
            .collect();
        assert_eq!(
            order,
            [("prestart", 0, "/a0".into()), ("prestart", 1, "/a1".into()), ("createRuntime", 0, "/b".into())]
        );
        assert!(planned(&spec(serde_json::json!({})), &Kind::ALL).is_empty());
    }

    #[test]
    fn relative_paths_and_nonpositive_timeouts_are_refused() {
        let e = validate(&spec(serde_json::json!({"poststart": [{"path": "bin/x"}]}))).unwrap_err();
        assert_eq!(e, "hooks.poststart[0].path: \"bin/x\" must be an absolute path");
        let e = validate(&spec(serde_json::json!({"prestart": [{"path": "/x", "timeout": 0}]}))).unwrap_err();
        assert_eq!(e, "hooks.prestart[0].timeout: 0 must be greater than zero");
        assert!(validate(&spec(serde_json::json!({"prestart": [{"path": "/x", "timeout": 3}]}))).is_ok());
    }

    #[test]
    fn state_carries_what_runtime_md_lists() {
        let mut s = spec(serde_json::json!({}));
        s.set_annotations(Some([("a".to_string(), "b".to_string())].into()));
        let v: serde_json::Value = serde_json::from_slice(&state_json(&s, "c1", "creating", 42, "/b")).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"ociVersion": "1.0.2", "id": "c1", "status": "creating", "pid": 42, "bundle": "/b", "annotations": {"a": "b"}})
        );
        let v: serde_json::Value = serde_json::from_slice(&state_json(&s, "c1", "stopped", 0, "/b")).expect("json");
        assert!(v.get("pid").is_none());
    }
}
