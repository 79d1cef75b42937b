//! Lifecycle events reach containerd in order: create, start, exit, delete,
//! with TaskStart before TaskExit even for a process that exits at once.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn task_events_are_published_in_lifecycle_order() {
    let id = "ev-true";
    let mut events = ctr_spawn(&["events"]);
    std::thread::sleep(Duration::from_millis(300));
    let out = run_image(id, &[], &["/bin/true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = events.stdout.take().expect("events stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut topics = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !topics.contains(&"/tasks/delete".to_string()) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.contains(&format!("\"{id}\""))
                || line.contains(&format!("container_id:\"{id}\""))
                || line.contains(id)
            {
                if let Some(t) = line.split_whitespace().find(|w| w.starts_with("/tasks/")) {
                    topics.push(t.to_string());
                }
            }
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    assert_eq!(topics, ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"], "events seen for {id}");
}
