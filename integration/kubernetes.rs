//! Issue 10: pods through containerd 1.6's CRI plugin, configured by
//! scripts/common.sh with a `myshim` runtime handler beside `runc`, driven
//! by a real CRI gRPC client (k8s-cri over tonic) on containerd's socket.
//! The pod network is a local bridge (CNI from Debian) on 10.253.77.0/24.

use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::harness::*;

const BRIDGE_ADDRESS: &str = "10.253.77.1";
type Cri = RuntimeServiceClient<Channel>;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

async fn connect() -> Cri {
    let path = address();
    let channel = Endpoint::try_from("http://localhost")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await
        .expect("connect to containerd's CRI");
    RuntimeServiceClient::new(channel)
}

fn sandbox_config(name: &str, share_pid: bool) -> PodSandboxConfig {
    let logs = work_dir().join(format!("pod-logs-{name}"));
    std::fs::create_dir_all(&logs).expect("log dir");
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: logs.to_string_lossy().into_owned(),
        dns_config: Some(DnsConfig {
            servers: vec![BRIDGE_ADDRESS.into()],
            searches: vec!["myshim.test".into()],
            options: vec![],
        }),
        linux: Some(LinuxPodSandboxConfig {
            // cgroupfs, as kubelet writes it: /kubepods/burstable/pod<uid>.
            cgroup_parent: format!("/myshim-k8s/burstable/pod{name}"),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Pod as i32,
                    pid: if share_pid { NamespaceMode::Pod } else { NamespaceMode::Container } as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(name: &str, command: &[&str], memory: i64) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata { name: name.into(), attempt: 0 }),
        image: Some(ImageSpec { image: image(), ..Default::default() }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources { memory_limit_in_bytes: memory, ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create(cri: &mut Cri, pod: &str, cfg: &PodSandboxConfig, c: ContainerConfig) -> String {
    let req = CreateContainerRequest { pod_sandbox_id: pod.into(), config: Some(c), sandbox_config: Some(cfg.clone()) };
    cri.create_container(req).await.expect("CreateContainer").into_inner().container_id
}

/// ExecSync: the command's stdout, asserting it succeeded.
async fn exec(cri: &mut Cri, id: &str, cmd: &[&str]) -> String {
    let req =
        ExecSyncRequest { container_id: id.into(), cmd: cmd.iter().map(|s| s.to_string()).collect(), timeout: 20 };
    let r = cri.exec_sync(req).await.unwrap_or_else(|e| panic!("ExecSync {cmd:?}: {e}")).into_inner();
    let (out, err) = (text(&r.stdout), text(&r.stderr));
    assert_eq!(r.exit_code, 0, "{cmd:?} in {id}: stdout {out} stderr {err}");
    out
}

/// The serving shims in CRI's namespace started for any of `ids` (each is
/// forked off its `start`, whose command line it keeps).
fn shims_for(ids: &[&str]) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let c = std::fs::read(format!("/proc/{pid}/cmdline")).map(|c| text(&c)).unwrap_or_default();
            c.contains("containerd-shim-myshim-v2")
                && c.contains("\0k8s.io\0")
                && c.ends_with("\0start\0")
                && ids.iter().any(|id| c.contains(&format!("\0-id\0{id}\0")))
        })
        .collect()
}

/// What kubelet does after a pod is gone: its cgroup removed, which works
/// only if the runtime removed the containers' cgroups below it.
fn remove_pod_cgroup(parent: &str) {
    if cgroup_v2() {
        let dir = cgroup_dir("", parent);
        if dir.exists() {
            std::fs::remove_dir(&dir).unwrap_or_else(|e| panic!("{}: {e} (a container's cgroup left?)", dir.display()));
        }
        return;
    }
    for d in std::fs::read_dir("/sys/fs/cgroup").expect("cgroupfs").flatten() {
        let dir = d.path().join(parent.trim_start_matches('/'));
        if dir.exists() {
            std::fs::remove_dir(&dir).unwrap_or_else(|e| panic!("{}: {e} (a container's cgroup left?)", dir.display()));
        }
    }
}

fn memory_limit(parent: &str, id: &str) -> String {
    let file = if cgroup_v2() { "memory.max" } else { "memory.limit_in_bytes" };
    let p = cgroup_dir("memory", &format!("{parent}/{id}")).join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_string()
}

/// The whole CRI sequence for one pod with two containers on `handler`.
async fn pod_lifecycle(cri: &mut Cri, handler: &str) -> Duration {
    let start = Instant::now();
    let name = format!("pod-{handler}");
    let cfg = sandbox_config(&name, true);
    let parent = cfg.linux.as_ref().map(|l| l.cgroup_parent.clone()).unwrap_or_default();
    let req = RunPodSandboxRequest { config: Some(cfg.clone()), runtime_handler: handler.into() };
    let pod = cri.run_pod_sandbox(req).await.expect("RunPodSandbox").into_inner().pod_sandbox_id;

    let web = "mkdir -p /www && echo pong > /www/index.html && exec httpd -f -p 8080 -h /www";
    let server = create(cri, &pod, &cfg, container_config("server", &["sh", "-c", web], 0)).await;
    let client = create(cri, &pod, &cfg, container_config("client", &["sleep", "1000"], 64 << 20)).await;
    for id in [&server, &client] {
        cri.start_container(StartContainerRequest { container_id: id.clone() }).await.expect("StartContainer");
    }
    let shims = shims_for(&[&pod, &server, &client]);
    if handler == "myshim" {
        assert_eq!(shims.len(), 1, "one shim serves the sandbox and both containers");
    }

    assert_eq!(exec(cri, &client, &["hostname"]).await.trim(), name);
    let resolv = exec(cri, &client, &["cat", "/etc/resolv.conf"]).await;
    assert!(resolv.contains(&format!("nameserver {BRIDGE_ADDRESS}")) && resolv.contains("myshim.test"), "{resolv}");
    let ps = exec(cri, &client, &["ps", "-o", "pid,args"]).await;
    assert!(ps.contains("sleep 2147483647") && ps.contains("httpd"), "the pod shares one pid namespace: {ps}");
    // The two containers talk over the pod's localhost; the pod reaches
    // the bridge's host address and nothing else is tried.
    let mut reply = String::new();
    for _ in 0..50 {
        let req = ExecSyncRequest {
            container_id: client.clone(),
            cmd: ["wget", "-qO-", "http://127.0.0.1:8080/"].map(String::from).to_vec(),
            timeout: 10,
        };
        reply = text(&cri.exec_sync(req).await.expect("ExecSync wget").into_inner().stdout);
        if reply == "pong\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reply, "pong\n", "localhost between the pod's containers");
    exec(cri, &client, &["ping", "-c", "1", "-W", "5", BRIDGE_ADDRESS]).await;

    assert_eq!(memory_limit(&parent, &client), (64u64 << 20).to_string());
    let update = UpdateContainerResourcesRequest {
        container_id: client.clone(),
        linux: Some(LinuxContainerResources { memory_limit_in_bytes: 96 << 20, ..Default::default() }),
        ..Default::default()
    };
    cri.update_container_resources(update).await.expect("UpdateContainerResources");
    assert_eq!(memory_limit(&parent, &client), (96u64 << 20).to_string());

    let stats = cri.container_stats(ContainerStatsRequest { container_id: client.clone() }).await;
    let stats = stats.expect("ContainerStats").into_inner().stats.expect("stats");
    let memory = stats.memory.and_then(|m| m.working_set_bytes).map_or(0, |v| v.value);
    let cpu = stats.cpu.and_then(|c| c.usage_core_nano_seconds).map_or(0, |v| v.value);
    assert!(memory > 0 && cpu > 0, "ContainerStats: working set {memory}, cpu {cpu}");

    for id in [&server, &client] {
        let stop = StopContainerRequest { container_id: id.clone(), timeout: 1 };
        cri.stop_container(stop).await.expect("StopContainer");
        cri.remove_container(RemoveContainerRequest { container_id: id.clone() }).await.expect("RemoveContainer");
    }
    cri.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.expect("StopPodSandbox");
    cri.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod }).await.expect("RemovePodSandbox");
    let took = start.elapsed();
    for pid in shims {
        assert!(wait_gone(pid, Duration::from_secs(10)), "the pod's shim {pid} outlived its pod");
    }
    remove_pod_cgroup(&parent);
    took
}

