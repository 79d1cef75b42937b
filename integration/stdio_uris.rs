//! Issue 8 (part): the stdio URIs besides fifos that containerd and nerdctl
//! use, through `ctr run --log-uri`.

use std::os::unix::fs::PermissionsExt;

use crate::harness::*;

#[test]
fn file_uris_get_the_output_appended_to_a_private_file() {
    let id = "uri-file";
    let log = work_dir().join("uri-file/logs/out.log");
    let _ = std::fs::remove_dir_all(work_dir().join("uri-file"));
    let uri = format!("file://{}", log.display());
    let out = run_image(id, &["--log-uri", &uri], &["sh", "-c", "echo to-stdout; echo to-stderr >&2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = std::fs::read_to_string(&log).expect("log file");
    assert!(got.contains("to-stdout\n") && got.contains("to-stderr\n"), "{got}");
    assert_eq!(std::fs::metadata(&log).expect("stat").permissions().mode() & 0o777, 0o600);
    assert_no_leftovers(id);
}

#[test]
fn binary_uris_start_the_logger_and_the_exit_waits_for_its_drain() {
    let id = "uri-binary";
    let dir = work_dir().join("uri-binary");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let logger = dir.join("logger.sh");
    // containerd's protocol: output on fds 3 and 4, ready on fd 5. This one
    // drains slowly and notes the end, so an early TaskExit would show.
    std::fs::write(
        &logger,
        "#!/bin/sh\nout=\"$2\"\necho ready >&5\nexec 5>&-\n\
         echo \"id=$CONTAINER_ID ns=$CONTAINER_NAMESPACE args=$*\" > \"$out.env\"\n\
         sed 's/^/out: /' <&3 >> \"$out\" &\nsed 's/^/err: /' <&4 >> \"$out.err\" &\nwait\nsleep 0.3\necho drained >> \"$out\"\n",
    )
    .expect("logger");
    std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let log = dir.join("log.txt");
    let uri = format!("binary://{}?out={}", logger.display(), log.display());
    let script = "i=0; while [ $i -lt 1000 ]; do i=$((i+1)); echo line $i; done; echo bye >&2";
    let out = run_image(id, &["--log-uri", &uri], &["sh", "-c", script]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 1001, "{got}");
    assert_eq!((lines[0], lines[999], lines[1000]), ("out: line 1", "out: line 1000", "drained"));
    assert_eq!(std::fs::read_to_string(dir.join("log.txt.err")).expect("err"), "err: bye\n");
    let env = std::fs::read_to_string(dir.join("log.txt.env")).expect("env");
    assert_eq!(env.trim(), format!("id={id} ns={NS} args=out {}", log.display()));
    assert_no_leftovers(id);
}

#[test]
fn a_missing_logging_binary_fails_create_clearly() {
    let id = "uri-missing";
    let out = run_image(id, &["--log-uri", "binary:///no/such/logger"], &["true"]);
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(e.contains("logging binary /no/such/logger: No such file"), "{e}");
    assert_no_leftovers(id);
}

/// Guard (issue 22, host files in the container): the container's stdio
/// are pipes the shim relays, never containerd's fifos or the host's log
/// file. Before, container root could chmod, truncate or reopen those host
/// inodes through /proc/self/fd: here it tries, and the log file keeps its
/// mode and its first line.
#[test]
fn the_container_holds_pipes_never_a_host_fifo_or_file() {
    let id = "uri-pipes";
    let log = work_dir().join("uri-pipes/out.log");
    let _ = std::fs::remove_dir_all(work_dir().join("uri-pipes"));
    let uri = format!("file://{}", log.display());
    let attack = "echo early; chmod 666 /proc/self/fd/1 /proc/self/fd/2; : > /proc/self/fd/1; \
                  for n in 1 2; do readlink /proc/self/fd/$n; done";
    let out = run_image(id, &["--log-uri", &uri], &["sh", "-c", attack]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = std::fs::read_to_string(&log).expect("log file");
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.first(), Some(&"early"), "the host file was truncated from inside: {got}");
    assert!(lines.len() == 3 && lines[1..].iter().all(|l| l.starts_with("pipe:[")), "{got}");
    assert_eq!(std::fs::metadata(&log).expect("stat").permissions().mode() & 0o777, 0o600);

    // containerd's fifos, for the init and for an exec.
    let probe = "for n in 0 1 2; do readlink /proc/self/fd/$n; done; sleep 0.3";
    let out = run_image(id, &[], &["sh", "-c", probe]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = text(&out.stdout);
    assert!(got.lines().count() == 3 && got.lines().all(|l| l.starts_with("pipe:[")), "init: {got}");
    let run = ctr(&["run", "-d", "--runtime", RUNTIME, &image(), id, "sleep", "1000"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    wait_status(id, "RUNNING");
    let out = ctr(&["task", "exec", "--exec-id", "e1", id, "sh", "-c", probe]);
    remove(id);
    let got = text(&out.stdout);
    assert!(got.lines().count() == 3 && got.lines().all(|l| l.starts_with("pipe:[")), "exec: {got}");
    assert_no_leftovers(id);
}
