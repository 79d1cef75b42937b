//! What a failed CRIU run says about itself: the error lines of its log
//! (with the line before each, which often names what it was doing), or its
//! last lines when none says "Error", bounded so that an RPC error stays
//! readable.

use std::path::Path;

const MAX: usize = 2048;

/// The excerpt of the log at `path`, empty if it cannot be read.
pub fn excerpt(path: &Path) -> String {
    std::fs::read(path).map(|b| excerpt_of(&String::from_utf8_lossy(&b))).unwrap_or_default()
}

fn excerpt_of(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let mut keep = vec![false; lines.len()];
    for (i, line) in lines.iter().enumerate() {
        if line.contains("Error") {
            keep[i.saturating_sub(1)] = true;
            keep[i] = true;
        }
    }
    if !keep.contains(&true) {
        let from = lines.len().saturating_sub(5);
        keep[from..].iter_mut().for_each(|k| *k = true);
    }
    let mut out = String::new();
    // The last lines are kept when it is too long: criu's final error is
    // the one that ended it.
    for line in lines.iter().zip(&keep).filter(|(_, k)| **k).map(|(l, _)| l.trim()).rev() {
        if out.len() + line.len() + 1 > MAX {
            break;
        }
        out = if out.is_empty() { line.to_string() } else { format!("{line}\n{out}") };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_and_the_line_before_each_are_kept() {
        let log = "(00.001) one\n(00.002) dumping fd 3\n(00.003) Error (criu/files.c:1): bad fd\n(00.004) four\n";
        assert_eq!(excerpt_of(log), "(00.002) dumping fd 3\n(00.003) Error (criu/files.c:1): bad fd");
    }

    #[test]
    fn without_an_error_line_the_end_is_kept() {
        let log: String = (0..9).map(|i| format!("line {i}\n")).collect();
        assert_eq!(excerpt_of(&log), "line 4\nline 5\nline 6\nline 7\nline 8");
        assert_eq!(excerpt_of(""), "");
    }

    #[test]
    fn a_long_excerpt_keeps_its_last_errors() {
        let log: String = (0..500).map(|i| format!("Error {i} {}\n", "x".repeat(40))).collect();
        let e = excerpt_of(&log);
        assert!(e.len() <= MAX, "{}", e.len());
        assert!(e.ends_with(&format!("Error 499 {}", "x".repeat(40))), "{e}");
    }
}