#[test]
fn a_pod_runs_through_cri_with_one_shim_and_the_same_sequence_passes_with_runc() {
    block_on(async {
        let mut cri = connect().await;
        let ours = pod_lifecycle(&mut cri, "myshim").await;
        let runc = pod_lifecycle(&mut cri, "runc").await;
        println!(
            "CRI pod lifecycle: myshim {:.0} ms, runc {:.0} ms",
            ours.as_secs_f64() * 1e3,
            runc.as_secs_f64() * 1e3
        );
    });
}

#[test]
fn cri_reports_an_oom_killed_container() {
    block_on(async {
        let mut cri = connect().await;
        let cfg = sandbox_config("pod-oom", false);
        let req = RunPodSandboxRequest { config: Some(cfg.clone()), runtime_handler: "myshim".into() };
        let pod = cri.run_pod_sandbox(req).await.expect("RunPodSandbox").into_inner().pod_sandbox_id;
        let hog = ["sh", "-c", "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived"];
        let id = create(&mut cri, &pod, &cfg, container_config("hog", &hog, 32 << 20)).await;
        cri.start_container(StartContainerRequest { container_id: id.clone() }).await.expect("StartContainer");
        let mut status = ContainerStatus::default();
        for _ in 0..300 {
            let req = ContainerStatusRequest { container_id: id.clone(), verbose: false };
            status = cri.container_status(req).await.expect("ContainerStatus").into_inner().status.expect("status");
            if status.state == ContainerState::ContainerExited as i32 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status.state, ContainerState::ContainerExited as i32, "the hog never exited");
        assert_eq!((status.reason.as_str(), status.exit_code), ("OOMKilled", 137), "{status:?}");
        cri.remove_container(RemoveContainerRequest { container_id: id }).await.expect("RemoveContainer");
        cri.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.expect("StopPodSandbox");
        cri.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod }).await.expect("RemovePodSandbox");
        remove_pod_cgroup(&cfg.linux.map(|l| l.cgroup_parent).unwrap_or_default());
    });
}

