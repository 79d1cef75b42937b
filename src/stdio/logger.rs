//! `binary:///path?k=v` stdio: the logging binary, started as containerd's
//! shims start it: pipes on its fds 3 and 4, readiness on fd 5,
//! CONTAINER_ID and CONTAINER_NAMESPACE in its env.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use super::Owner;

/// `binary:///path?k=v&flag`: the path, and the query as arguments
/// (`k v flag`), percent-decoded.
pub fn logger_command(rest: &str) -> Result<(String, Vec<String>), String> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = percent_decode(path)?;
    if !path.starts_with('/') {
        return Err("binary:// needs an absolute path".into());
    }
    let mut args = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        args.push(percent_decode(k)?);
        if !v.is_empty() {
            args.push(percent_decode(v)?);
        }
    }
    Ok((path, args))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(hex.ok_or_else(|| format!("bad percent escape in {s:?}"))?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// Starts the logging binary; returns the container's ends of the stdout
/// and stderr pipes, the binary's pid and the read end of its ready pipe.
pub(super) fn start(rest: &str, owner: &Owner) -> Result<(OwnedFd, OwnedFd, u32, OwnedFd), String> {
    use std::os::fd::AsFd;
    let (path, args) = logger_command(rest)?;
    std::fs::metadata(&path).map_err(|e| format!("logging binary {path}: {e}"))?;
    if !crate::sys::is_executable(Path::new(&path)) {
        return Err(format!("logging binary {path}: not an executable file"));
    }
    let (out_r, out_w) = crate::sys::pipe().map_err(|e| e.to_string())?;
    let (err_r, err_w) = crate::sys::pipe().map_err(|e| e.to_string())?;
    let (ready_r, ready_w) = crate::sys::pipe().map_err(|e| e.to_string())?;
    // Sources above 5, so the child's dup2 onto 3, 4, 5 cannot clobber one.
    let high = [&out_r, &err_r, &ready_w]
        .iter()
        .map(|f| crate::sys::dup_above(f.as_fd().as_raw_fd(), 6))
        .collect::<std::io::Result<Vec<OwnedFd>>>()
        .map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(&path);
    cmd.args(&args)
        .env_clear()
        .env("CONTAINER_ID", owner.id)
        .env("CONTAINER_NAMESPACE", owner.namespace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let child = crate::sys::spawn_with_fds(&mut cmd, high.iter().map(|f| f.as_raw_fd()).collect())
        .map_err(|e| format!("start logging binary {path}: {e}"))?;
    drop((high, out_r, err_r, ready_w));
    Ok((out_w, err_w, child.id(), ready_r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logger_uris_become_a_path_and_arguments() {
        assert_eq!(
            logger_command("/usr/bin/log?tag=web%201&debug").expect("ok"),
            ("/usr/bin/log".to_string(), vec!["tag".to_string(), "web 1".to_string(), "debug".to_string()])
        );
        assert_eq!(logger_command("/l").expect("ok"), ("/l".to_string(), vec![]));
        assert!(logger_command("relative").is_err());
        assert!(logger_command("/l?x=%zz").is_err());
    }
}
