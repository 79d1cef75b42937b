//! A container's hooks at each lifecycle step: the plan from `hooks`, each
//! hook run by `hooks::run`, in order, one at a time.

use std::os::fd::BorrowedFd;
use std::path::Path;

use oci_spec::runtime::Spec;

use super::Shim;
use crate::hooks::run::{self, ContainerNs, Invocation};
use crate::hooks::{self, Kind, Where};
use crate::reaper::Reaper;

/// Marks a container whose poststop hooks have started, so the `delete`
/// cleanup after a shim death never runs them a second time.
pub const POSTSTOP_MARKER: &str = "poststop-started";

/// Runs the hooks of `kinds` for container `id`. A failing fatal hook stops
/// the run and is returned; a failing poststop hook is logged and the rest go on.
pub async fn run_kinds(
    reaper: &Reaper,
    spec: &Spec,
    kinds: &[Kind],
    id: &str,
    bundle: &Path,
    init: Option<(i32, BorrowedFd<'_>)>,
) -> Result<(), String> {
    let pid = init.map_or(0, |(pid, _)| pid);
    let planned = hooks::planned(spec, kinds);
    if planned.is_empty() {
        return Ok(());
    }
    let bundle_s = bundle.to_string_lossy();
    let rootfs = crate::spec::rootfs_path(spec, bundle);
    let mut ns: Option<ContainerNs> = None;
    for (kind, index, hook) in planned {
        let state = hooks::state_json(spec, id, kind.status(), if kind == Kind::Poststop { 0 } else { pid }, &bundle_s);
        if kind.runs_in() == Where::Container && ns.is_none() {
            let opened = init
                .ok_or_else(|| std::io::Error::other("no init to run in"))
                .and_then(|(pid, pidfd)| ContainerNs::open(pid, pidfd));
            ns = Some(opened.map_err(|e| format!("{} hooks: container namespaces: {e}", kind.key()))?);
        }
        log::debug!(
            "{id}: {} hook #{index} {} (in {} RPC, {:?} namespaces, path resolved in {:?})",
            kind.key(),
            hook.path().display(),
            kind.rpc(),
            kind.runs_in(),
            kind.path_in()
        );
        let inv = Invocation { kind, index, hook, state: &state, cwd: &kind.cwd(bundle, &rootfs) };
        let container_ns = if kind.runs_in() == Where::Container { ns.as_ref() } else { None };
        if let Err(e) = run::run(inv, container_ns, reaper).await {
            if kind.fatal() {
                return Err(e.to_string());
            }
            log::warn!("{id}: {e}");
        }
    }
    Ok(())
}

impl Shim {
    /// Poststop, once: the marker goes down before the first hook runs.
    pub(super) async fn poststop(&self, spec: &Spec, id: &str, bundle: &Path, state_dir: &Path) {
        if hooks::planned(spec, &[Kind::Poststop]).is_empty() {
            return;
        }
        if let Err(e) = std::fs::write(state_dir.join(POSTSTOP_MARKER), b"") {
            log::warn!("{id}: poststop marker: {e}");
        }
        let _ = run_kinds(&self.reaper, spec, &[Kind::Poststop], id, bundle, None).await;
    }
}
