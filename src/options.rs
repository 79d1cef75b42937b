//! Runtime options containerd attaches to Create. containerd 1.6's client
//! sends runc's option types to every runtime; none of their settings that
//! name runc (BinaryName, Root, ...) mean anything here, so they are accepted
//! and ignored. Unknown types are logged, never fatal.

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::{CheckpointOptions, Options as RuncOptions};

const RUNC_V1: &str = "containerd.runc.v1.Options";
const RUNC_LEGACY: &str = "containerd.linux.runc.CreateOptions";
const CRI: &str = "runtimeoptions.v1.Options";

/// The bare type name, whether containerd prefixed it or not.
fn type_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// This shim's own settings, from containerd's runtime options.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ShimOptions {
    /// Mis-cased or misplaced hook keys fail Create instead of being warnings.
    pub hooks_strict: bool,
    /// runc's `ShimCgroup`: the cgroup the shim moves itself into (operators
    /// account shims apart from their pods).
    pub shim_cgroup: Option<String>,
}

/// Reads the options of a Create. runc's types are accepted and ignored;
/// CRI's and ctr's `runtimeoptions.v1.Options` (config_path = 2, config_body
/// = 3) point at our config, `{"hooks": {"strict": true}}`, which must parse.
pub fn parse(options: Option<&Any>) -> Result<ShimOptions, String> {
    let Some(any) = options.filter(|a| !a.type_url.is_empty()) else {
        return Ok(ShimOptions::default());
    };
    match type_name(&any.type_url) {
        RUNC_V1 => match RuncOptions::parse_from_bytes(&any.value) {
            Ok(o) => {
                if !o.binary_name.is_empty() {
                    log::debug!("ignoring runc option BinaryName={}", o.binary_name);
                }
                let shim_cgroup = Some(o.shim_cgroup).filter(|c| !c.is_empty());
                return Ok(ShimOptions { shim_cgroup, ..ShimOptions::default() });
            }
            Err(e) => log::warn!("ignoring malformed {RUNC_V1}: {e}"),
        },
        RUNC_LEGACY => {}
        CRI => return from_runtime_options(&any.value),
        other => log::warn!("ignoring runtime options of unknown type {other}"),
    }
    Ok(ShimOptions::default())
}

const CHECKPOINT_V1: &str = "containerd.runc.v1.CheckpointOptions";
const CHECKPOINT_LEGACY: &str = "containerd.linux.runc.CheckpointOptions";

/// The options of a Checkpoint. containerd's client sends runc's types to
/// every runtime (`container.Checkpoint` the v1 one, `WithCheckpointImagePath`
/// the legacy one); none at all means CRIU's defaults and the container left
/// running. The legacy type is the v1 one with image_path (8) and work_path
/// (9) swapped. Unlike a Create's, these options say what to do: a type we
/// cannot read is refused, not ignored.
pub fn checkpoint(options: Option<&Any>) -> Result<CheckpointOptions, String> {
    let Some(any) = options.filter(|a| !a.type_url.is_empty()) else {
        return Ok(CheckpointOptions::default());
    };
    let name = type_name(&any.type_url);
    let parsed = |bytes| CheckpointOptions::parse_from_bytes(bytes).map_err(|e| format!("{name}: {e}"));
    match name {
        CHECKPOINT_V1 => parsed(&any.value),
        CHECKPOINT_LEGACY => {
            let mut o = parsed(&any.value)?;
            std::mem::swap(&mut o.image_path, &mut o.work_path);
            Ok(o)
        }
        _ => Err(format!(
            "checkpoint options of unknown type {} (known: {CHECKPOINT_V1}, {CHECKPOINT_LEGACY})",
            any.type_url
        )),
    }
}

