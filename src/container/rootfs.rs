//! The snapshot containerd prepared (usually one overlay; an image file with
//! the `loop` option from the blockfile and erofs snapshotters), mounted at
//! the bundle's rootfs on the host, as containerd-shim-runc-v2 does with
//! containerd's mount package.

use std::path::Path;

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
        if !with_loop {
            sys::mount(Some(m.source.as_str()), target, fstype, opts.flags, opts.data_string().as_deref())
                .map_err(failed)?;
            continue;
        }
        let (device, loop_fd) = attach_loop(&m.source).map_err(failed)?;
        let mounted = sys::mount(Some(device.as_str()), target, fstype, opts.flags, opts.data_string().as_deref());
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
    fn loop_is_taken_out_of_the_filesystems_options() {
        let opts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(take_loop(&opts(&["ro", "loop", "noatime"])), (true, opts(&["ro", "noatime"])));
        assert_eq!(take_loop(&opts(&["ro"])), (false, opts(&["ro"])));
        assert_eq!(take_loop(&opts(&["loopy"])), (false, opts(&["loopy"])));
    }
}