/// The handler's runtime options (runtimeoptions.v1.Options, ConfigPath)
/// name a config with a typo: the pod fails with the shim's reason.
#[test]
fn a_malformed_runtime_config_fails_the_pod_clearly() {
    block_on(async {
        let mut cri = connect().await;
        let cfg = sandbox_config("pod-bad-config", false);
        let parent = cfg.linux.as_ref().map(|l| l.cgroup_parent.clone()).unwrap_or_default();
        let req = RunPodSandboxRequest { config: Some(cfg), runtime_handler: "myshim-bad-config".into() };
        let e = cri.run_pod_sandbox(req).await.expect_err("a pod with a malformed runtime config");
        let msg = e.message();
        assert!(msg.contains("myshim-bad.json") && msg.contains("hooks.strikt is not a setting"), "{msg}");
        remove_pod_cgroup(&parent);
    });
}

/// Issue 21: a privileged container (the host's devices, all capabilities)
/// through CRI, with a host mount of each propagation; the container's view
/// of its mounts' propagation and of /dev/ptmx, under `handler`.
async fn privileged_view(cri: &mut Cri, handler: &str, host: &std::path::Path) -> String {
    let mut cfg = sandbox_config(&format!("pod-priv-{handler}"), false);
    if let Some(sc) = cfg.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        sc.privileged = true;
    }
    let parent = cfg.linux.as_ref().map(|l| l.cgroup_parent.clone()).unwrap_or_default();
    let req = RunPodSandboxRequest { config: Some(cfg.clone()), runtime_handler: handler.into() };
    let pod = cri.run_pod_sandbox(req).await.expect("RunPodSandbox").into_inner().pod_sandbox_id;
    let mut c = container_config("priv", &["sleep", "1000"], 0);
    let mount = |dir: &str, propagation: MountPropagation| Mount {
        container_path: format!("/mnt/{dir}"),
        host_path: host.join(dir).to_string_lossy().into_owned(),
        propagation: propagation as i32,
        ..Default::default()
    };
    c.mounts = vec![
        mount("shared", MountPropagation::PropagationBidirectional),
        mount("slave", MountPropagation::PropagationHostToContainer),
        mount("private", MountPropagation::PropagationPrivate),
    ];
    if let Some(l) = c.linux.as_mut() {
        l.security_context = Some(LinuxContainerSecurityContext { privileged: true, ..Default::default() });
    }
    let id = create(cri, &pod, &cfg, c).await;
    cri.start_container(StartContainerRequest { container_id: id.clone() }).await.expect("StartContainer");
    // Each /mnt mount's propagation tags (shared, master: "private" if none).
    let probe =
        "awk '$5 ~ /^\\/mnt\\// { p = \"\"; for (i = 7; $i != \"-\"; i++) { split($i, a, \":\"); p = p a[1] \" \" } \
                 print $5, (p == \"\" ? \"private\" : p) }' /proc/self/mountinfo; readlink /dev/ptmx; \
                 grep CapEff /proc/self/status; ls /dev/tty1 /dev/full";
    let view = exec(cri, &id, &["sh", "-c", probe]).await;
    let stop = StopContainerRequest { container_id: id.clone(), timeout: 1 };
    cri.stop_container(stop).await.expect("StopContainer");
    cri.remove_container(RemoveContainerRequest { container_id: id }).await.expect("RemoveContainer");
    cri.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.expect("StopPodSandbox");
    cri.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod }).await.expect("RemovePodSandbox");
    remove_pod_cgroup(&parent);
    view
}

