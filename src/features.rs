//! What this runtime supports, as the OCI runtime spec's features document
//! (features.md) says it: `features` prints it as JSON (as `runc features`
//! does), and `-info` hands it to containerd inside a protobuf RuntimeInfo
//! (containerd 2.x asks on every create, and decides e.g. on idmapped
//! mounts from it).

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use serde_json::json;

pub const RUNTIME_NAME: &str = "io.containerd.myshim.v2";
const FEATURES_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// The features document, checked against oci-spec's own type so every key
/// is one containerd reads.
pub fn document() -> Result<oci_spec::runtime::Features, String> {
    let doc = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": crate::mountopts::KNOWN,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
            "capabilities": crate::runtime::init::caps::all_names(),
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                               "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                   "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
            },
            "apparmor": {"enabled": true},
            // Labels are refused where SELinux is enabled: not applied yet.
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            // No idmapped mounts: containerd must not hand us any.
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        // As runc's org.opencontainers.runc.checkpoint.enabled; what a dump
        // refuses is said by `check`, and in the README.
        "annotations": {
            "io.containerd.myshim.checkpoint.enabled": "true",
            "io.containerd.myshim.checkpoint.unsupported": "user namespaces"
        }
    });
    serde_json::from_value(doc).map_err(|e| format!("features: {e}"))
}

/// `features`: the document as JSON.
pub fn json() -> Result<Vec<u8>, String> {
    let mut out = serde_json::to_vec_pretty(&document()?).map_err(|e| e.to_string())?;
    out.push(b'\n');
    Ok(out)
}

/// `-info`: containerd's RuntimeInfo (name 1, version 2 {version 1,
/// revision 2}, options 3: the Any containerd wrote on stdin, echoed,
/// features 4: the document as JSON in an Any).
pub fn runtime_info(options: &[u8]) -> Result<Vec<u8>, String> {
    let features = Any {
        type_url: FEATURES_TYPE.into(),
        value: serde_json::to_vec(&document()?).map_err(|e| e.to_string())?,
        ..Default::default()
    };
    let mut version = Vec::new();
    crate::wire::put_string(&mut version, 1, env!("CARGO_PKG_VERSION"));
    let mut out = Vec::new();
    crate::wire::put_string(&mut out, 1, RUNTIME_NAME);
    crate::wire::put_bytes(&mut out, 2, &version);
    if !options.is_empty() {
        Any::parse_from_bytes(options).map_err(|e| format!("-info: the options on stdin: {e}"))?;
        crate::wire::put_bytes(&mut out, 3, options);
    }
    crate::wire::put_bytes(&mut out, 4, &features.write_to_bytes().map_err(|e| e.to_string())?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_what_is_supported() {
        let d = document().expect("valid");
        let v = serde_json::to_value(&d).expect("json");
        assert_eq!(v["hooks"].as_array().map(Vec::len), Some(6));
        assert_eq!(v["linux"]["cgroup"]["systemd"], true);
        assert_eq!(v["linux"]["mountExtensions"]["idmap"]["enabled"], false);
        assert_eq!(v["annotations"]["io.containerd.myshim.checkpoint.enabled"], "true");
        assert!(v["linux"]["capabilities"].as_array().is_some_and(|c| c.iter().any(|x| x == "CAP_SYS_ADMIN")));
        assert!(v["mountOptions"].as_array().is_some_and(|m| m.iter().any(|x| x == "rbind")));
    }

    #[test]
    fn runtime_info_is_the_protobuf_containerd_reads() {
        let opts = Any { type_url: "containerd.runc.v1.Options".into(), ..Default::default() };
        let opts = opts.write_to_bytes().expect("encode");
        let out = runtime_info(&opts).expect("info");
        let fields = crate::wire::length_delimited(&out).expect("a message");
        assert_eq!(crate::wire::string_field(&fields, 1), RUNTIME_NAME);
        let version = fields.iter().find(|(n, _)| *n == 2).map(|(_, v)| *v).expect("version");
        let version = crate::wire::length_delimited(version).expect("RuntimeVersion");
        assert_eq!(crate::wire::string_field(&version, 1), env!("CARGO_PKG_VERSION"));
        assert_eq!(fields.iter().find(|(n, _)| *n == 3).map(|(_, v)| *v), Some(&opts[..]));
        let features = fields.iter().find(|(n, _)| *n == 4).map(|(_, v)| *v).expect("features");
        let any = Any::parse_from_bytes(features).expect("Any");
        assert_eq!(any.type_url, FEATURES_TYPE);
        let doc: oci_spec::runtime::Features = serde_json::from_slice(&any.value).expect("the features JSON");
        assert_eq!(doc, document().expect("valid"));
        assert!(runtime_info(&[0xff, 0xff]).is_err(), "garbage options are refused");
        assert!(runtime_info(&[]).is_ok());
    }
}
