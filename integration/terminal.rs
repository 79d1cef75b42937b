//! Issue 8 (part): `process.terminal`. Driven directly (ctr run -t wants a
//! terminal of its own): the program gets a pts of the container's devpts
//! as its controlling terminal, the console size from the spec, ResizePty,
//! stdin through the terminal, CloseIO as end of input, every byte of
//! output before the exit is reported; a stderr path beside a terminal
//! ignored (issue 21: containerd's Go client names one it never creates).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use containerd_shim_protos::api::{
    CloseIORequest, ConnectRequest, CreateTaskRequest, DeleteRequest, ResizePtyRequest, StartRequest, WaitRequest,
};
use serde_json::json;

use crate::direct::*;
use crate::harness::*;

pub fn fifo(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.to_string_lossy().as_bytes()).expect("path");
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Reads from the (non-blocking) fifo until `want` shows up in everything
/// read so far, or 10 s pass.
pub fn read_until(r: &mut std::fs::File, got: &mut String, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !got.contains(want) {
        assert!(Instant::now() < deadline, "waited for {want:?}; got {got:?}");
        match r.read(&mut buf) {
            Ok(n) if n > 0 => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[test]
fn a_terminal_init_gets_a_pts_its_size_resizes_input_and_eof() {
    let id = "tty-init";
    let b = bundle(&format!("bundle-{id}"));
    let root = rootfs(id);
    let script = "tty; stty size; read line; echo got=$line; stty size; cat; echo cat-done";
    let mut s = spec(id, &root, &["sh", "-c", script]);
    s["process"]["terminal"] = json!(true);
    s["process"]["consoleSize"] = json!({"height": 24, "width": 80});
    std::fs::write(b.join("config.json"), serde_json::to_vec(&s).expect("json")).expect("config");
    assert_checks_clean(&b);
    let (stdin, stdout) = (b.join("stdin"), b.join("stdout"));
    fifo(&stdin);
    fifo(&stdout);
    let mut out = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&stdout).expect("out");
    let mut inp = std::fs::OpenOptions::new().read(true).write(true).open(&stdin).expect("in");
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
        let req = CreateTaskRequest {
            id: id.into(),
            bundle: b.to_string_lossy().into(),
            terminal: true,
            stdin: stdin.to_string_lossy().into(),
            stdout: stdout.to_string_lossy().into(),
            // As containerd's Go client (cio.WithTerminal) sends it: a
            // stderr fifo it never makes. A terminal has one stream.
            stderr: b.join("stderr-never-made").to_string_lossy().into(),
            ..Default::default()
        };
        c.create(ctx(), &req).await.expect("Create");
        c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");
        let mut got = String::new();
        read_until(&mut out, &mut got, "24 80");
        assert!(got.starts_with("/dev/pts/0"), "the container's own devpts: {got:?}");
        let resize = ResizePtyRequest { id: id.into(), width: 100, height: 30, ..Default::default() };
        c.resize_pty(ctx(), &resize).await.expect("ResizePty");
        inp.write_all(b"hello\n").expect("stdin");
        read_until(&mut out, &mut got, "got=hello");
        read_until(&mut out, &mut got, "30 100");
        inp.write_all(b"typed\n").expect("stdin");
        read_until(&mut out, &mut got, "typed\r\ntyped");
        c.close_io(ctx(), &CloseIORequest { id: id.into(), stdin: true, ..Default::default() }).await.expect("CloseIO");
        let status =
            c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait").exit_status;
        assert_eq!(status, 0);
        // Reported after the last byte: it is already in the fifo.
        let mut rest = [0u8; 4096];
        let n = out.read(&mut rest).unwrap_or(0);
        got.push_str(&String::from_utf8_lossy(&rest[..n]));
        assert!(got.contains("cat-done"), "{got:?}");
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, shim).await;
    });
    assert_no_leftovers(id);
}

