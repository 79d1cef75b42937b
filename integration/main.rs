//! Integration tests: the real shim binary driven by a real containerd
//! (Debian's 1.6.20), started by scripts/test.sh. Run them through it.

mod harness;

mod bad_input;
mod bootstrap;
mod events;
mod exec;
mod hooks;
mod isolation;
mod lifecycle;
mod shim_death;
