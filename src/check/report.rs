//! What `check` finds, and its two renderings. Built from the same lint,
//! parser, value checks (spec) and hook plan (hooks::Kind) that Create uses,
//! so the explanation cannot drift from the behaviour.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hooks, Spec};
use serde_json::{json, Value};

use crate::hooks::{self, Kind, Where};
use crate::spec::{self, Severity};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// JSON path of what is wrong, `$` for the file as a whole.
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct PlannedHook {
    pub kind: Kind,
    pub index: usize,
    pub path: PathBuf,
    pub args: Vec<String>,
    /// Where the executable was looked for, as this machine sees it.
    pub checked: PathBuf,
    pub exists: bool,
    pub executable: bool,
    pub timeout_secs: u64,
    pub timeout_default: bool,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub config: PathBuf,
    pub errors: Vec<Item>,
    pub warnings: Vec<Item>,
    pub hooks: Vec<PlannedHook>,
    /// Whether Checkpoint can dump its container (None: the config does
    /// not parse): why not, if it cannot.
    pub checkpoint: Option<Result<(), &'static str>>,
}

fn item(path: &str, message: String) -> Item {
    Item { path: path.to_string(), message }
}

/// The JSON path a spec error message starts with (`a.b[0]: ...`).
fn path_of(message: &str) -> String {
    match message.split_once(": ") {
        Some((p, _)) if !p.contains(' ') => p.to_string(),
        _ => "$".to_string(),
    }
}

/// `target` is a bundle directory or a config.json.
pub fn build(target: &str) -> Report {
    let target = Path::new(target);
    let config = if target.is_dir() { target.join("config.json") } else { target.to_path_buf() };
    let bundle = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut r = Report {
        config: config.clone(),
        errors: Vec::new(),
        warnings: Vec::new(),
        hooks: Vec::new(),
        checkpoint: None,
    };
    let bytes = match std::fs::read(&config) {
        Ok(b) => b,
        Err(e) => {
            r.errors.push(item("$", format!("read {}: {e}", config.display())));
            return r;
        }
    };
    let raw: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            r.errors.push(item("$", format!("not JSON: {e}")));
            return r;
        }
    };
    for f in spec::lint::lint(&raw) {
        let list = if f.severity == Severity::Error { &mut r.errors } else { &mut r.warnings };
        list.push(item(&f.path, f.message));
    }
    // Create's own validation; the raw-key errors above are already listed.
    let spec = match spec::parse(&bytes) {
        Ok(loaded) => {
            // What only the typed config shows (ambient capabilities).
            for f in loaded.warnings {
                if !r.warnings.iter().any(|i| i.message == f.message) {
                    r.warnings.push(item(&f.path, f.message));
                }
            }
            Some(loaded.spec)
        }
        Err(e) => {
            let message = e.to_string();
            if !r.errors.iter().any(|i| i.message == message) {
                r.errors.push(item(&path_of(&message), message));
            }
            None
        }
    };
    r.checkpoint = spec.as_ref().map(|s| crate::runtime::criu::dump::unsupported(s).map_or(Ok(()), Err));
    // The plan even when something else is wrong: hooks parse on their own.
    let hooks: Option<Hooks> = raw.get("hooks").and_then(|h| serde_json::from_value(h.clone()).ok());
    let rootfs = match &spec {
        Some(s) => spec::rootfs_path(s, &bundle),
        None => bundle.join(raw.pointer("/root/path").and_then(Value::as_str).unwrap_or("rootfs")),
    };
    let binds = bind_mounts(&raw);
    if let Some(h) = hooks {
        let as_spec = Spec::default().set_hooks(Some(h)).clone();
        for (kind, index, hook) in hooks::planned(&as_spec, &Kind::ALL) {
            r.hooks.push(plan_one(kind, index, hook, &rootfs, &binds));
        }
    }
    for h in &r.hooks {
        if let Some(problem) = missing(h) {
            let at = format!("hooks.{}[{}].path", h.kind.key(), h.index);
            let list = if h.kind.fatal() { &mut r.errors } else { &mut r.warnings };
            list.push(item(&at, format!("{at}: {problem}")));
        }
    }
    r
}