#[test]
fn a_terminal_exec_gets_its_own_pts_and_size() {
    use containerd_shim_protos::api::ExecProcessRequest;
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::protobuf::MessageField;

    let id = "tty-exec";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let stdout = b.join("exec-stdout");
    fifo(&stdout);
    let mut out = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&stdout).expect("out");
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, &b).await;
        let process = json!({
            "args": ["sh", "-c", "tty; stty size"], "cwd": "/", "env": ["PATH=/bin"], "terminal": true,
            "consoleSize": {"height": 10, "width": 40}, "user": {"uid": 0, "gid": 0}
        });
        let any = Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
            value: serde_json::to_vec(&process).expect("json"),
            ..Default::default()
        };
        let exec = ExecProcessRequest {
            id: id.into(),
            exec_id: "e1".into(),
            terminal: true,
            stdout: stdout.to_string_lossy().into(),
            stderr: b.join("exec-stderr-never-made").to_string_lossy().into(),
            spec: MessageField::some(any),
            ..Default::default()
        };
        c.exec(ctx(), &exec).await.expect("Exec");
        let start_exec = StartRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        c.start(ctx(), &start_exec).await.expect("Start exec");
        let wait = WaitRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        assert_eq!(c.wait(ctx(), &wait).await.expect("Wait exec").exit_status, 0);
        // The init has no terminal: resizing it is a no-op, as with the runc
        // shim (issue 21: clients resize unconditionally).
        let resize = ResizePtyRequest { id: id.into(), width: 100, height: 30, ..Default::default() };
        c.resize_pty(ctx(), &resize).await.expect("ResizePty of a process without a terminal");
        let mut got = String::new();
        read_until(&mut out, &mut got, "10 40");
        assert!(got.starts_with("/dev/pts/"), "{got:?}");
        let del = DeleteRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        c.delete(ctx(), &del).await.expect("Delete exec");
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
}

/// `ctr run -t` and `ctr task exec -t` under a real pty (util-linux
/// `script`): a /dev/pts path, the size of ctr's terminal before and after
/// it is resized (ctr's SIGWINCH -> ResizePty), and the status of `exit 5`
/// typed into it.
#[test]
fn ctr_run_and_exec_with_a_terminal_under_script() {
    let id = "tty-ctr";
    let typed = |ctr_args: String| {
        let line = format!(
            "stty rows 21 cols 77; (sleep 2; stty rows 30 cols 100 </dev/tty) & ctr --address {} -n {NS} {ctr_args}",
            address()
        );
        let mut child = std::process::Command::new("timeout")
            .args(["-k", "5", "30", "script", "-qec", &line, "/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("script");
        let mut stdin = child.stdin.take().expect("stdin");
        std::thread::sleep(Duration::from_millis(1000));
        stdin.write_all(b"tty; stty size\n").expect("type");
        std::thread::sleep(Duration::from_millis(2500));
        stdin.write_all(b"stty size; exit 5\n").expect("type");
        let out = child.wait_with_output().expect("script");
        drop(stdin);
        out
    };
    let sizes = |o: &str| -> Vec<String> {
        o.lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| *l == "21 77" || *l == "30 100")
            .map(String::from)
            .collect()
    };
    let run = typed(format!("run -t --rm --runtime {RUNTIME} {} {id} sh", image()));
    let o = text(&run.stdout);
    assert_eq!(run.status.code(), Some(5), "{o} {}", text(&run.stderr));
    assert!(o.contains("/dev/pts/0"), "{o}");
    assert_eq!(sizes(&o), ["21 77", "30 100"], "{o}");
    assert_no_leftovers(id);

    let sleeper = "tty-ctr-exec";
    let r = ctr(&["run", "-d", "--runtime", RUNTIME, &image(), sleeper, "sleep", "1000"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let exec = typed(format!("task exec -t --exec-id t1 {sleeper} sh"));
    let o = text(&exec.stdout);
    assert_eq!(exec.status.code(), Some(5), "{o} {}", text(&exec.stderr));
    assert!(o.contains("/dev/pts/"), "{o}");
    assert_eq!(sizes(&o), ["21 77", "30 100"], "{o}");
    remove(sleeper);
    assert_no_leftovers(sleeper);
}
