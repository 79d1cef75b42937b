//! Checks the raw config.json keys before serde drops what it does not know.
//! A mis-cased key that would weaken isolation (`"Linux"` would silently mean
//! "no namespaces") is an error; any other unknown key is ignored as the spec
//! requires, but never silently.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// JSON path of the offending key, e.g. `hooks.Poststart`.
    pub path: String,
    pub message: String,
}

impl Finding {
    /// Whether the finding is a hook that will not run: a key under `hooks`,
    /// or hooks placed where they do not go (`process.hooks`, `Hooks`, ...).
    pub fn about_hooks(&self) -> bool {
        self.path.starts_with("hooks.") || self.path.rsplit('.').next().is_some_and(|k| k.eq_ignore_ascii_case("hooks"))
    }
}

const TOP: &[&str] = &[
    "ociVersion",
    "root",
    "mounts",
    "process",
    "hostname",
    "domainname",
    "hooks",
    "annotations",
    "linux",
    "solaris",
    "windows",
    "vm",
    "zos",
];
const PROCESS: &[&str] = &[
    "terminal",
    "consoleSize",
    "user",
    "args",
    "commandLine",
    "env",
    "cwd",
    "capabilities",
    "rlimits",
    "noNewPrivileges",
    "apparmorProfile",
    "oomScoreAdj",
    "selinuxLabel",
    "ioPriority",
    "scheduler",
    "execCPUAffinity",
];
const LINUX: &[&str] = &[
    "namespaces",
    "uidMappings",
    "gidMappings",
    "timeOffsets",
    "devices",
    "netDevices",
    "cgroupsPath",
    "rootfsPropagation",
    "seccomp",
    "sysctl",
    "resources",
    "intelRdt",
    "personality",
    "maskedPaths",
    "readonlyPaths",
    "mountLabel",
    "memoryPolicy",
];
const ROOT: &[&str] = &["path", "readonly"];
const USER: &[&str] = &["uid", "gid", "umask", "additionalGids", "username"];
const CAPS: &[&str] = &["bounding", "effective", "inheritable", "permitted", "ambient"];
pub const HOOK_KINDS: &[&str] =
    &["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];
const HOOK: &[&str] = &["path", "args", "env", "timeout"];

/// Keys whose loss would give a weaker container than the user asked for.
const SECURITY: &[&str] = &[
    "linux",
    "process",
    "root",
    "mounts",
    "namespaces",
    "seccomp",
    "capabilities",
    "noNewPrivileges",
    "apparmorProfile",
    "selinuxLabel",
    "maskedPaths",
    "readonlyPaths",
    "devices",
    "resources",
    "uidMappings",
    "gidMappings",
    "user",
    "rlimits",
    "readonly",
    "uid",
    "gid",
    "additionalGids",
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
    "cgroupsPath",
    "sysctl",
    "rootfsPropagation",
];

pub fn lint(raw: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(top) = raw.as_object() else {
        out.push(Finding {
            severity: Severity::Error,
            path: "$".into(),
            message: "config.json must be a JSON object".into(),
        });
        return out;
    };
    check_keys(top, "", TOP, &mut out);
    if let Some(p) = top.get("process").and_then(Value::as_object) {
        check_keys(p, "process.", PROCESS, &mut out);
        misplaced_hooks(p, "process.", &mut out);
        if let Some(u) = p.get("user").and_then(Value::as_object) {
            check_keys(u, "process.user.", USER, &mut out);
        }
        if let Some(c) = p.get("capabilities").and_then(Value::as_object) {
            check_keys(c, "process.capabilities.", CAPS, &mut out);
        }
    }
    if let Some(l) = top.get("linux").and_then(Value::as_object) {
        check_keys(l, "linux.", LINUX, &mut out);
        misplaced_hooks(l, "linux.", &mut out);
    }
    if let Some(r) = top.get("root").and_then(Value::as_object) {
        check_keys(r, "root.", ROOT, &mut out);
    }
    if let Some(h) = top.get("hooks").and_then(Value::as_object) {
        check_keys(h, "hooks.", HOOK_KINDS, &mut out);
        for kind in HOOK_KINDS {
            if let Some(list) = h.get(*kind).and_then(Value::as_array) {
                for (i, hook) in list.iter().enumerate() {
                    if let Some(obj) = hook.as_object() {
                        check_keys(obj, &format!("hooks.{kind}[{i}]."), HOOK, &mut out);
                    }
                }
            }
        }
    }
    out
}

fn check_keys(obj: &Map<String, Value>, prefix: &str, known: &[&str], out: &mut Vec<Finding>) {
    for key in obj.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        let path = format!("{prefix}{key}");
        let suggestion = known.iter().find(|k| k.eq_ignore_ascii_case(key));
        let finding = match suggestion {
            Some(right) if SECURITY.contains(right) => Finding {
                severity: Severity::Error,
                message: format!(
                    "{path} is not an OCI key and would be ignored, weakening the container; did you mean {prefix}{right}?"
                ),
                path,
            },
            Some(right) if HOOK_KINDS.contains(right) => Finding {
                severity: Severity::Warning,
                message: format!("{path} is not an OCI hook and will not run; did you mean {prefix}{right}?"),
                path,
            },
            Some(right) => Finding {
                severity: Severity::Warning,
                message: format!("{path} is not an OCI key and is ignored; did you mean {prefix}{right}?"),
                path,
            },
            None => Finding { severity: Severity::Warning, message: format!("{path} is not an OCI key and is ignored"), path },
        };
        out.push(finding);
    }
}

