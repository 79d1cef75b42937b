//! Integration tests: the real shim binary driven by a real containerd
//! (Debian's 1.6.20), started by scripts/test.sh. Run them through it.

mod harness;

mod bad_input;
mod bootstrap;
mod cgroup_ownership;
mod cgroup_v2;
mod check_cli;
mod checkpoint;
mod confinement_vs_runc;
mod direct;
mod early_init;
mod events;
mod exec;
mod exits;
mod hooks;
mod hooks_cost;
mod hooks_vs_runc;
mod hostile_rootfs;
mod hostile_rpc;
mod init_exe;
mod isolation;
mod kubernetes;
mod lifecycle;
mod mount_race;
mod nerdctl;
mod output;
mod pause;
mod privileged;
mod restart;
mod rootfs_mounts;
mod runc_shim_parity;
mod shim_death;
mod soak;
mod stalls;
mod stdio_uris;
mod terminal;
mod update;