/// The config's bind mounts (destination, source), deepest destination
/// first: a startContainer hook may come from one of them.
fn bind_mounts(raw: &Value) -> Vec<(PathBuf, PathBuf)> {
    let mut binds: Vec<(PathBuf, PathBuf)> = raw["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["type"] == "bind"
                || m["options"].as_array().is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
        })
        .filter_map(|m| Some((PathBuf::from(m["destination"].as_str()?), PathBuf::from(m["source"].as_str()?))))
        .collect();
    binds.sort_by_key(|(d, _)| std::cmp::Reverse(d.components().count()));
    binds
}

/// Where a path inside the container is on this machine: under a bind
/// mount, in its source; else in the rootfs.
fn in_container(path: &Path, rootfs: &Path, binds: &[(PathBuf, PathBuf)]) -> PathBuf {
    for (dest, source) in binds {
        if let Ok(rest) = path.strip_prefix(dest) {
            return if rest.as_os_str().is_empty() { source.clone() } else { source.join(rest) };
        }
    }
    crate::runtime::init::rootfs::resolve_in_root(rootfs, path)
        .unwrap_or_else(|_| rootfs.join(path.strip_prefix("/").unwrap_or(path)))
}

fn plan_one(
    kind: Kind,
    index: usize,
    hook: &oci_spec::runtime::Hook,
    rootfs: &Path,
    binds: &[(PathBuf, PathBuf)],
) -> PlannedHook {
    let checked = match kind.path_in() {
        Where::Runtime => hook.path().clone(),
        Where::Container => in_container(hook.path(), rootfs, binds),
    };
    let exists = checked.exists();
    let default = hooks::run::DEFAULT_TIMEOUT.as_secs();
    PlannedHook {
        kind,
        index,
        path: hook.path().clone(),
        args: hook.args().clone().unwrap_or_default(),
        exists,
        executable: crate::sys::is_executable(&checked),
        checked,
        timeout_secs: hook.timeout().map_or(default, |t| t.max(0) as u64),
        timeout_default: hook.timeout().is_none(),
    }
}

/// Why the hook could not be executed where it will be looked up, if so.
fn missing(h: &PlannedHook) -> Option<String> {
    if !h.path.is_absolute() {
        return None; // already an error of its own; where would it be looked up?
    }
    let consequence = h.kind.on_failure();
    let place = match h.kind.path_in() {
        Where::Runtime => "on the host".to_string(),
        Where::Container => format!("in the container ({})", h.checked.display()),
    };
    if !h.exists {
        Some(format!("{} does not exist {place}: {consequence}", h.path.display()))
    } else if !h.executable {
        Some(format!("{} is not an executable file {place}: {consequence}", h.path.display()))
    } else {
        None
    }
}

fn where_name(w: Where) -> &'static str {
    match w {
        Where::Runtime => "runtime",
        Where::Container => "container",
    }
}

impl Report {
    pub fn exit_code(&self, strict: bool) -> i32 {
        if !self.errors.is_empty() {
            2
        } else if strict && !self.warnings.is_empty() {
            1
        } else {
            0
        }
    }

    pub fn text(&self) -> String {
        let mut out = format!("config: {}\n", self.config.display());
        for (label, list) in [("error", &self.errors), ("warning", &self.warnings)] {
            for i in list {
                out += &format!("{label}: {}\n", i.message);
            }
        }
        if self.hooks.is_empty() {
            out += "hooks: none\n";
        } else {
            out += "hooks, in the order they run:\n";
        }
        for (n, h) in self.hooks.iter().enumerate() {
            let state = match (h.exists, h.executable) {
                (false, _) => "missing",
                (true, false) => "not executable",
                (true, true) => "exists, executable",
            };
            let looked_up = match h.kind.path_in() {
                Where::Runtime => format!("on the host: {} ({state})", h.checked.display()),
                Where::Container => format!("in the container, here: {} ({state})", h.checked.display()),
            };
            let args = if h.args.is_empty() { String::new() } else { format!(" args {:?}", h.args) };
            let default = if h.timeout_default { " (default)" } else { "" };
            out += &format!(
                "{:>3}. {}[{}] {}{args}\n       when:       {}\n       namespaces: {}\n       \
                 path:       looked up {looked_up}\n       state:      status {:?}\n       \
                 timeout:    {} s{default}\n       on failure: {}\n",
                n + 1,
                h.kind.key(),
                h.index,
                h.path.display(),
                h.kind.when(),
                match h.kind.runs_in() {
                    Where::Runtime => "runtime (the shim's, on the host)",
                    Where::Container => "the container's (joined with setns)",
                },
                h.kind.status(),
                h.timeout_secs,
                h.kind.on_failure(),
            );
        }
        match self.checkpoint {
            Some(Ok(())) => out += "checkpoint: possible, through CRIU (criu on the host)\n",
            Some(Err(why)) => out += &format!("checkpoint: not possible: {why}\n"),
            None => {}
        }
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        out += &match (self.errors.len(), self.warnings.len()) {
            (0, 0) => "result: ok\n".to_string(),
            (e, w) => format!("result: {}, {}\n", plural(e, "error"), plural(w, "warning")),
        };
        out
    }

