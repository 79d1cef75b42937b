//! The snapshot containerd prepared (usually one overlay; an image file with
//! the `loop` option from the blockfile and erofs snapshotters), mounted at
//! the bundle's rootfs on the host, as containerd-shim-runc-v2 does with
//! containerd's mount package.

use std::path::{Component, Path, PathBuf};

use containerd_shim::mount::{get_free_loop_dev, setup_loop_dev, LoopParams};
use containerd_shim_protos::api::Mount;

use crate::{mountopts, sys};

/// How often a free loop device is asked for again when another user of
/// /dev/loop-control took the one we were given (EBUSY), as containerd does.
const LOOP_TRIES: usize = 100;

pub fn mount(mounts: &[Mount], target: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(target)?;
    for m in mounts {
        let failed = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("{} {} on {}: {e}", m.type_, m.source, target.display()))
        };
        let (with_loop, options) = take_loop(&m.options);
        let opts = mountopts::parse(&options);
        let fstype = (!opts.is_bind()).then_some(m.type_.as_str());
        let data = opts.data_string();
        if let Some((dir, data)) = data.as_deref().filter(|_| m.type_ == "overlay").and_then(compact_lowerdirs) {
            mount_from(&dir, &m.source, target, opts.flags, &data).map_err(failed)?;
            continue;
        }
        if !with_loop {
            sys::mount(Some(m.source.as_str()), target, fstype, opts.flags, data.as_deref()).map_err(failed)?;
            continue;
        }
        let (device, loop_fd) = attach_loop(&m.source).map_err(failed)?;
        let mounted = sys::mount(Some(device.as_str()), target, fstype, opts.flags, data.as_deref());
        // Detached now, lazily: the kernel lets go of the device with the
        // mount (at Delete, or when a dead shim's cleanup unmounts), or at
        // once if the mount failed. Nothing to track, nothing to leak.
        let cleared = sys::loop_clear_on_last_close(&loop_fd);
        mounted.map_err(failed)?;
        cleared
            .map_err(|e| failed(std::io::Error::new(e.kind(), format!("let go of {device} with the mount: {e}"))))?;
    }
    Ok(())
}

/// Mount data is one page; from a page less 512 bytes on, containerd's mount
/// package shortens an overlay's lowerdirs, and so do we.
const COMPACT_FROM: usize = 4096 - 512;

/// An overlay's options whose lowerdirs would not fit in one page of mount
/// data (some 55 layers of containerd's snapshot paths), with the lowerdirs
/// made relative to their common parent, where the mount is then made from.
/// None when they fit, or share no parent to shorten them by.
fn compact_lowerdirs(data: &str) -> Option<(PathBuf, String)> {
    if data.len() < COMPACT_FROM {
        return None;
    }
    let lower = data.split(',').find_map(|o| o.strip_prefix("lowerdir="))?;
    let dirs: Vec<&Path> = lower.split(':').map(Path::new).collect();
    let mut common: Vec<Component> = dirs.first()?.parent()?.components().collect();
    for d in &dirs {
        let parent: Vec<Component> = d.parent()?.components().collect();
        let same = common.iter().zip(&parent).take_while(|(a, b)| a == b).count();
        common.truncate(same);
    }
    let common: PathBuf = common.iter().collect();
    if !common.is_absolute() || common.parent().is_none() {
        return None;
    }
    let relative: Option<Vec<String>> =
        dirs.iter().map(|d| d.strip_prefix(&common).ok().and_then(|r| r.to_str()).map(String::from)).collect();
    let lowerdir = format!("lowerdir={}", relative?.join(":"));
    let data = data.split(',').map(|o| if o.starts_with("lowerdir=") { lowerdir.as_str() } else { o });
    Some((common, data.collect::<Vec<_>>().join(",")))
}

/// An overlay mounted from `dir`, whose relative lowerdirs the kernel looks
/// up from the mounting thread's working directory: a thread of its own,
/// with its own working directory (CLONE_FS unshared), so the rest of the
/// shim never moves.
fn mount_from(dir: &Path, source: &str, target: &Path, flags: u64, data: &str) -> std::io::Result<()> {
    let target = std::env::current_dir()?.join(target);
    std::thread::scope(|scope| {
        let mounting = std::thread::Builder::new().stack_size(64 << 10).spawn_scoped(scope, || {
            sys::unshare(libc::CLONE_FS)?;
            std::env::set_current_dir(dir)?;
            sys::mount(Some(source), &target, Some("overlay"), flags, Some(data))
        })?;
        mounting.join().unwrap_or_else(|_| Err(std::io::Error::other("the mounting thread panicked")))
    })
}

/// The `loop` option is containerd's, not the filesystem's: it asks for the
/// source file to be attached to a loop device first.
fn take_loop(options: &[String]) -> (bool, Vec<String>) {
    let with_loop = options.iter().any(|o| o == "loop");
    (with_loop, options.iter().filter(|o| *o != "loop").cloned().collect())
}

/// `file` attached to a free loop device: the device's path and an fd on it.
fn attach_loop(file: &str) -> std::io::Result<(String, std::fs::File)> {
    let shim_err = |e: containerd_shim::Error| std::io::Error::other(format!("loop device for {file}: {e}"));
    for _ in 0..LOOP_TRIES {
        let device = format!("/dev/loop{}", get_free_loop_dev().map_err(shim_err)?);
        match setup_loop_dev(file, &device, &LoopParams::default()) {
            Ok(fd) => return Ok((device, fd)),
            Err(containerd_shim::Error::Nix(errno)) if errno as i32 == libc::EBUSY => continue,
            Err(e) => return Err(shim_err(e)),
        }
    }
    Err(std::io::Error::other(format!("loop device for {file}: every free device was taken first, {LOOP_TRIES} times")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lowerdirs_are_made_relative_to_their_common_parent() {
        let root = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots";
        let lower: Vec<String> = (1..=60).rev().map(|i| format!("{root}/{i}/fs")).collect();
        let data = format!("index=off,lowerdir={},upperdir={root}/61/fs,workdir={root}/61/work", lower.join(":"));
        assert!(data.len() > 4096);
        let (dir, short) = compact_lowerdirs(&data).expect("compacted");
        assert_eq!(dir, Path::new(root));
        let want: Vec<String> = (1..=60).rev().map(|i| format!("{i}/fs")).collect();
        assert_eq!(
            short,
            format!("index=off,lowerdir={},upperdir={root}/61/fs,workdir={root}/61/work", want.join(":"))
        );
        assert!(short.len() < COMPACT_FROM);
        // Short enough already, or nothing in common but the root: left alone.
        assert_eq!(compact_lowerdirs(&format!("lowerdir={root}/1/fs:{root}/2/fs")), None);
        let apart: Vec<String> = (0..400).map(|i| format!("/l{i}/fs")).collect();
        assert_eq!(compact_lowerdirs(&format!("lowerdir={}", apart.join(":"))), None);
    }

    #[test]
    fn loop_is_taken_out_of_the_filesystems_options() {
        let opts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(take_loop(&opts(&["ro", "loop", "noatime"])), (true, opts(&["ro", "noatime"])));
        assert_eq!(take_loop(&opts(&["ro"])), (false, opts(&["ro"])));
        assert_eq!(take_loop(&opts(&["loopy"])), (false, opts(&["loopy"])));
    }
}
