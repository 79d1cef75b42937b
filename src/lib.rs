//! containerd-shim-myshim-v2: a containerd shim v2 that is its own OCI
//! runtime. The binary (`main.rs`) only calls `main` here; the library form
//! lets the fuzz targets (`fuzz/`) reach the parsers through `fuzzing`.

mod args;
mod bootstrap;
mod cgroups;
mod check;
mod cleanup;
mod console;
mod container;
mod error;
mod events;
mod features;
mod hooks;
mod logger;
mod metrics;
mod mountopts;
mod options;
mod pump;
mod reaper;
mod runtime;
mod server;
mod service;
mod spec;
mod state;
mod stdio;
mod sys;
mod wire;

pub mod fuzzing;

use std::io::Write;

/// FNV-1a: a stable short name for the state directory of a containerd
/// socket path (only containerd's own configuration chooses that path, so no
/// adversary picks a collision; sockets use containerd's sha256 names).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The shim's entry points, by argv: the init (re-exec'd as `myshim-init`),
/// `check`, and containerd's `start` (which forks the serving daemon) and
/// `delete`.
pub fn main() {
    if std::env::args_os().next().is_some_and(|a| a == runtime::init::ARG0) {
        runtime::init::main();
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().is_some_and(|a| a == "check") {
        std::process::exit(check::main(&argv[1..]));
    }
    let args = match args::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("containerd-shim-myshim-v2: {e}");
            std::process::exit(2);
        }
    };
    let code = match args.action.as_str() {
        "start" => match bootstrap::run(args) {
            Ok(bootstrap::Started::Answer(answer)) => print_out(&answer),
            Ok(bootstrap::Started::Daemon(daemon)) => server::run(daemon),
            Err(e) => fail(&e),
        },
        "delete" => match cleanup::run(&args) {
            Ok(bytes) => print_out(&bytes),
            Err(e) => fail(&e),
        },
        "version" => print_out(format!("containerd-shim-myshim-v2 {}\n", env!("CARGO_PKG_VERSION")).as_bytes()),
        "features" => features::json().map_or_else(|e| fail(&e), |b| print_out(&b)),
        "info" => {
            read_stdin().and_then(|opts| features::runtime_info(&opts)).map_or_else(|e| fail(&e), |b| print_out(&b))
        }
        other => fail(&format!("unknown action {other:?} (want start, delete, check, features, -info)")),
    };
    std::process::exit(code);
}

/// What containerd writes on stdin for `-info` (an options Any), bounded.
fn read_stdin() -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut input = Vec::new();
    let stdin = std::io::stdin();
    if !nix::unistd::isatty(std::os::fd::AsRawFd::as_raw_fd(&stdin)).unwrap_or(false) {
        stdin.lock().take(1 << 20).read_to_end(&mut input).map_err(|e| format!("-info: read stdin: {e}"))?;
    }
    Ok(input)
}

fn print_out(bytes: &[u8]) -> i32 {
    let mut out = std::io::stdout().lock();
    if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
        return 1;
    }
    0
}

fn fail(msg: &str) -> i32 {
    eprintln!("containerd-shim-myshim-v2: {msg}");
    1
}

/// A fresh, empty directory for a unit test: `myshim-<name>-<pid>` in the
/// temp dir, whatever an earlier run left there removed first.
#[cfg(test)]
pub(crate) fn scratch_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("myshim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv1a_is_stable() {
        assert_eq!(super::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