fn misplaced_hooks(obj: &Map<String, Value>, prefix: &str, out: &mut Vec<Finding>) {
    if let Some(key) = obj.keys().find(|k| k.eq_ignore_ascii_case("hooks")) {
        // check_keys already reported it as unknown; replace that with the specific advice.
        out.retain(|f| f.path != format!("{prefix}{key}"));
        out.push(Finding {
            severity: Severity::Warning,
            path: format!("{prefix}{key}"),
            message: format!(
                "{prefix}{key} is not where OCI hooks go and will not run; did you mean hooks (top level)?"
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(v: Value) -> Finding {
        let f = lint(&v);
        assert_eq!(f.len(), 1, "{f:?}");
        f[0].clone()
    }

    #[test]
    fn miscased_linux_is_an_error() {
        let f = one(json!({"ociVersion": "1.0.2", "Linux": {}}));
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(f.path, "Linux");
        assert!(f.message.contains("did you mean linux?"), "{}", f.message);
    }

    #[test]
    fn miscased_namespaces_and_capabilities_are_errors() {
        let f = lint(&json!({"linux": {"Namespaces": []}, "process": {"Capabilities": {}}}));
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|f| f.severity == Severity::Error));
    }

    #[test]
    fn miscased_hook_is_a_warning_with_the_fix() {
        let f = one(json!({"hooks": {"Poststart": []}}));
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(f.message, "hooks.Poststart is not an OCI hook and will not run; did you mean hooks.poststart?");
    }

    #[test]
    fn hook_findings_know_they_are_about_hooks() {
        for (config, about_hooks) in [
            (json!({"hooks": {"Poststart": []}}), true),
            (json!({"hooks": {"poststart": [{"Path": "/x"}]}}), true),
            (json!({"process": {"hooks": {}}}), true),
            (json!({"Hooks": {}}), true),
            (json!({"process": {"Terminal": true}}), false),
        ] {
            let f = one(config.clone());
            assert_eq!(f.about_hooks(), about_hooks, "{config}: {f:?}");
        }
    }

    #[test]
    fn hooks_under_process_are_a_warning() {
        let f = one(json!({"process": {"hooks": {}}}));
        assert_eq!(f.path, "process.hooks");
        assert!(f.message.contains("will not run"));
    }

    #[test]
    fn unknown_keys_warn_and_valid_keys_pass() {
        assert!(lint(&json!({"ociVersion": "1", "process": {"args": ["x"]}, "linux": {"namespaces": []}})).is_empty());
        let f = one(json!({"myExtension": 1}));
        assert_eq!(f.severity, Severity::Warning);
    }

    #[test]
    fn non_object_is_an_error() {
        assert_eq!(one(json!([1])).severity, Severity::Error);
    }
}
