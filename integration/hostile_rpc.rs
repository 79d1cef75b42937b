//! Issue 11 (part): what a raw client can throw at the shim's socket.
//! Malformed ttrpc frames (an oversized length, garbage where a request
//! should be, garbage protobuf for a real method, an unknown method, a cut
//! header) get an error or a closed connection, never a dead shim; the
//! socket is a 0600 path of root's, which another uid cannot dial.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use containerd_shim_protos::api::ConnectRequest;

use crate::direct::*;
use crate::harness::*;

const REQUEST: u8 = 1;
const RESPONSE: u8 = 2;

fn frame(stream: u32, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(&[kind, 0]);
    f.extend_from_slice(payload);
    f
}

/// A ttrpc Request: service = 1, method = 2, payload = 3.
fn request(service: &str, method: &str, payload: &[u8]) -> Vec<u8> {
    let mut r = pb(1, service);
    r.extend(pb(2, method));
    r.push((3 << 3) | 2);
    r.push(payload.len() as u8);
    r.extend_from_slice(payload);
    r
}

fn dial(path: &str) -> UnixStream {
    let s = UnixStream::connect(path).expect("dial");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s
}

/// The response frame on `stream`, or None if the shim closed the
/// connection instead.
fn response(s: &mut UnixStream, stream: u32) -> Option<Vec<u8>> {
    let mut header = [0u8; 10];
    s.read_exact(&mut header).ok()?;
    let len = u32::from_be_bytes(header[0..4].try_into().ok()?) as usize;
    assert_eq!(u32::from_be_bytes(header[4..8].try_into().ok()?), stream, "a reply on another stream");
    assert_eq!(header[8], RESPONSE, "a response frame");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

/// A Response whose status (field 1) carries a non-zero code (field 1).
fn is_error(body: &[u8]) -> bool {
    body.len() > 3 && body[0] == (1 << 3) | 2 && body[2] == 1 << 3 && body[3] != 0
}

#[test]
fn malformed_frames_get_errors_and_the_shim_lives() {
    let id = "rpc-hostile";
    let b = bundle(&format!("bundle-{id}"));
    let addr = text(&start(&b, id, None));
    let path = addr.trim().strip_prefix("unix://").expect("a unix socket path, not an abstract one").to_string();
    let md = std::fs::metadata(&path).expect("socket");
    assert!(md.file_type().is_socket());
    assert_eq!((md.mode() & 0o777, md.uid()), (0o600, 0), "{path}");
    let other = std::process::Command::new("python3")
        .args(["-c", "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])", &path])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("python3 as nobody");
    assert!(!other.status.success(), "uid 65534 dialled the shim");
    assert!(text(&other.stderr).contains("Permission denied"), "{}", text(&other.stderr));

    let alive = |what: &str| -> u32 {
        rt().block_on(async {
            let c = client(addr.trim()).await;
            c.connect(ctx(), &ConnectRequest::default()).await.unwrap_or_else(|e| panic!("after {what}: {e}")).shim_pid
        })
    };
    let shim = alive("nothing");

    let service = "containerd.task.v2.Task";
    let mut s = dial(&path);
    s.write_all(&frame(1, REQUEST, &request(service, "NoSuchMethod", b""))).expect("write");
    assert!(response(&mut s, 1).is_some_and(|r| is_error(&r)), "an unknown method gets an error");
    s.write_all(&frame(3, REQUEST, &request(service, "State", &[0xff; 16]))).expect("write");
    assert!(response(&mut s, 3).is_some_and(|r| is_error(&r)), "garbage protobuf gets an error");
    assert_eq!(alive("an unknown method and garbage protobuf"), shim);

    for (what, bytes) in [
        ("garbage in place of a request", frame(5, REQUEST, &[0xde, 0xad, 0xbe, 0xef, 0xff, 0xff])),
        ("an unknown frame type", frame(7, 0x7f, b"x")),
        ("an oversized length", {
            let mut f = frame(9, REQUEST, b"");
            f[0..4].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
            f
        }),
        ("half a header", vec![0, 0, 0]),
    ] {
        let mut s = dial(&path);
        s.write_all(&bytes).expect("write");
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest); // an error reply or nothing: either way, no crash
        assert_eq!(alive(what), shim, "the shim after {what}");
    }
    rt().block_on(async { shutdown(&client(addr.trim()).await, shim).await });
}

