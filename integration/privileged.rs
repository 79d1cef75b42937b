//! Issue 21: `ctr run --privileged` (every host device in the config,
//! /dev/ptmx among them, all capabilities) starts, and the container sees
//! the same /dev and capabilities as under containerd's runc shim.

use crate::harness::*;

/// Ends with a pause: ctr 1.6 can exit before it copied all the output of a
/// process that ended at once.
const PROBE: &str = "for d in /dev/* /dev/*/*; do [ -e \"$d\" ] || [ -L \"$d\" ] || continue; \
                     stat -c '%n %F %t:%T %a %u:%g' \"$d\"; done; readlink /dev/ptmx; grep Cap /proc/self/status; \
                     sleep 0.3";

#[test]
fn ctr_run_privileged_sees_the_same_devices_as_under_runc() {
    let id = "priv-ctr";
    let ours = run_image(id, &["--privileged"], &["sh", "-c", PROBE]);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    assert_no_leftovers(id);
    let theirs = ctr(&["run", "--rm", "--privileged", "--runtime", "io.containerd.runc.v2", &image(), "priv-runc"]
        .into_iter()
        .chain(["sh", "-c", PROBE])
        .collect::<Vec<_>>());
    assert!(theirs.status.success(), "runc: {}", text(&theirs.stderr));
    let (ours, theirs) = (text(&ours.stdout), text(&theirs.stdout));
    assert!(ours.lines().any(|l| l == "pts/ptmx"), "/dev/ptmx is not the devpts link:\n{ours}");
    assert!(ours.contains("/dev/tty1 character special file"), "no host device:\n{ours}");
    assert_eq!(ours, theirs, "myshim and runc differ");
}