fn from_runtime_options(value: &[u8]) -> Result<ShimOptions, String> {
    let fields = crate::wire::length_delimited(value).ok_or_else(|| format!("{CRI}: not a protobuf message"))?;
    let (path, body) = (crate::wire::string_field(&fields, 2), crate::wire::string_field(&fields, 3));
    let (origin, text) = if !body.is_empty() {
        ("config_body".to_string(), body)
    } else if !path.is_empty() {
        let text = read_config(&path).map_err(|e| format!("{CRI}: config_path {path}: {e}"))?;
        (format!("config_path {path}"), text)
    } else {
        return Ok(ShimOptions::default());
    };
    config(&text).map_err(|e| format!("{CRI}: {origin}: {e}"))
}

/// A config file: a regular file of at most 1 MiB (a fifo or /dev/zero
/// named by mistake must not hang or swell the shim).
fn read_config(path: &str) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    const MAX: u64 = 1 << 20;
    // Looked at before it is opened: opening some devices acts (a watchdog
    // starts, a tty hangs up); O_NONBLOCK: a fifo swapped in meanwhile must
    // not wait for a writer.
    if !std::fs::metadata(path).map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".into());
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| e.to_string())?;
    let md = f.metadata().map_err(|e| e.to_string())?;
    if !md.is_file() {
        return Err("not a regular file".into());
    }
    let mut text = String::new();
    f.take(MAX + 1).read_to_string(&mut text).map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX {
        return Err(format!("larger than {MAX} bytes"));
    }
    Ok(text)
}

