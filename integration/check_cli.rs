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
