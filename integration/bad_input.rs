//! Acceptance 6: bad input fails Create clearly and leaves nothing behind;
//! hostile mount destinations stay inside the rootfs.

use serde_json::json;

use crate::harness::*;

#[test]
fn missing_executable_fails_create() {
    let id = "bad-exe";
    let out = run_image(id, &[], &["/no/such/binary"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&format!("create {id}")) && err.contains("exec: \"/no/such/binary\""), "{err}");
    remove(id);
    assert_no_leftovers(id);
}

#[test]
fn missing_bind_source_fails_create() {
    let id = "bad-bind";
    let out =
        run_image(id, &["--mount", "type=bind,src=/nonexistent/myshim-src,dst=/data,options=rbind:ro"], &["true"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("mount /data") && err.contains("/nonexistent/myshim-src"), "{err}");
    remove(id);
    assert_no_leftovers(id);
}

#[test]
fn dotdot_and_symlink_destinations_stay_inside_the_rootfs() {
    let id = "bad-escape";
    let root = rootfs(id);
    let host_target = work_dir().join("host-target");
    let _ = std::fs::remove_dir_all(&host_target);
    std::fs::create_dir_all(&host_target).expect("mkdir");
    std::fs::write(host_target.join("planted"), "host").expect("plant");
    std::os::unix::fs::symlink(&host_target, root.join("evil")).expect("symlink");
    let escape = work_dir().join("escaped-mount");
    let _ = std::fs::remove_dir_all(&escape);
    let mut s = spec(id, &root, &["sh", "-c", "touch /evil/x && echo wrote"]);
    let dotdot = format!("/../../../../../..{}", escape.display());
    s["mounts"].as_array_mut().expect("mounts").extend([
        json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}),
        json!({"destination": dotdot, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}),
    ]);
    let out = run_spec(id, &s);
    assert_eq!(text(&out.stdout), "wrote\n", "stderr: {}", text(&out.stderr));
    let names: Vec<_> =
        std::fs::read_dir(&host_target).expect("read").filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("planted")], "host dir was written");
    assert!(!escape.exists(), "a mount destination escaped the rootfs");
    assert!(root.join(escape.strip_prefix("/").expect("abs")).exists(), "the .. mount should land inside the rootfs");
    assert!(mounts_with("host-target").is_empty());
    assert_no_leftovers(id);
}

#[test]
fn unusable_cgroups_path_fails_create() {
    let id = "bad-cgroup";
    let root = rootfs(id);
    let mut s = spec(id, &root, &["true"]);
    // systemd's form, but the slice is not a slice.
    s["linux"]["cgroupsPath"] = json!("system:myshim:bad-cgroup");
    let out = run_spec(id, &s);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("linux.cgroupsPath") && err.contains("system:myshim:bad-cgroup"), "{err}");
    assert!(err.contains("the slice must end in .slice"), "{err}");
    remove(id);
    assert_no_leftovers(id);
}

#[test]
fn malformed_runtime_options_fail_create() {
    let id = "bad-options";
    let cfg = work_dir().join("bad-options.json");
    std::fs::write(&cfg, r#"{"hooks": {"strict": "yes"}}"#).expect("write");
    let out = run_image(id, &["--runtime-config-path", &cfg.to_string_lossy()], &["true"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("runtime options") && err.contains("hooks.strict must be true or false"), "{err}");
    remove(id);
    assert_no_leftovers(id);
}
