//! Issue 7: `check` as a command: no containerd, exit status 0 / 1 (only
//! with --strict) / 2, JSON for tools. Its texts are golden-tested in
//! src/check/report.rs.

use std::process::{Command, Output};

use crate::harness::*;

fn check(args: &[&str]) -> Output {
    let repo = env!("CARGO_MANIFEST_DIR");
    Command::new(shim_binary()).arg("check").args(args).current_dir(repo).output().expect("run check")
}

#[test]
fn exit_status_says_ok_warnings_or_errors() {
    let cases: &[(&[&str], i32)] = &[
        (&["testdata/check/01-all-hooks"], 0),
        (&["testdata/check/01-all-hooks/config.json"], 0),
        (&["testdata/check/05-poststart-miscased"], 0),
        (&["--strict", "testdata/check/05-poststart-miscased"], 1),
        (&["--strict", "testdata/check/12-no-hooks"], 0),
        (&["testdata/check/08-linux-miscased"], 2),
        (&["--json", "testdata/check/02-hook-missing-on-host"], 2),
        (&["testdata/check/no-such-bundle"], 2),
        (&[], 2),
        (&["--bogus", "testdata/check/12-no-hooks"], 2),
    ];
    for (args, want) in cases {
        let out = check(args);
        assert_eq!(out.status.code(), Some(*want), "check {args:?}: {}{}", text(&out.stdout), text(&out.stderr));
    }
}

#[test]
fn json_is_one_document_with_the_plan() {
    let out = check(&["--json", "testdata/check/01-all-hooks"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["result"], "ok");
    let kinds: Vec<&str> = doc["hooks"].as_array().expect("hooks").iter().filter_map(|h| h["kind"].as_str()).collect();
    assert_eq!(kinds, ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]);
}

/// Issue 21: `features` prints the OCI features document as `runc features`
/// does, and `-info` the protobuf RuntimeInfo containerd 2.x reads on every
/// create (name, version, the options echoed, the features as JSON).
#[test]
fn features_and_info_describe_the_runtime() {
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::protobuf::Message;
    use std::io::Write;

    let out = Command::new(shim_binary()).arg("features").output().expect("features");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("features JSON");
    assert_eq!(doc["linux"]["cgroup"]["v2"], true, "{doc}");
    assert!(doc["hooks"].as_array().is_some_and(|h| h.len() == 6), "{doc}");

    let opts = Any { type_url: "containerd.runc.v1.Options".into(), ..Default::default() };
    let mut child = Command::new(shim_binary())
        .arg("-info")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("-info");
    child.stdin.take().expect("stdin").write_all(&opts.write_to_bytes().expect("encode")).expect("write");
    let out = child.wait_with_output().expect("-info output");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // RuntimeInfo: name = 1, features = 4 (an Any holding the JSON).
    let (mut name, mut features) = (String::new(), None);
    let varint = |b: &mut &[u8]| -> usize {
        let mut v = 0usize;
        for shift in (0..).step_by(7) {
            let byte = b[0];
            *b = &b[1..];
            v |= ((byte & 0x7f) as usize) << shift;
            if byte < 0x80 {
                break;
            }
        }
        v
    };
    let mut b = &out.stdout[..];
    while !b.is_empty() {
        let key = varint(&mut b);
        assert_eq!(key & 7, 2, "RuntimeInfo's fields are all length-delimited");
        let len = varint(&mut b);
        let (value, rest) = b.split_at(len);
        match key >> 3 {
            1 => name = text(value),
            4 => features = Some(Any::parse_from_bytes(value).expect("features Any")),
            _ => {}
        }
        b = rest;
    }
    assert_eq!(name, RUNTIME);
    let features = features.expect("features in RuntimeInfo");
    let info_doc: serde_json::Value = serde_json::from_slice(&features.value).expect("features JSON");
    assert_eq!(info_doc, doc);
}
