//! The hook probe of the integration tests. The tests build it with plain
//! rustc, std only and statically linked, so the same file runs as a hook on
//! the host and inside the busybox rootfs. Each run appends one JSON line to
//! $LOG: what it was run as (argv, env, cwd), what it read (the state), where
//! it ran (namespace inodes), what it saw of the container's process, and a
//! CLOCK_MONOTONIC timestamp the tests compare with their RPC windows.
//! PROBE_FAIL=n exits n, PROBE_SIGNAL=n dies of signal n, PROBE_HANG=1 starts
//! a `sleep` that keeps its process group alive and then waits forever.

use std::io::{Read, Write};

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut [i64; 2]) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn getpid() -> i32;
}

const CLOCK_MONOTONIC: i32 = 1;

fn monotonic_ns() -> i64 {
    let mut ts = [0i64; 2];
    // SAFETY: ts is a valid timespec (two longs on 64-bit Linux).
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    ts[0] * 1_000_000_000 + ts[1]
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| json_str(s)).collect::<Vec<_>>().join(","))
}

fn link(path: &str) -> String {
    std::fs::read_link(path).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The state's top-level "pid", without a JSON parser.
fn state_pid(state: &str) -> Option<u32> {
    let rest = &state[state.find("\"pid\":")? + 6..];
    let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn main() {
    let t = monotonic_ns();
    let argv: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut env: Vec<String> =
        std::env::vars_os().map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())).collect();
    env.sort();
    let cwd = std::env::current_dir().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let mut state = String::new();
    let _ = std::io::stdin().read_to_string(&mut state);
    let pid = state_pid(&state);
    let exists = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
    let exe = pid.map(|p| link(&format!("/proc/{p}/exe"))).unwrap_or_default();
    let state_json = if state.trim().is_empty() { "null".to_string() } else { state.trim().to_string() };
    let line = format!(
        "{{\"t\":{t},\"argv\":{},\"env\":{},\"cwd\":{},\"mnt\":{},\"pidns\":{},\"net\":{},\"uts\":{},\"exists\":{exists},\"exe\":{},\"state\":{state_json}}}\n",
        json_list(&argv),
        json_list(&env),
        json_str(&cwd),
        json_str(&link("/proc/self/ns/mnt")),
        json_str(&link("/proc/self/ns/pid")),
        json_str(&link("/proc/self/ns/net")),
        json_str(&link("/proc/self/ns/uts")),
        json_str(&exe),
    );
    if let Ok(log) = std::env::var("LOG") {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open $LOG");
        f.write_all(line.as_bytes()).expect("write $LOG");
    }
    let what = argv.get(1).cloned().unwrap_or_default();
    if let Some(code) = std::env::var("PROBE_FAIL").ok().and_then(|v| v.parse().ok()) {
        eprintln!("failing on purpose: {what}");
        std::process::exit(code);
    }
    if let Some(sig) = std::env::var("PROBE_SIGNAL").ok().and_then(|v| v.parse().ok()) {
        eprintln!("killing myself: {what}");
        // SAFETY: plain syscalls on our own pid.
        unsafe { kill(getpid(), sig) };
    }
    if std::env::var("PROBE_HANG").is_ok() {
        let _child = std::process::Command::new("sleep").arg("1000").spawn();
        std::thread::sleep(std::time::Duration::from_secs(1000));
    }
}
