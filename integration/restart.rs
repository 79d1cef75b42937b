//! Issue 11 (part): containerd dies and comes back. A containerd of this
//! test's own (the shared one serves the other tests) is SIGKILLed while
//! two containers run; one exits while it is down. After the restart the
//! running one is still RUNNING and takes Exec and Kill, the exit that
//! happened meanwhile is there (State's status 7) and was forwarded once,
//! and the shims' events come in order.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use containerd_shim_protos::api::{CreateTaskRequest, StateRequest};

use crate::direct::{client, ctx, rt};
use crate::harness::*;

/// A containerd of a test's own, under `dir`, in namespace `ns`.
pub struct Containerd {
    pub dir: PathBuf,
    pub ns: &'static str,
    child: Option<Child>,
}

impl Containerd {
    pub fn new(dir: PathBuf, ns: &'static str) -> Containerd {
        Containerd { dir, ns, child: None }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn socket(&self) -> String {
        self.dir.join("containerd.sock").to_string_lossy().into_owned()
    }

    pub fn start(&mut self, log: &str) {
        let config = self.dir.join("config.toml");
        let d = self.dir.display();
        let toml = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/containerd.sock\"\n[ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n"
        );
        std::fs::write(&config, toml).expect("config");
        let log = std::fs::File::create(self.dir.join(log)).expect("log");
        let path = format!("/usr/local/bin:{}", std::env::var("PATH").unwrap_or_default());
        let child = Command::new("containerd")
            .args(["--log-level", "debug", "--config"])
            .arg(&config)
            .env("PATH", path)
            .env("MYSHIM_ROOT", shim_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("timeout")
            .args(["-k", "5", "30", "ctr", "--address", &self.socket(), "-n", self.ns])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ctr")
    }

    fn status_of(&self, id: &str) -> String {
        let ls = text(&self.ctr(&["task", "ls"]).stdout);
        ls.lines().find(|l| l.starts_with(id)).and_then(|l| l.split_whitespace().nth(2)).unwrap_or("").to_string()
    }

    pub fn wait_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.status_of(id) != status {
            assert!(Instant::now() < deadline, "{id} never {status}: {}", self.status_of(id));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn address_of(&self, id: &str) -> String {
        let p = self.dir.join("state/io.containerd.runtime.v2.task").join(self.ns).join(id).join("address");
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The event topics containerd forwarded, as its debug log shows them.
fn forwarded(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("msg=\"event forwarded\""))
        .filter_map(|l| l.split(" topic=").nth(1)?.split(' ').next().map(String::from))
        .collect()
}

#[test]
fn containers_and_their_exits_survive_a_containerd_restart() {
    let dir = work_dir().join("restart-containerd");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut cd = Containerd::new(dir.clone(), NS);
    cd.start("before.log");
    let (long, short) = ("restart-long", "restart-short");
    for (id, args) in [(long, &["sleep", "1000"][..]), (short, &["sh", "-c", "sleep 2; exit 7"][..])] {
        let p = write_spec(id, &spec(id, &rootfs(id), args));
        let run = cd.ctr(&["run", "-d", "--runtime", RUNTIME, "--config", &p.to_string_lossy(), id]);
        assert!(run.status.success(), "{}", text(&run.stderr));
        cd.wait_status(id, "RUNNING");
    }

    cd.kill();
    std::thread::sleep(Duration::from_secs(3)); // `short` exits meanwhile
    cd.start("after.log");

    cd.wait_status(long, "RUNNING");
    cd.wait_status(short, "STOPPED");
    let state = rt().block_on(async {
        let c = client(cd.address_of(short).trim()).await;
        c.state(ctx(), &StateRequest { id: short.into(), ..Default::default() }).await.expect("State")
    });
    assert_eq!(state.exit_status, 7, "the exit that happened while containerd was down");
    // Its shim retries the queued TaskExit (backing off up to 2 s).
    let after = dir.join("after.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !forwarded(&after).contains(&"/tasks/exit".to_string()) {
        assert!(Instant::now() < deadline, "the queued TaskExit never arrived: {:?}", forwarded(&after));
        std::thread::sleep(Duration::from_millis(50));
    }

    let exec = cd.ctr(&["task", "exec", "--exec-id", "after", long, "echo", "still here"]);
    assert_eq!(text(&exec.stdout), "still here\n", "{}", text(&exec.stderr));
    assert!(cd.ctr(&["task", "kill", "-s", "KILL", long]).status.success());
    cd.wait_status(long, "STOPPED");

    let deadline = Instant::now() + Duration::from_secs(10);
    while forwarded(&after).iter().filter(|t| *t == "/tasks/exit").count() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let topics = forwarded(&after);
    let exits: Vec<_> = topics.iter().filter(|t| *t == "/tasks/exit").collect();
    assert_eq!(exits.len(), 3, "short's exit once, the exec's, long's: {topics:?}");
    let first_exec = topics.iter().position(|t| t == "/tasks/exec-added").expect("exec-added");
    assert_eq!(topics[..first_exec].iter().filter(|t| *t == "/tasks/exit").count(), 1, "{topics:?}");
    let later: Vec<&str> = topics[first_exec..]
        .iter()
        .map(String::as_str)
        .filter(|t| ["/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"].contains(t))
        .collect();
    assert_eq!(later, ["/tasks/exec-added", "/tasks/exec-started", "/tasks/exit", "/tasks/exit"], "{topics:?}");
    assert!(!forwarded(&dir.join("before.log")).contains(&"/tasks/exit".to_string()));

    for id in [long, short] {
        assert!(cd.ctr(&["task", "rm", id]).status.success(), "task rm {id}");
        assert!(cd.ctr(&["container", "rm", id]).status.success(), "container rm {id}");
    }
    for id in [long, short] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !shim_pids(id).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(shim_pids(id).is_empty(), "{id}: shim left");
        assert!(cgroups_of(id).is_empty(), "{id}: cgroups left");
    }
    cd.kill();
    // containerd's own mounts (the shims unmounted the rootfs already).
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("awk '$5 ~ \"^{}\" {{print $5}}' /proc/self/mountinfo | sort -r | xargs -r umount", dir.display()))
        .status();
}

/// What containerd's absence means for output: its fifo readers are gone
/// for a while. The shim holds the fifos open, so the container neither
/// dies of SIGPIPE nor loses a line; the next reader gets the rest.
#[test]
fn output_written_while_nobody_reads_is_kept_for_the_next_reader() {
    use containerd_shim_protos::api::{DeleteRequest, WaitRequest};
    use std::os::unix::fs::OpenOptionsExt;

    use crate::direct::*;
    use crate::terminal::{fifo, read_until};

    let id = "restart-output";
    let script = "i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo line $i; sleep 0.02; done";
    let b = checked_bundle(id, &["sh", "-c", script]);
    let stdout = b.join("stdout");
    fifo(&stdout);
    let open_reader =
        || std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&stdout).expect("reader");
    let mut reader = open_reader();
    let addr = text(&start(&b, id, None));
    let mut got = String::new();
    rt().block_on(async {
        let c = client(addr.trim()).await;
        let req = CreateTaskRequest { stdout: stdout.to_string_lossy().into(), ..create_request(id, &b) };
        let shim = create_started_with(&c, req).await;
        read_until(&mut reader, &mut got, "line 10\n");
        drop(reader); // containerd is gone
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut again = open_reader(); // and back
        read_until(&mut again, &mut got, "line 60\n");
        let status = c.wait(ctx(), &WaitRequest { id: id.into(), ..Default::default() }).await.expect("Wait");
        assert_eq!(status.exit_status, 0, "the container must not die of SIGPIPE");
        c.delete(ctx(), &DeleteRequest { id: id.into(), ..Default::default() }).await.expect("Delete");
        shutdown(&c, shim).await;
    });
    let want: String = (1..=60).map(|i| format!("line {i}\n")).collect();
    assert_eq!(got, want, "every line once, in order");
    assert_no_leftovers(id);
}