/// Our config: unknown keys are refused, since they are meant for us.
fn config(text: &str) -> Result<ShimOptions, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let top = v.as_object().ok_or("must be a JSON object")?;
    let mut out = ShimOptions::default();
    for (k, v) in top {
        match (k.as_str(), v) {
            ("hooks", serde_json::Value::Object(h)) => {
                for (k, v) in h {
                    match (k.as_str(), v.as_bool()) {
                        ("strict", Some(b)) => out.hooks_strict = b,
                        ("strict", None) => return Err("hooks.strict must be true or false".into()),
                        (other, _) => return Err(format!("hooks.{other} is not a setting (known: hooks.strict)")),
                    }
                }
            }
            ("hooks", _) => return Err("hooks must be an object".into()),
            (other, _) => return Err(format!("{other} is not a setting (known: hooks)")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(url: &str, value: Vec<u8>) -> Any {
        Any { type_url: url.into(), value, ..Default::default() }
    }

    fn pb(field: u64, s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        crate::wire::put_string(&mut v, field, s);
        v
    }

    #[test]
    fn runc_options_are_accepted_and_ignored() {
        let runc = RuncOptions { binary_name: "runc".into(), ..Default::default() };
        let bytes = runc.write_to_bytes().expect("encode");
        assert_eq!(parse(Some(&any("containerd.runc.v1.Options", bytes.clone()))), Ok(ShimOptions::default()));
        assert_eq!(
            parse(Some(&any("type.googleapis.com/containerd.runc.v1.Options", bytes))),
            Ok(ShimOptions::default())
        );
        assert_eq!(parse(Some(&any("containerd.linux.runc.CreateOptions", vec![8, 1]))), Ok(ShimOptions::default()));
        assert_eq!(parse(None), Ok(ShimOptions::default()));
        let with_cgroup = RuncOptions { shim_cgroup: "/system.slice/shims".into(), ..Default::default() };
        let parsed = parse(Some(&any(RUNC_V1, with_cgroup.write_to_bytes().expect("encode")))).expect("parse");
        assert_eq!(parsed.shim_cgroup.as_deref(), Some("/system.slice/shims"));
    }

    #[test]
    fn garbage_runc_options_and_unknown_types_never_fail_create() {
        assert!(parse(Some(&any("containerd.runc.v1.Options", vec![0xff, 0xff, 0xff]))).is_ok());
        assert!(parse(Some(&any("example.com/Other", vec![1, 2, 3]))).is_ok());
    }

    #[test]
    fn runtime_options_carry_our_config() {
        let body = [pb(1, "x"), pb(3, r#"{"hooks": {"strict": true}}"#)].concat();
        assert_eq!(parse(Some(&any(CRI, body))), Ok(ShimOptions { hooks_strict: true, ..Default::default() }));
        let path = std::env::temp_dir().join(format!("myshim-opts-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"hooks": {"strict": false}}"#).expect("write");
        let by_path = [pb(2, &path.to_string_lossy())].concat();
        assert_eq!(parse(Some(&any(CRI, by_path))), Ok(ShimOptions { hooks_strict: false, ..Default::default() }));
        std::fs::remove_file(&path).expect("cleanup");
        assert_eq!(parse(Some(&any(CRI, vec![]))), Ok(ShimOptions::default()));
    }

    #[test]
    fn malformed_runtime_options_are_refused_clearly() {
        let e = parse(Some(&any(CRI, [pb(3, "{nope")].concat()))).unwrap_err();
        assert!(e.starts_with("runtimeoptions.v1.Options: config_body: not JSON"), "{e}");
        let e = parse(Some(&any(CRI, [pb(3, r#"{"hooks": {"strickt": true}}"#)].concat()))).unwrap_err();
        assert_eq!(e, "runtimeoptions.v1.Options: config_body: hooks.strickt is not a setting (known: hooks.strict)");
        let e = parse(Some(&any(CRI, [pb(2, "/no/such/myshim.json")].concat()))).unwrap_err();
        assert!(e.contains("config_path /no/such/myshim.json: No such file"), "{e}");
        assert!(parse(Some(&any(CRI, vec![0x0f]))).unwrap_err().contains("not a protobuf message"));
    }

    #[test]
    fn checkpoint_options_of_either_runc_type_are_read() {
        let v1 = CheckpointOptions {
            exit: true,
            file_locks: true,
            image_path: "/img".into(),
            work_path: "/work".into(),
            ..Default::default()
        };
        let bytes = v1.write_to_bytes().expect("encode");
        let o = checkpoint(Some(&any("type.googleapis.com/containerd.runc.v1.CheckpointOptions", bytes.clone())))
            .expect("v1");
        assert!(o.exit && o.file_locks && !o.open_tcp);
        assert_eq!((o.image_path.as_str(), o.work_path.as_str()), ("/img", "/work"));
        // The same bytes as the legacy type: 8 is its work path, 9 its image path.
        let o = checkpoint(Some(&any(CHECKPOINT_LEGACY, bytes))).expect("legacy");
        assert_eq!((o.image_path.as_str(), o.work_path.as_str()), ("/work", "/img"));
        assert_eq!(checkpoint(None), Ok(CheckpointOptions::default()));
    }

    #[test]
    fn checkpoint_options_that_cannot_be_read_are_refused() {
        let e = checkpoint(Some(&any("example.com/Other", vec![]))).unwrap_err();
        assert!(e.starts_with("checkpoint options of unknown type example.com/Other"), "{e}");
        let e = checkpoint(Some(&any(CHECKPOINT_V1, vec![0xff, 0xff, 0xff]))).unwrap_err();
        assert!(e.starts_with("containerd.runc.v1.CheckpointOptions: "), "{e}");
    }

    /// A config_path naming a device or a fifo: refused, neither read
    /// forever nor waited on.
    #[test]
    fn config_paths_must_name_a_regular_file() {
        let e = parse(Some(&any(CRI, [pb(2, "/dev/zero")].concat()))).unwrap_err();
        assert!(e.ends_with("config_path /dev/zero: not a regular file"), "{e}");
        let fifo = std::env::temp_dir().join(format!("myshim-opts-fifo-{}", std::process::id()));
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let e = parse(Some(&any(CRI, [pb(2, &fifo.to_string_lossy())].concat()))).unwrap_err();
        assert!(e.ends_with("not a regular file"), "{e}");
        std::fs::remove_file(&fifo).expect("cleanup");
    }
}
