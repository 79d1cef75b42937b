//! The wrappers' errors keep their errno (and so their io::ErrorKind), and
//! the fds they hand out have the flags their docs promise.

use std::io;

use super::*;

#[test]
fn rlimits_round_trip_and_unknown_ones_are_einval() {
    let (soft, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE).expect("getrlimit");
    set_rlimit(libc::RLIMIT_CORE, soft, hard).expect("same limits again");
    let e = set_rlimit(999, 1, 1).expect_err("no such resource");
    assert_eq!((e.raw_os_error(), e.kind()), (Some(libc::EINVAL), io::ErrorKind::InvalidInput));
    // soft above hard: the kernel's EINVAL comes back as the same io::Error.
    let e = set_rlimit(libc::RLIMIT_CORE, 2, 1).expect_err("soft above hard");
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
}
