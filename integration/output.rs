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
