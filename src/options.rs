//! Runtime options containerd attaches to Create. containerd 1.6's client
//! sends runc's option types to every runtime; none of their settings that
//! name runc (BinaryName, Root, ...) mean anything here, so they are accepted
//! and ignored. Unknown types are logged, never fatal.

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options as RuncOptions;

const RUNC_V1: &str = "containerd.runc.v1.Options";
const RUNC_LEGACY: &str = "containerd.linux.runc.CreateOptions";
const CRI: &str = "runtimeoptions.v1.Options";

/// The bare type name, whether containerd prefixed it or not.
fn type_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

pub fn accept(options: Option<&Any>) -> Result<(), String> {
    let Some(any) = options.filter(|a| !a.type_url.is_empty()) else {
        return Ok(());
    };
    match type_name(&any.type_url) {
        RUNC_V1 => match RuncOptions::parse_from_bytes(&any.value) {
            Ok(o) if !o.binary_name.is_empty() => {
                log::debug!("ignoring runc option BinaryName={}", o.binary_name)
            }
            Ok(_) => {}
            Err(e) => log::warn!("ignoring malformed {RUNC_V1}: {e}"),
        },
        RUNC_LEGACY | CRI => {}
        other => log::warn!("ignoring runtime options of unknown type {other}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(url: &str, value: Vec<u8>) -> Any {
        Any { type_url: url.into(), value, ..Default::default() }
    }

    #[test]
    fn runc_and_cri_options_are_accepted() {
        let runc = RuncOptions { binary_name: "runc".into(), systemd_cgroup: false, ..Default::default() };
        let bytes = runc.write_to_bytes().expect("encode");
        assert!(accept(Some(&any("containerd.runc.v1.Options", bytes.clone()))).is_ok());
        assert!(accept(Some(&any("type.googleapis.com/containerd.runc.v1.Options", bytes))).is_ok());
        assert!(accept(Some(&any("containerd.linux.runc.CreateOptions", vec![8, 1]))).is_ok());
        assert!(accept(Some(&any("runtimeoptions.v1.Options", vec![]))).is_ok());
        assert!(accept(None).is_ok());
    }

    #[test]
    fn garbage_and_unknown_types_never_fail_create() {
        assert!(accept(Some(&any("containerd.runc.v1.Options", vec![0xff, 0xff, 0xff]))).is_ok());
        assert!(accept(Some(&any("example.com/Other", vec![1, 2, 3]))).is_ok());
    }
}
