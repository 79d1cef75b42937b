//! The serving daemon: one single-threaded event loop running the ttrpc
//! server, the reaper and the event sender, until containerd's Shutdown.

use std::sync::Arc;
use std::time::Duration;

use containerd_shim_protos::shim_async::create_task;
use containerd_shim_protos::ttrpc::asynchronous::transport::Listener;
use containerd_shim_protos::ttrpc::asynchronous::Server;

use crate::bootstrap::{state_root, Daemon};
use crate::container::{Shim, ShimContext};
use crate::events::Publisher;
use crate::reaper::Reaper;
use crate::service::TaskService;
use crate::{logger, sys};

/// The stack of a helper thread (`off_loop`, a `file://` copy). Below 2 MiB
/// so that no transparent huge page can back it: where THP is `always`
/// (Debian's default) the 2 MiB default stack of a helper that stays for the
/// container's life, or 10 s after a Create, was a fully resident 2 MiB huge
/// page, 80% of an idle shim's anonymous memory on the v2 + systemd VM.
const HELPER_STACK: usize = 1 << 20;

pub fn run(daemon: Daemon) -> i32 {
    logger::init(daemon.args.debug, &daemon.args.id, false);
    if let Err(e) = sys::set_child_subreaper() {
        log::error!("become subreaper: {e}");
        return 1;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().thread_stack_size(HELPER_STACK).build() {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("event loop: {e}");
            return 1;
        }
    };
    let code = match rt.block_on(serve(daemon)) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("serve: {e}");
            1
        }
    };
    // A helper thread still copying a `file://` log whose pipe some process
    // outside the container holds would keep a plain drop of the runtime
    // waiting for ever: the shim exits after Shutdown regardless.
    rt.shutdown_timeout(SHUTDOWN_GRACE);
    code
}

/// How long the exit waits for helper threads still at work.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Once the lifecycle verbs have been quiet for a while (a container is
/// running and the shim just waits), resident memory it does not need goes.
async fn release_memory_when_idle(shim: Arc<Shim>) {
    const QUIET: Duration = Duration::from_millis(200);
    loop {
        shim.activity.notified().await;
        while tokio::time::timeout(QUIET, shim.activity.notified()).await.is_ok() {}
        shim.release_idle();
    }
}

async fn serve(daemon: Daemon) -> Result<(), String> {
    let Daemon { args, listener, socket, ttrpc_address } = daemon;
    let reaper = Reaper::start().map_err(|e| format!("reaper: {e}"))?;
    let events_address = ttrpc_address
        .or_else(|| std::env::var("TTRPC_ADDRESS").ok())
        .unwrap_or_else(|| format!("{}.ttrpc", args.address));
    let publisher =
        Publisher::start(format!("unix://{}", events_address.trim_start_matches("unix://")), args.namespace.clone());
    let ctx =
        ShimContext { namespace: args.namespace.clone(), address: args.address.clone(), state_root: state_root() };
    let shim = Arc::new(Shim::new(ctx, reaper, publisher.clone()));
    let service = create_task(Arc::new(TaskService { shim: shim.clone() }));
    let listener = Listener::try_from(listener).map_err(|e| format!("listener: {e}"))?;
    let mut server = Server::new().add_listener(listener).register_service(service);
    shim.prepare();
    shim.spawn_early();
    tokio::spawn(release_memory_when_idle(shim.clone()));
    server.start().await.map_err(|e| format!("ttrpc: {e}"))?;
    shim.shutdown.notified().await;
    shim.retire();
    // TaskDelete and friends must reach containerd before we go.
    let _ = tokio::time::timeout(Duration::from_secs(5), publisher.flush()).await;
    // Let the connection tasks write the Shutdown reply before we go.
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    let _ = tokio::time::timeout(Duration::from_millis(100), server.shutdown()).await;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
