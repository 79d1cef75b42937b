//! containerd-shim-myshim-v2: everything is in the library (`lib.rs`).

fn main() {
    myshim::main();
}
