//! Output is never lost, even for a client whose fifo reader opens late (ctr
//! opens its readers from a goroutine, sometimes after a short exec is over):
//! the shim holds the fifos until Delete, and Delete lets go of them only once
//! the reader has taken the last byte, so the reader then sees EOF.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use containerd_shim_protos::api::{CreateTaskRequest, DeleteRequest, WaitRequest};

use crate::direct::*;
use crate::harness::*;

#[test]
fn a_reader_that_opens_after_the_exit_gets_all_output_and_then_eof() {
    let id = "out-late-reader";
    let b = checked_bundle(id, &["sh", "-c", "echo first; echo last"]);
    let fifo = b.join("stdout");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let req = CreateTaskRequest { stdout: fifo.to_string_lossy().into(), ..create_request(id, &b) };
        let shim = create_started_with(&c, req).await;
        let w = c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
        assert_eq!(w.exit_status, 0);
        // Only now does the reader open.
        let mut reader =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).expect("open the reader");
        let mut got = [0u8; 11];
        reader.read_exact(&mut got).expect("the output waited for the reader");
        assert_eq!(&got, b"first\nlast\n");
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).expect("EOF after Delete");
        assert!(rest.is_empty(), "{rest:?}");
        shutdown(&c, shim).await;
    });
    assert_no_leftovers(id);
}

/// Issue 8, acceptance 5: 10 MB printed right before the exit are all in
/// containerd's fifo for a reader, and TaskExit (Wait) comes after the last
/// byte was written. Read by the test itself: ctr 1.6 can exit with a
/// last chunk still in its own copy buffer (see the stop notes).
#[test]
fn ten_megabytes_printed_before_the_exit_all_arrive() {
    let id = "out-10mb";
    let b = checked_bundle(id, &["sh", "-c", "head -c 10000000 /dev/zero | tr '\\0' x"]);
    let fifo = b.join("stdout");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    // A reader on its own thread, as containerd's is: a blocking open (it
    // returns once the shim opens its writer at Create), blocking reads.
    let path = fifo.clone();
    let count = std::thread::spawn(move || {
        let mut reader = std::fs::File::open(&path).expect("open the reader");
        let (mut total, mut all_x, mut buf) = (0usize, true, vec![0u8; 65536]);
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return (total, all_x),
                Ok(n) => {
                    all_x &= buf[..n].iter().all(|c| *c == b'x');
                    total += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    });
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let req = CreateTaskRequest { stdout: fifo.to_string_lossy().into(), ..create_request(id, &b) };
        let shim = create_started_with(&c, req).await;
        let w = c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
        assert_eq!(w.exit_status, 0);
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, shim).await;
    });
    let (total, all_x) = count.join().expect("reader");
    assert_eq!(total, 10_000_000);
    assert!(all_x);
    assert_no_leftovers(id);
}

/// A process that outlives its exec and keeps the exec's stdout and stderr
/// (`sleep 30 &`) holds up neither the exit nor Delete: the exit is
/// reported, Delete closes the relays, and containerd's reader sees EOF
/// then, as with the runc shim (which closes its pipes at the exec's
/// Delete), while the container runs on. The `file://` stderr, whose copy
/// runs on a thread, does not hold Delete either.
#[test]
fn an_exec_whose_child_keeps_its_output_is_deleted_and_its_reader_ends() {
    use containerd_shim_protos::api::StartRequest;
    let id = "out-lingering";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let fifo = b.join("exec-stdout");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let log = b.join("exec-stderr.log");
    let path = fifo.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let r = std::fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut got));
        let _ = tx.send(r.map(|_| got));
    });
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, &b).await;
        let mut req = exec_request(id, "e1", &["sh", "-c", "sleep 30 & echo now; echo err >&2"]);
        req.stdout = fifo.to_string_lossy().into();
        req.stderr = format!("file://{}", log.display());
        c.exec(ctx(), &req).await.expect("Exec");
        c.start(ctx(), &StartRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() })
            .await
            .expect("Start");
        let w = WaitRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        assert_eq!(c.wait(ctx(), &w).await.expect("Wait for the exec").exit_status, 0);
        let begun = std::time::Instant::now();
        let del = DeleteRequest { id: id.into(), exec_id: "e1".into(), ..Default::default() };
        c.delete(ctx(), &del).await.expect("Delete the exec");
        assert!(begun.elapsed() < std::time::Duration::from_secs(3), "Delete took {:?}", begun.elapsed());
        let got = rx.recv_timeout(std::time::Duration::from_secs(3)).expect("EOF at the exec's Delete");
        assert_eq!(got.expect("read"), b"now\n");
        assert_eq!(std::fs::read_to_string(&log).expect("stderr log"), "err\n");
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
}
