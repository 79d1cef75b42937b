//! Pods through containerd's CRI plugin: the connection, each CRI call this
//! benchmark makes, a pod started and torn down as kubelet would, and the
//! cleanup of whatever this run left.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::figures::Laps;
use crate::procfs::{parent_dirs, remove_pod_cgroups, remove_run_cgroups, shims, CGROUP_PARENT};
use crate::{say, Args, Context, Res};

/// The label that marks this run's pods; its value is our pid.
const LABEL: &str = "myshim-bench-cri";
/// How often ContainerStatus is asked whether `true` exited. containerd 1.6
/// has no container events in CRI, so polling it is; the same for both
/// handlers, and short next to a pod's lifecycle.
pub const STATUS_POLL: Duration = Duration::from_millis(5);
/// Long enough for a loaded 2-core machine, short enough that a hung
/// containerd fails the run instead of hanging it.
const RPC_TIMEOUT: Duration = Duration::from_secs(120);
const SHIM_EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// A pod's name: its run's tag first, so a run's leftovers are known by it.
pub fn pod_name(run: &str, what: &str) -> String {
    format!("bench{run}-{what}")
}

async fn connect(address: &str) -> Res<Channel> {
    let path = address.to_string();
    Endpoint::try_from("http://localhost")
        .ctx(|| "endpoint".into())?
        .timeout(RPC_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await
        .ctx(|| format!("connect to containerd's CRI at {address}"))
}

/// A pod this run made, by sandbox id and name (the name gives its cgroup).
pub struct Pod {
    pub id: String,
    name: String,
    config: PodSandboxConfig,
}

pub struct Bench {
    cri: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    pub args: Args,
    run: String,
    /// Our cgroup parent's directories that existed before this run: those
    /// are not ours to remove.
    parents_before: BTreeSet<PathBuf>,
}

impl Bench {
    pub async fn new(args: Args) -> Res<Self> {
        let channel = connect(&args.address).await?;
        Ok(Bench {
            cri: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            run: std::process::id().to_string(),
            parents_before: parent_dirs(),
            args,
        })
    }

    /// One pod's sandbox config. Host network (NamespaceMode::Node): no CNI
    /// plugin runs, so what is measured is the runtime, not the bridge
    /// plugin, and the host's shared CNI bridge is never touched.
    pub fn sandbox_config(&self, kind: &str, handler: &str, i: usize) -> Res<PodSandboxConfig> {
        let name = pod_name(&self.run, &format!("{kind}-{handler}-{i}"));
        let logs = self.args.logs.join(&name);
        std::fs::create_dir_all(&logs).ctx(|| format!("mkdir {}", logs.display()))?;
        Ok(PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.clone(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            // Empty, as kubelet leaves it for a host-network pod: the pod
            // shares the host's UTS namespace, where runc (and myshim)
            // refuse to set a hostname.
            hostname: String::new(),
            log_directory: logs.to_string_lossy().into_owned(),
            labels: [(LABEL.to_string(), self.run.clone())].into(),
            linux: Some(LinuxPodSandboxConfig {
                // cgroupfs, as kubelet writes it.
                cgroup_parent: format!("/{CGROUP_PARENT}/pod{name}"),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn container_config(&self, command: &[&str]) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata { name: "app".into(), attempt: 0 }),
            image: Some(ImageSpec { image: self.args.image.clone(), ..Default::default() }),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: "app.log".into(),
            ..Default::default()
        }
    }

    /// Both images are in CRI's namespace (import_k8s_images), or the run
    /// would measure a pull, or fail late.
    pub async fn check_images(&mut self) -> Res<()> {
        for image in [self.args.image.clone(), self.args.pause_image.clone()] {
            let req = ImageStatusRequest {
                image: Some(ImageSpec { image: image.clone(), ..Default::default() }),
                verbose: false,
            };
            let status = self.images.image_status(req).await.ctx(|| format!("ImageStatus {image}"))?;
            if status.into_inner().image.is_none() {
                return Err(format!("{image} is not in containerd's k8s.io namespace: run import_k8s_images"));
            }
        }
        Ok(())
    }

    async fn run_sandbox(&mut self, config: &PodSandboxConfig, handler: &str) -> Res<String> {
        let req = RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: handler.into() };
        let r = self.cri.run_pod_sandbox(req).await.ctx(|| format!("RunPodSandbox ({handler})"))?;
        Ok(r.into_inner().pod_sandbox_id)
    }

    async fn create_container(&mut self, pod: &str, config: &PodSandboxConfig, c: ContainerConfig) -> Res<String> {
        let req = CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(c),
            sandbox_config: Some(config.clone()),
        };
        let r = self.cri.create_container(req).await.ctx(|| format!("CreateContainer in {pod}"))?;
        Ok(r.into_inner().container_id)
    }

    async fn start_container(&mut self, id: &str) -> Res<()> {
        let req = StartContainerRequest { container_id: id.into() };
        self.cri.start_container(req).await.ctx(|| format!("StartContainer {id}"))?;
        Ok(())
    }

    /// Polls ContainerStatus until the container exited; it must exit 0.
    pub async fn wait_exited(&mut self, id: &str) -> Res<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let req = ContainerStatusRequest { container_id: id.into(), verbose: false };
            let r = self.cri.container_status(req).await.ctx(|| format!("ContainerStatus {id}"))?;
            let status = r.into_inner().status.ok_or_else(|| format!("ContainerStatus {id}: no status"))?;
            if status.state == ContainerState::ContainerExited as i32 {
                return match status.exit_code {
                    0 => Ok(()),
                    code => Err(format!("container {id} exited {code}: {}", status.message)),
                };
            }
            if Instant::now() > deadline {
                return Err(format!("container {id} did not exit in 30 s"));
            }
            tokio::time::sleep(STATUS_POLL).await;
        }
    }

    pub async fn stop_container(&mut self, id: &str) -> Res<()> {
        let req = StopContainerRequest { container_id: id.into(), timeout: 1 };
        self.cri.stop_container(req).await.ctx(|| format!("StopContainer {id}"))?;
        Ok(())
    }

    pub async fn remove_container(&mut self, id: &str) -> Res<()> {
        let req = RemoveContainerRequest { container_id: id.into() };
        self.cri.remove_container(req).await.ctx(|| format!("RemoveContainer {id}"))?;
        Ok(())
    }

    pub async fn stop_sandbox(&mut self, id: &str) -> Res<()> {
        let req = StopPodSandboxRequest { pod_sandbox_id: id.into() };
        self.cri.stop_pod_sandbox(req).await.ctx(|| format!("StopPodSandbox {id}"))?;
        Ok(())
    }

    pub async fn remove_sandbox(&mut self, id: &str) -> Res<()> {
        let req = RemovePodSandboxRequest { pod_sandbox_id: id.into() };
        self.cri.remove_pod_sandbox(req).await.ctx(|| format!("RemovePodSandbox {id}"))?;
        Ok(())
    }

    /// A pod of one container running `command`, up; the step times.
    pub async fn start_pod(
        &mut self,
        config: PodSandboxConfig,
        handler: &str,
        command: &[&str],
        laps: &mut Laps,
    ) -> Res<(Pod, String)> {
        let id = self.run_sandbox(&config, handler).await?;
        laps.lap("run_pod_sandbox");
        let name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let pod = Pod { id, name, config };
        let container = self.create_container(&pod.id, &pod.config, self.container_config(command)).await?;
        laps.lap("create_container");
        self.start_container(&container).await?;
        laps.lap("start_container");
        Ok((pod, container))
    }

    /// Untimed teardown as kubelet does it: StopPodSandbox (which kills the
    /// pod's containers at once), RemovePodSandbox, then the pod's cgroup.
    pub async fn remove_pod(&mut self, pod: &Pod) -> Res<()> {
        self.stop_sandbox(&pod.id).await?;
        self.remove_sandbox(&pod.id).await?;
        self.after_pods(std::slice::from_ref(pod)).await
    }

    /// What follows removed pods: their shims gone (so no round or density
    /// count sees a previous pod's shim) and their cgroups removed.
    pub async fn after_pods(&mut self, pods: &[Pod]) -> Res<()> {
        let ids: BTreeSet<&str> = pods.iter().map(|p| p.id.as_str()).collect();
        let deadline = Instant::now() + SHIM_EXIT_TIMEOUT;
        loop {
            let left: Vec<i32> =
                shims(&self.args.address)?.into_iter().filter(|s| ids.contains(s.id.as_str())).map(|s| s.pid).collect();
            if left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("shims {left:?} outlived their pods by {} s", SHIM_EXIT_TIMEOUT.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for p in pods {
            remove_pod_cgroups(&p.name);
        }
        Ok(())
    }

    /// Best effort: every pod tried even when one fails; the first error.
    pub async fn remove_pods(&mut self, pods: &[Pod]) -> Res<()> {
        let mut first = Ok(());
        for pod in pods {
            let stopped = self.stop_sandbox(&pod.id).await;
            if let Err(e) = stopped.and(self.remove_sandbox(&pod.id).await) {
                say(&e);
                first = first.and(Err(e));
            }
        }
        first.and(self.after_pods(pods).await)
    }

    /// Whatever this run left: its labelled pods (listed from containerd, so
    /// even those an error interrupted), their shims and cgroups, the cgroup
    /// parents it created, its work directory.
    pub async fn cleanup(&mut self) {
        match self.our_pods().await {
            Ok(pods) if !pods.is_empty() => {
                say(&format!("removing {} pod(s) left by this run", pods.len()));
                if let Err(e) = self.remove_pods(&pods).await {
                    say(&e);
                }
            }
            Ok(_) => {}
            Err(e) => say(&e),
        }
        remove_run_cgroups(&self.run, &self.parents_before);
        let _ = std::fs::remove_dir_all(&self.args.logs);
    }

    async fn our_pods(&mut self) -> Res<Vec<Pod>> {
        let filter =
            PodSandboxFilter { label_selector: [(LABEL.to_string(), self.run.clone())].into(), ..Default::default() };
        let r = self.cri.list_pod_sandbox(ListPodSandboxRequest { filter: Some(filter) }).await;
        let items = r.ctx(|| "ListPodSandbox".into())?.into_inner().items;
        Ok(items
            .into_iter()
            .map(|s| Pod {
                name: s.metadata.map(|m| m.name).unwrap_or_default(),
                id: s.id,
                config: PodSandboxConfig::default(),
            })
            .collect())
    }
}
