//! Issue 10 (acceptance 5): a spec as nerdctl writes it, run through ctr:
//! a systemd cgroupsPath with no runtime option, its OCI hooks (CNI set-up
//! at createRuntime, teardown at poststop) and its logging binary, both
//! pointing at a stand-in that records how it was called, and its
//! annotations.

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};

use crate::harness::*;

/// One stand-in for nerdctl: `internal oci-hook PHASE ...` records its
/// arguments and the state on stdin; `_NERDCTL_INTERNAL_LOGGING DIR` is
/// the logging binary (output on fds 3 and 4, ready on fd 5).
const STAND_IN: &str = r#"#!/bin/sh
if [ "$1" = internal ]; then
    dir=$(dirname "$0")
    { echo "$*"; cat; echo; } >> "$dir/hooks.log"
    exit 0
fi
if [ "$1" = _NERDCTL_INTERNAL_LOGGING ]; then
    echo ready >&5
    exec 5>&-
    cat <&3 >> "$2/container.log" &
    cat <&4 >> "$2/container.log" &
    wait
    exit 0
fi
echo "unexpected call: $*" >&2
exit 1
"#;

#[test]
fn a_nerdctl_spec_runs_with_its_hooks_logger_cgroup_and_annotations() {
    let id = "nerdctl-like";
    let dir = work_dir().join(id);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let nerdctl = dir.join("nerdctl");
    std::fs::write(&nerdctl, STAND_IN).expect("stand-in");
    std::fs::set_permissions(&nerdctl, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let store = dir.to_string_lossy().into_owned();
    let bin = nerdctl.to_string_lossy().into_owned();
    let log_uri = format!("binary://{bin}?_NERDCTL_INTERNAL_LOGGING={store}");

    let root = rootfs(id);
    let mut s = spec(id, &root, &["sh", "-c", "echo hello from nerdctl; grep memory /proc/self/cgroup"]);
    let hook = |phase: &str| {
        json!({"path": bin, "args": [bin, "internal", "oci-hook", phase, "--data-store", store,
                                     "--cni-path", "/usr/lib/cni", "--cni-netconfpath", format!("{store}/net.d")]})
    };
    s["hooks"] = json!({"createRuntime": [hook("createRuntime")], "poststop": [hook("postStop")]});
    s["annotations"] = json!({
        "nerdctl/namespace": NS, "nerdctl/name": id, "nerdctl/hostname": id,
        "nerdctl/networks": "[\"none\"]", "nerdctl/platform": "linux/amd64",
        "nerdctl/state-dir": format!("{store}/containers/{NS}/{id}"), "nerdctl/log-uri": log_uri,
    });
    s["linux"]["cgroupsPath"] = json!(format!("system.slice:nerdctl:{id}"));
    let p = write_spec(id, &s);
    let slices: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroupfs")
        .flatten()
        .map(|d| d.path().join("system.slice"))
        .filter(|s| !s.exists())
        .collect();
    let out = ctr(&["run", "--rm", "--runtime", RUNTIME, "--log-uri", &log_uri, "--config", &p.to_string_lossy(), id]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // No systemd here: the container sat where systemd would have put it.
    let logged = std::fs::read_to_string(dir.join("container.log")).expect("the logging binary's file");
    assert!(logged.contains("hello from nerdctl\n"), "{logged}");
    assert!(logged.contains(&format!(":memory:/system.slice/nerdctl-{id}.scope")), "{logged}");

    let calls = std::fs::read_to_string(dir.join("hooks.log")).expect("hook calls");
    let calls: Vec<&str> = calls.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(calls.len(), 4, "createRuntime and postStop, each with its state: {calls:?}");
    for (i, (phase, status)) in [("createRuntime", "creating"), ("postStop", "stopped")].into_iter().enumerate() {
        assert!(calls[2 * i].starts_with(&format!("internal oci-hook {phase} --data-store {store}")), "{calls:?}");
        let state: Value = serde_json::from_str(calls[2 * i + 1]).expect("state JSON");
        assert_eq!(state["id"], id);
        assert_eq!(state["status"], status, "{state}");
        assert!(state["bundle"].as_str().is_some_and(|b| b.ends_with(&format!("/{NS}/{id}"))), "{state}");
        assert_eq!(state["annotations"]["nerdctl/namespace"], NS, "{state}");
        assert_eq!(state["annotations"]["nerdctl/log-uri"], log_uri.as_str(), "{state}");
        if phase == "createRuntime" {
            assert!(state["pid"].as_i64().is_some_and(|p| p > 0), "{state}");
        }
    }
    assert_no_leftovers(id);
    for slice in slices {
        assert!(!slice.join(format!("nerdctl-{id}.scope")).exists(), "cgroup left in {}", slice.display());
        let _ = std::fs::remove_dir(slice); // made for this test
    }
}
