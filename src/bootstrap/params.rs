//! What containerd writes on `start`'s stdin, and how we answer.
//!
//! - containerd 1.6–2.2: nothing, or its runtime options as a protobuf `Any`
//!   (also sent again with Create, so ignored here); the answer is the plain
//!   address (2.x also takes `{"version":..,"address":..,"protocol":..}`).
//! - containerd >= 2.3: `containerd.runtime.bootstrap.v1.BootstrapParams` as
//!   protobuf, answered with a protobuf `BootstrapResult`. Its fields 1 and 2
//!   (instance id, namespace) match the `-id`/`-namespace` flags, which is how
//!   it is told apart from an `Any` (type_url, value).
//! - The same params as JSON are accepted too and answered in JSON.

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    pub id: String,
    pub namespace: String,
    pub ttrpc_address: String,
    pub grpc_address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Proto,
    Json,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Stdin {
    /// The flag-only protocol, answered with a plain address.
    Flags,
    Params(Params, Encoding),
}

pub fn classify(input: &[u8], flag_id: &str, flag_ns: &str) -> Result<Stdin, String> {
    let trimmed = input.trim_ascii();
    if trimmed.is_empty() {
        return Ok(Stdin::Flags);
    }
    if trimmed.starts_with(b"{") {
        let v: serde_json::Value =
            serde_json::from_slice(trimmed).map_err(|e| format!("bootstrap params (JSON): {e}"))?;
        let field = |names: &[&str]| {
            names.iter().find_map(|n| v.get(*n).and_then(|x| x.as_str())).unwrap_or_default().to_string()
        };
        let p = Params {
            id: field(&["instance_id", "instanceId", "id"]),
            namespace: field(&["namespace"]),
            ttrpc_address: field(&["containerd_ttrpc_address", "containerdTtrpcAddress", "ttrpc_address"]),
            grpc_address: field(&["containerd_grpc_address", "containerdGrpcAddress", "address"]),
        };
        return Ok(Stdin::Params(p, Encoding::Json));
    }
    let Some(fields) = crate::wire::length_delimited(input) else {
        return Err(format!("stdin: {} bytes that are neither bootstrap params nor runtime options", input.len()));
    };
    let text = |n: u64| crate::wire::string_field(&fields, n);
    let p = Params { id: text(1), namespace: text(2), ttrpc_address: text(5), grpc_address: text(6) };
    if p.id == flag_id && p.namespace == flag_ns {
        Ok(Stdin::Params(p, Encoding::Proto))
    } else {
        // A runtime options Any (type_url, value); Create brings it again.
        Ok(Stdin::Flags)
    }
}

/// `BootstrapResult{version, address, protocol}` in the encoding we were asked in.
pub fn answer(address: &str, encoding: Option<Encoding>) -> Vec<u8> {
    match encoding {
        None => address.as_bytes().to_vec(),
        Some(Encoding::Json) => {
            serde_json::json!({"version": 2, "address": address, "protocol": "ttrpc"}).to_string().into_bytes()
        }
        Some(Encoding::Proto) => {
            // version = 1 (varint 2), address = 2, protocol = 3.
            let mut out = vec![0x08, 2];
            crate::wire::put_string(&mut out, 2, address);
            crate::wire::put_string(&mut out, 3, "ttrpc");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u8, s: &str) -> Vec<u8> {
        let mut v = vec![(n << 3) | 2, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn nothing_on_stdin_is_the_flag_protocol() {
        assert_eq!(classify(b"", "c1", "default"), Ok(Stdin::Flags));
        assert_eq!(classify(b" \n", "c1", "default"), Ok(Stdin::Flags));
    }

    #[test]
    fn protobuf_params_are_recognised_by_id_and_namespace() {
        let mut b = field(1, "c1");
        b.extend(field(2, "default"));
        b.extend([0x18, 0x7c]); // log_level = -4 would be a long varint; any varint is skipped
        b.extend(field(5, "unix:///run/containerd/containerd.sock.ttrpc"));
        b.extend(field(6, "/run/containerd/containerd.sock"));
        let Ok(Stdin::Params(p, Encoding::Proto)) = classify(&b, "c1", "default") else { panic!("not params") };
        assert_eq!(p.ttrpc_address, "unix:///run/containerd/containerd.sock.ttrpc");
        assert_eq!(p.grpc_address, "/run/containerd/containerd.sock");
    }

    #[test]
    fn a_runtime_options_any_is_not_params() {
        let mut b = field(1, "containerd.runc.v1.Options");
        b.extend(field(2, "\u{8}\u{1}"));
        assert_eq!(classify(&b, "c1", "default"), Ok(Stdin::Flags));
    }

    #[test]
    fn json_params_and_garbage() {
        let j = br#"{"instance_id":"c1","namespace":"k8s.io","containerd_ttrpc_address":"/x.ttrpc"}"#;
        let Ok(Stdin::Params(p, Encoding::Json)) = classify(j, "", "") else { panic!("not params") };
        assert_eq!((p.id.as_str(), p.namespace.as_str(), p.ttrpc_address.as_str()), ("c1", "k8s.io", "/x.ttrpc"));
        assert!(classify(b"{nope", "c1", "n").unwrap_err().contains("JSON"));
        assert!(classify(&[0x0f, 0xff], "c1", "n").is_err());
    }

    #[test]
    fn answers_in_the_encoding_asked() {
        assert_eq!(answer("unix:///s", None), b"unix:///s");
        let j: serde_json::Value = serde_json::from_slice(&answer("unix:///s", Some(Encoding::Json))).expect("json");
        assert_eq!(j, serde_json::json!({"version": 2, "address": "unix:///s", "protocol": "ttrpc"}));
        let p = answer("unix:///s", Some(Encoding::Proto));
        assert_eq!(p, [&[0x08, 2, 0x12, 9][..], b"unix:///s", &[0x1a, 5], b"ttrpc"].concat());
        let long = "x".repeat(200);
        let p = answer(&long, Some(Encoding::Proto));
        assert_eq!(&p[2..5], &[0x12, 0xc8, 0x01]);
    }
}
