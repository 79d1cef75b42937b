//! The rootfs mounts of Create (what the snapshotter returned), beyond the
//! one-layer overlay every `ctr run` test mounts: an image file with
//! containerd's `loop` option, as the blockfile and erofs snapshotters
//! return (containerd 1.6 has neither), and an overlay of more layers than
//! one page of mount options can name; driven straight through the shim.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use containerd_shim_protos::api::{DeleteRequest, Mount, WaitRequest};

use crate::direct::*;
use crate::harness::*;

/// The loop devices whose backing file is `img`.
fn loop_devices_of(img: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let backing = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            (Path::new(backing.trim()) == img).then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

/// The loop devices of `img` still there after 5 s (the kernel detaches
/// at the last close, which the unmount's release may finish a little later).
fn loop_devices_left(img: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !loop_devices_of(img).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    loop_devices_of(img)
}

/// An ext4 image of a busybox rootfs holding `/in-image`.
fn ext4_image(id: &str) -> PathBuf {
    let tree = rootfs(id);
    std::fs::write(tree.join("in-image"), "yes").expect("marker");
    let img = work_dir().join(format!("{id}.img"));
    let _ = std::fs::remove_file(&img);
    let out =
        Command::new("mkfs.ext4").args(["-q", "-F", "-d"]).arg(&tree).arg(&img).arg("64M").output().expect("mkfs");
    assert!(out.status.success(), "mkfs.ext4: {}", text(&out.stderr));
    img
}

fn loop_bundle(id: &str, args: &[&str]) -> PathBuf {
    let b = bundle(&format!("bundle-{id}"));
    std::fs::create_dir_all(b.join("rootfs")).expect("rootfs dir");
    let s = spec(id, &b.join("rootfs"), args);
    std::fs::write(b.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");
    b
}

fn loop_mount(source: &Path) -> Mount {
    Mount {
        type_: "ext4".into(),
        source: source.to_string_lossy().into_owned(),
        options: vec!["loop".into(), "noatime".into()],
        ..Default::default()
    }
}

/// The container runs on the image's filesystem (it sees `/in-image`); the
/// loop device exists while it does and is gone after Delete, with nothing
/// for anyone to detach.
#[test]
fn an_image_file_with_the_loop_option_is_the_rootfs_and_its_device_goes_with_delete() {
    let id = "loop-rootfs";
    let img = ext4_image(id);
    let b = loop_bundle(id, &["sh", "-c", "test -f /in-image && exit 7"]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let mut req = create_request(id, &b);
        req.rootfs = vec![loop_mount(&img)];
        let shim = create_started_with(&c, req).await;
        let status = c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
        assert_eq!(status.exit_status, 7, "the rootfs is the image's filesystem");
        assert_eq!(loop_devices_of(&img).len(), 1, "one loop device while the container exists");
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, shim).await;
    });
    assert_eq!(loop_devices_left(&img), Vec::<String>::new(), "the loop device outlived Delete");
    assert!(!is_mounted(&b.join("rootfs")), "the rootfs is still mounted");
}

/// An image file that is not there fails Create naming it, and attaches no
/// loop device; an image that is no filesystem fails naming the mount and
/// leaves its loop device to nobody.
#[test]
fn a_bad_loop_source_fails_create_naming_it_and_attaches_nothing() {
    let id = "loop-bad";
    let b = loop_bundle(id, &["true"]);
    let junk = work_dir().join("loop-bad-junk.img");
    std::fs::write(&junk, vec![0u8; 1 << 20]).expect("junk image");
    let missing = work_dir().join("loop-bad-missing.img");
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim =
            c.connect(ctx(), &containerd_shim_protos::api::ConnectRequest::default()).await.expect("Connect").shim_pid;
        for (source, names) in [(&missing, "loop-bad-missing.img"), (&junk, "ext4")] {
            let mut req = create_request(id, &b);
            req.rootfs = vec![loop_mount(source)];
            let e = c.create(ctx(), &req).await.expect_err("Create on a bad image");
            assert!(e.to_string().contains(names), "{e}");
        }
        shutdown(&c, shim).await;
    });
    assert_eq!(loop_devices_left(&junk), Vec::<String>::new(), "a loop device outlived the failed mount");
    assert!(!is_mounted(&b.join("rootfs")));
}

/// An image of 80 layers under containerd's overlay snapshotter's paths:
/// the lowerdir option alone is ~7 KB, past the one page mount(2) takes.
/// The container sees the bottom layer (the busybox tree) and the top one.
#[test]
fn an_overlay_of_more_layers_than_one_page_of_options_names_is_mounted() {
    let id = "many-layers";
    let layers = 80;
    let home = work_dir().join("many-layers");
    let _ = std::fs::remove_dir_all(&home);
    let snapshots = home.join("io.containerd.snapshotter.v1.overlayfs/snapshots");
    std::fs::create_dir_all(snapshots.join("0")).expect("snapshots");
    std::fs::rename(rootfs(id), snapshots.join("0/fs")).expect("bottom layer");
    for i in 1..layers {
        std::fs::create_dir_all(snapshots.join(format!("{i}/fs"))).expect("layer");
        std::fs::write(snapshots.join(format!("{i}/fs/layer-{i}")), "").expect("layer file");
    }
    for d in ["upper/fs", "upper/work"] {
        std::fs::create_dir_all(snapshots.join(d)).expect("upper");
    }
    let lower: Vec<String> =
        (0..layers).rev().map(|i| snapshots.join(format!("{i}/fs")).display().to_string()).collect();
    let lowerdir = format!("lowerdir={}", lower.join(":"));
    assert!(lowerdir.len() > 4096, "{} bytes: not past a page", lowerdir.len());
    let b = loop_bundle(id, &["sh", "-c", "test -f /layer-1 && test -f /layer-79 && test -x /bin/busybox && exit 7"]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let mut req = create_request(id, &b);
        req.rootfs = vec![Mount {
            type_: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                lowerdir,
                format!("upperdir={}", snapshots.join("upper/fs").display()),
                format!("workdir={}", snapshots.join("upper/work").display()),
            ],
            ..Default::default()
        }];
        let shim = create_started_with(&c, req).await;
        let status = c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
        assert_eq!(status.exit_status, 7, "the rootfs is the 80 layers merged");
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, shim).await;
    });
    assert!(!is_mounted(&b.join("rootfs")));
    std::fs::remove_dir_all(&home).expect("remove the layers");
}

fn is_mounted(path: &Path) -> bool {
    let path = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(path.as_ref())))
        .unwrap_or(false)
}