#[test]
fn a_privileged_container_with_each_mount_propagation_runs_as_under_runc() {
    // A shared mount of the test's own: CRI wants one under a
    // bidirectional (and a host-to-container) mount's host path.
    let host = work_dir().join("propagation");
    std::fs::create_dir_all(&host).expect("mkdir");
    let sh = |cmd: &str| {
        let ok = std::process::Command::new("sh").args(["-c", cmd]).status().expect("sh");
        assert!(ok.success(), "{cmd}");
    };
    let h = host.display();
    sh(&format!("mount -t tmpfs myshim-prop {h} && mount --make-shared {h} && mkdir {h}/shared {h}/slave {h}/private"));
    let views = block_on(async {
        let mut cri = connect().await;
        (privileged_view(&mut cri, "myshim", &host).await, privileged_view(&mut cri, "runc", &host).await)
    });
    sh(&format!("umount -l {h}"));
    let (ours, runc) = views;
    assert_eq!(ours, runc, "myshim and runc differ");
    for want in ["/mnt/shared shared", "/mnt/slave master", "/mnt/private private", "pts/ptmx", "/dev/tty1"] {
        assert!(ours.contains(want), "{want} missing under myshim:\n{ours}");
    }
}

/// A pod as kubelet's systemd driver lays it out: the parent is the pod's
/// slice, and CRI gives each container `slice:cri-containerd:ID`. Where
/// systemd runs, each is a transient scope in that slice
/// (kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice),
/// limited, and gone with its container; without systemd the same path on
/// cgroupfs.
#[test]
fn a_pod_with_systemd_cgroup_parents_runs_in_scopes() {
    let slice = "kubepods-burstable-podmyshim1.slice";
    let base = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podmyshim1.slice";
    let systemd = std::path::Path::new("/run/systemd/system").is_dir();
    block_on(async {
        let mut cri = connect().await;
        let mut cfg = sandbox_config("pod-systemd", false);
        if let Some(l) = cfg.linux.as_mut() {
            l.cgroup_parent = slice.into();
        }
        let req = RunPodSandboxRequest { config: Some(cfg.clone()), runtime_handler: "myshim".into() };
        let pod = cri.run_pod_sandbox(req).await.expect("RunPodSandbox").into_inner().pod_sandbox_id;
        let id = create(&mut cri, &pod, &cfg, container_config("app", &["sleep", "1000"], 64 << 20)).await;
        cri.start_container(StartContainerRequest { container_id: id.clone() }).await.expect("StartContainer");
        let scope = format!("cri-containerd-{id}.scope");
        assert_eq!(memory_limit(base, &scope), (64u64 << 20).to_string());
        // The container's processes are there (inside, a v2 cgroup
        // namespace shows it as "/").
        let procs = cgroup_dir("pids", &format!("{base}/{scope}")).join("cgroup.procs");
        let procs = std::fs::read_to_string(&procs).unwrap_or_else(|e| panic!("{}: {e}", procs.display()));
        assert!(!procs.trim().is_empty(), "nothing runs in {scope}");
        if systemd {
            let o = std::process::Command::new("systemctl").args(["show", "-p", "ActiveState,Slice", &scope]).output();
            let o = text(&o.expect("systemctl").stdout);
            assert!(o.contains("ActiveState=active") && o.contains(&format!("Slice={slice}")), "{scope}: {o}");
        }
        let stop = StopContainerRequest { container_id: id.clone(), timeout: 1 };
        cri.stop_container(stop).await.expect("StopContainer");
        cri.remove_container(RemoveContainerRequest { container_id: id }).await.expect("RemoveContainer");
        cri.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.clone() }).await.expect("StopPodSandbox");
        cri.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod }).await.expect("RemovePodSandbox");
        assert!(!cgroup_dir("memory", &format!("{base}/{scope}")).exists(), "{scope} left");
    });
    // What kubelet does after the pod: its slice goes (with systemd, the
    // slice unit; without, the directories, innermost first).
    if systemd {
        let _ = std::process::Command::new("systemctl").args(["stop", "kubepods.slice"]).status();
    } else {
        for rel in [base, "/kubepods.slice/kubepods-burstable.slice", "/kubepods.slice"] {
            remove_pod_cgroup(rel);
        }
    }
}
