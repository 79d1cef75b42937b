//! Checks the raw config.json keys before serde drops what it does not know.
//! A mis-cased key that would weaken isolation (`"Linux"` would silently mean
//! "no namespaces") is an error; any other unknown key is ignored as the spec
//! requires, but never silently.

use serde_json::Value;

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

use super::schema::{Shape, CONFIG, HOME, SECURITY};

pub fn lint(raw: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    if !raw.is_object() {
        out.push(Finding {
            severity: Severity::Error,
            path: "$".into(),
            message: "config.json must be a JSON object".into(),
        });
        return out;
    }
    walk(raw, &CONFIG, "", &mut out);
    out
}

/// `prefix` is the JSON path of `value` with a trailing dot, or empty at
/// the top.
fn walk(value: &Value, shape: &Shape, prefix: &str, out: &mut Vec<Finding>) {
    match (shape, value) {
        (Shape::Obj(fields), Value::Object(obj)) => {
            for (key, child) in obj {
                match fields.iter().find(|(k, _)| k == key) {
                    Some((_, s)) => walk(child, s, &format!("{prefix}{key}."), out),
                    None => out.push(unknown(key, prefix, fields)),
                }
            }
        }
        (Shape::Arr(item), Value::Array(items)) => {
            let base = prefix.strip_suffix('.').unwrap_or(prefix);
            for (i, v) in items.iter().enumerate() {
                walk(v, item, &format!("{base}[{i}]."), out);
            }
        }
        _ => {}
    }
}

fn unknown(key: &str, prefix: &str, fields: &[(&str, Shape)]) -> Finding {
    let path = format!("{prefix}{key}");
    let finding = |severity, message| Finding { severity, path: path.clone(), message };
    if !prefix.is_empty() && key.eq_ignore_ascii_case("hooks") {
        return finding(
            Severity::Warning,
            format!("{path} is not where OCI hooks go and will not run; did you mean hooks (top level)?"),
        );
    }
    if let Some((right, _)) = fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
        let fix = format!("{prefix}{right}");
        return if prefix == "hooks." {
            finding(Severity::Warning, format!("{path} is not an OCI hook and will not run; did you mean {fix}?"))
        } else if SECURITY.contains(right) {
            finding(
                Severity::Error,
                format!("{path} is not an OCI key and would be ignored, weakening the container; did you mean {fix}?"),
            )
        } else {
            finding(Severity::Warning, format!("{path} is not an OCI key and is ignored; did you mean {fix}?"))
        };
    }
    if let Some((_, home)) = HOME.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
        return finding(
            Severity::Error,
            format!(
                "{path} is not where OCI puts it and would be ignored, weakening the container; did you mean {home}?"
            ),
        );
    }
    finding(Severity::Warning, format!("{path} is not an OCI key and is ignored"))
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
