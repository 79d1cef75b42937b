//! The Shim's verbs where no container runs: what a client that names the
//! wrong thing, or the same thing twice, is answered. No root, no process:
//! a Shim with a reaper that reaps nothing and an event sink that records.

use std::sync::{Arc, Mutex};

use containerd_shim_protos::protobuf::MessageDyn;
use containerd_shim_protos::ttrpc::Code;

use super::*;
use crate::events::EventSink;

#[derive(Default)]
pub(super) struct Recorded(pub(super) Mutex<Vec<&'static str>>);

impl EventSink for Recorded {
    fn publish(&self, topic: &'static str, _event: &dyn MessageDyn) {
        if let Ok(mut t) = self.0.lock() {
            t.push(topic);
        }
    }
}

pub(super) fn shim() -> (Arc<Shim>, Arc<Recorded>) {
    let events = Arc::new(Recorded::default());
    let ctx = ShimContext {
        namespace: "ns".into(),
        address: "/nowhere.sock".into(),
        state_root: std::env::temp_dir().join(format!("myshim-unit-{}", std::process::id())),
    };
    (Arc::new(Shim::new(ctx, Arc::new(Reaper::default()), events.clone())), events)
}

pub(super) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

pub(super) fn io() -> IoPaths {
    IoPaths { stdin: String::new(), stdout: String::new(), stderr: String::new(), terminal: false }
}

/// Every verb on a container the shim does not serve answers NOT_FOUND
/// naming it, and publishes nothing.
#[test]
fn verbs_on_an_unknown_container_answer_not_found_naming_it() {
    let (s, events) = shim();
    let codes: Vec<(&str, Result<(), TaskError>)> = rt().block_on(async {
        vec![
            ("start", s.start("ghost", "").await.map(drop)),
            ("kill", s.kill("ghost", "", 9, false).await),
            ("delete", s.delete("ghost", "").await.map(drop)),
            ("pause", s.pause("ghost", true).await),
            ("resume", s.pause("ghost", false).await),
            ("update", s.update("ghost", b"{}").await),
            ("wait", s.wait("ghost", "").await.map(drop)),
            ("state", s.status("ghost", "").await.map(drop)),
            ("stats", s.stats("ghost").map(drop)),
            ("pids", s.pids("ghost").map(drop)),
            ("close io", s.close_stdin("ghost", "")),
            ("resize pty", s.resize_pty("ghost", "", 80, 24)),
            (
                "exec",
                s.exec(ExecRequest { id: "ghost".into(), exec_id: "e1".into(), io: io(), process: b"{}".to_vec() })
                    .await,
            ),
        ]
    });
    for (verb, r) in codes {
        let e = r.err().unwrap_or_else(|| panic!("{verb} of an unknown container succeeded"));
        assert_eq!(e.code(), Code::NOT_FOUND, "{verb}: {e}");
        assert!(e.to_string().contains("ghost"), "{verb}: {e}");
    }
    assert!(events.0.lock().expect("events").is_empty());
}

/// A Create that fails at its first step (a bundle with no config.json)
/// answers INVALID_ARGUMENT naming the file, and lets go of its id: the
/// same Create again gets the same answer, not ALREADY_EXISTS.
#[test]
fn a_failed_create_names_its_step_and_frees_its_id() {
    let (s, events) = shim();
    let bundle = std::env::temp_dir().join(format!("myshim-unit-nobundle-{}", std::process::id()));
    let req = || CreateRequest {
        id: "c1".into(),
        bundle: bundle.to_string_lossy().into_owned(),
        rootfs: Vec::new(),
        io: io(),
        options: Default::default(),
        checkpoint: String::new(),
    };
    rt().block_on(async {
        for _ in 0..2 {
            let e = s.create(req()).await.expect_err("a Create without config.json");
            assert_eq!(e.code(), Code::INVALID_ARGUMENT, "{e}");
            assert!(e.to_string().starts_with("create c1: config.json: "), "{e}");
        }
    });
    assert!(events.0.lock().expect("events").is_empty());
}

/// An id is held while its Create or Exec runs and let go when it ends:
/// a second claim meanwhile is refused (ALREADY_EXISTS at the RPC).
#[test]
fn an_id_is_reserved_once_and_let_go() {
    let (s, _) = shim();
    let first = s.reserve("c1".into()).expect("first claim");
    assert!(s.reserve("c1".into()).is_none(), "a second claim while the first holds");
    assert!(s.reserve("c2".into()).is_some(), "another id is free");
    drop(first);
    assert!(s.reserve("c1".into()).is_some(), "free again once the first ends");
}

/// Ids containerd could never mean are refused before anything is done.
#[test]
fn ids_that_name_paths_are_refused() {
    let (s, _) = shim();
    for id in ["", ".", "..", "a/b"] {
        let req = CreateRequest {
            id: id.into(),
            bundle: "/nowhere".into(),
            rootfs: Vec::new(),
            io: io(),
            options: Default::default(),
            checkpoint: String::new(),
        };
        let e = rt().block_on(s.create(req)).expect_err("refused");
        assert_eq!(e.code(), Code::INVALID_ARGUMENT, "{id:?}: {e}");
    }
}