/// Issue 22: two Creates of one id at once, and two Execs of one exec id:
/// one runs, the other is refused (ALREADY_EXISTS), nothing is run twice
/// or left behind. Guard: the id is reserved before Create's first await.
#[test]
fn the_same_id_created_twice_at_once_runs_once() {
    use containerd_shim_protos::api::StartRequest;
    use containerd_shim_protos::ttrpc::Code;

    let id = "twice";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = c.connect(ctx(), &ConnectRequest::default()).await.expect("Connect").shim_pid;
        let req = create_request(id, &b);
        let (a, b2) = tokio::join!(c.create(ctx(), &req), c.create(ctx(), &req));
        fn refused<T>(r: &Result<T, containerd_shim_protos::ttrpc::Error>) -> bool {
            matches!(r, Err(containerd_shim_protos::ttrpc::Error::RpcStatus(s)) if s.code() == Code::ALREADY_EXISTS)
        }
        assert!(a.is_ok() != b2.is_ok(), "exactly one Create: {a:?} / {b2:?}");
        assert!(refused(&a) || refused(&b2), "the other is ALREADY_EXISTS: {a:?} / {b2:?}");
        c.start(ctx(), &StartRequest { id: id.into(), ..Default::default() }).await.expect("Start");

        let exec = exec_request(id, "e1", &["sleep", "5"]);
        let (a, b2) = tokio::join!(c.exec(ctx(), &exec), c.exec(ctx(), &exec));
        assert!(a.is_ok() != b2.is_ok(), "exactly one Exec: {a:?} / {b2:?}");
        assert!(refused(&a) || refused(&b2), "the other is ALREADY_EXISTS: {a:?} / {b2:?}");
        kill_delete_shutdown(&c, id, shim).await;
    });
    assert_no_leftovers(id);
}

/// Verbs out of order are the client's mistake, answered FAILED_PRECONDITION
/// with what was asked and the state it met; never INTERNAL, which would
/// say the shim failed (a second Start answered INTERNAL before).
#[test]
fn verbs_out_of_order_answer_failed_precondition() {
    use containerd_shim_protos::api::{
        DeleteRequest, KillRequest, PauseRequest, ResumeRequest, StartRequest, WaitRequest,
    };
    use containerd_shim_protos::ttrpc::{Code, Error};
    let id = "out-of-order";
    let b = checked_bundle(id, &["sleep", "1000"]);
    let addr = text(&start(&b, id, None));
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let shim = create_started(&c, id, &b).await;
        let refused = |r: Result<(), Error>, what: &str, words: &str| {
            let message = expect_code(r, Code::FAILED_PRECONDITION, what);
            assert!(message.contains(words), "{what}: {message}");
        };
        let start = StartRequest { id: id.into(), ..Default::default() };
        refused(c.start(ctx(), &start).await.map(drop), "a second Start", "cannot start a Running container");
        let resume = ResumeRequest { id: id.into(), ..Default::default() };
        refused(c.resume(ctx(), &resume).await.map(drop), "Resume of a running one", "cannot resume a Running");
        let pause = PauseRequest { id: id.into(), ..Default::default() };
        c.pause(ctx(), &pause).await.expect("Pause");
        refused(c.pause(ctx(), &pause).await.map(drop), "a second Pause", "cannot pause a Paused container");
        c.resume(ctx(), &resume).await.expect("Resume");
        c.kill(ctx(), &KillRequest { id: id.into(), signal: 9, ..Default::default() }).await.expect("Kill");
        c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
        refused(c.start(ctx(), &start).await.map(drop), "Start after the exit", "cannot start a Stopped container");
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, shim).await;
    });
    assert_no_leftovers(id);
}