    /// The document `--json` prints; README "check --json" describes it.
    pub fn json(&self) -> String {
        let items = |l: &[Item]| l.iter().map(|i| json!({"path": i.path, "message": i.message})).collect::<Vec<_>>();
        let hooks: Vec<Value> = self
            .hooks
            .iter()
            .map(|h| {
                json!({
                    "kind": h.kind.key(),
                    "index": h.index,
                    "path": h.path,
                    "args": h.args,
                    "rpc": h.kind.rpc(),
                    "when": h.kind.when(),
                    "namespaces": where_name(h.kind.runs_in()),
                    "path_resolved_in": where_name(h.kind.path_in()),
                    "path_checked": h.checked,
                    "exists": h.exists,
                    "executable": h.executable,
                    "status": h.kind.status(),
                    "timeout_seconds": h.timeout_secs,
                    "timeout_is_default": h.timeout_default,
                    "fatal": h.kind.fatal(),
                    "on_failure": h.kind.on_failure(),
                })
            })
            .collect();
        let doc = json!({
            "version": 1,
            "config": self.config,
            "result": match self.exit_code(false) { 2 => "errors", _ if !self.warnings.is_empty() => "warnings", _ => "ok" },
            "errors": items(&self.errors),
            "warnings": items(&self.warnings),
            "hooks": hooks,
            "checkpoint": self.checkpoint.map(|c| json!({"possible": c.is_ok(), "why_not": c.err()})),
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// testdata/check/*/: config.json (and what it needs), expected.txt and
    /// expected.json. MYSHIM_BLESS=1 rewrites the expectations.
    #[test]
    fn golden_outputs() {
        let mut cases: Vec<PathBuf> = std::fs::read_dir("testdata/check")
            .expect("testdata/check")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.is_dir())
            .collect();
        cases.sort();
        assert!(cases.len() >= 12, "only {} golden configs", cases.len());
        let bless = std::env::var_os("MYSHIM_BLESS").is_some();
        let mut wrong = Vec::new();
        for dir in cases {
            let r = build(&dir.to_string_lossy());
            for (file, got) in [("expected.txt", r.text()), ("expected.json", r.json())] {
                let path = dir.join(file);
                if bless {
                    std::fs::write(&path, &got).expect("bless");
                    continue;
                }
                let want = std::fs::read_to_string(&path).unwrap_or_default();
                if want != got {
                    wrong.push(format!("{}:\n--- want\n{want}--- got\n{got}", path.display()));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn container_paths_follow_bind_mounts_then_the_rootfs() {
        let binds = vec![
            (PathBuf::from("/opt/hooks/deep"), PathBuf::from("/srv/deep")),
            (PathBuf::from("/opt/hooks"), PathBuf::from("/srv/hooks")),
        ];
        let root = Path::new("/b/rootfs");
        assert_eq!(in_container(Path::new("/opt/hooks/deep/x"), root, &binds), PathBuf::from("/srv/deep/x"));
        assert_eq!(in_container(Path::new("/opt/hooks/y"), root, &binds), PathBuf::from("/srv/hooks/y"));
        assert_eq!(in_container(Path::new("/opt/other"), root, &binds), PathBuf::from("/b/rootfs/opt/other"));
    }

    #[test]
    fn paths_of_messages() {
        assert_eq!(path_of("linux.namespaces[1].type: unknown variant"), "linux.namespaces[1].type");
        assert_eq!(path_of("config.json must be a JSON object"), "$");
    }
}
