//! Entry points for the fuzz targets in `fuzz/`: each takes arbitrary bytes,
//! drives one of the parsers that read what containerd or a user hands the
//! shim, and must return without panicking, whatever the bytes.

use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;

/// config.json (the raw-key lint, the typed parse with JSON paths, the
/// value checks) and an Update's LinuxResources, and what `check` reports.
pub fn config(data: &[u8]) {
    if let Ok(loaded) = crate::spec::parse(data) {
        let _ = crate::hooks::planned(&loaded.spec, &crate::hooks::Kind::ALL);
    }
    let _ = crate::spec::parse_resources(data);
}

/// The stdio URIs of a Create or Exec: fifo paths, `file://`, `binary://`
/// with its percent-encoded query.
pub fn stdio_uri(data: &[u8]) {
    let Ok(uri) = std::str::from_utf8(data) else { return };
    if let Some(rest) = uri.strip_prefix("binary://") {
        let _ = crate::stdio::logger_command(rest);
    } else {
        let _ = crate::stdio::fifo_path("stdout", uri);
    }
}

/// Runtime options under each type containerd sends (runc's, CRI's
/// runtimeoptions with our own JSON config), chosen by the first byte.
pub fn runtime_options(data: &[u8]) {
    let Some((&kind, value)) = data.split_first() else { return };
    let type_url = match kind % 4 {
        0 => "containerd.runc.v1.Options",
        1 => "containerd.linux.runc.CreateOptions",
        2 => "runtimeoptions.v1.Options",
        _ => "example.com/unknown",
    };
    let any = Any { type_url: type_url.into(), value: value.to_vec(), ..Default::default() };
    let _ = crate::options::parse(Some(&any));
}

/// What arrives on the shim's socket and on `start`'s stdin: a ttrpc
/// Request, the Task API request it carries, BootstrapParams.
pub fn rpc(data: &[u8]) {
    if let Ok(req) = containerd_shim_protos::ttrpc::Request::parse_from_bytes(data) {
        task_request(&req.method, &req.payload);
    }
    for method in ["Create", "Exec", "Update", "Kill", "Start", "Delete", "State", "ResizePty"] {
        task_request(method, data);
    }
    let _ = crate::wire::length_delimited(data);
    let _ = crate::bootstrap::params::classify(data, "id", "namespace");
}

/// Decodes `payload` as the request type of `method`, and the runtime
/// options and process spec it may carry, as the service does.
fn task_request(method: &str, payload: &[u8]) {
    match method {
        "Create" => {
            if let Ok(r) = api::CreateTaskRequest::parse_from_bytes(payload) {
                let _ = crate::options::parse(r.options.as_ref());
            }
        }
        "Exec" => {
            if let Ok(r) = api::ExecProcessRequest::parse_from_bytes(payload) {
                if let Some(spec) = r.spec.as_ref() {
                    let _ = serde_json::from_slice::<oci_spec::runtime::Process>(&spec.value);
                }
            }
        }
        "Update" => {
            if let Ok(r) = api::UpdateTaskRequest::parse_from_bytes(payload) {
                if let Some(res) = r.resources.as_ref() {
                    let _ = crate::spec::parse_resources(&res.value);
                }
            }
        }
        "Kill" => drop(api::KillRequest::parse_from_bytes(payload)),
        "Start" => drop(api::StartRequest::parse_from_bytes(payload)),
        "Delete" => drop(api::DeleteRequest::parse_from_bytes(payload)),
        "State" => drop(api::StateRequest::parse_from_bytes(payload)),
        "ResizePty" => drop(api::ResizePtyRequest::parse_from_bytes(payload)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    /// The fuzz corpora replayed: every file the fuzzers kept (and every
    /// crash they found, turned into a regression input) still parses or
    /// fails cleanly.
    type Target = fn(&[u8]);

    #[test]
    fn the_fuzz_corpora_replay_cleanly() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let targets: [(&str, Target); 4] = [
            ("config", super::config),
            ("stdio_uri", super::stdio_uri),
            ("runtime_options", super::runtime_options),
            ("rpc", super::rpc),
        ];
        for (name, target) in targets {
            let dir = root.join(name);
            let files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .flatten()
                .map(|e| e.path())
                .collect();
            assert!(!files.is_empty(), "{name}: an empty corpus");
            for f in files {
                target(&std::fs::read(&f).expect("corpus file"));
            }
        }
    }
}
