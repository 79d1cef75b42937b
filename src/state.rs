//! What the `delete` cleanup needs if the shim dies: one small JSON record per
//! container, replaced atomically (tmp + rename) so a reader never sees half.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub bundle: PathBuf,
    /// The rootfs we mounted (and so must unmount), if we mounted one.
    pub rootfs_mount: Option<PathBuf>,
    pub cgroup: PathBuf,
    /// The systemd `slice:prefix:name` whose scope holds the cgroup.
    #[serde(default)]
    pub systemd_unit: Option<String>,
    /// The shim made the cgroup: only then may the cleanup kill through it
    /// and remove it (absent in older records: left alone).
    #[serde(default)]
    pub cgroup_owned: bool,
    /// The container has no pid namespace of its own.
    #[serde(default)]
    pub shared_pidns: bool,
    pub pid: i32,
}

/// `<root>/<address hash>/<namespace>/<id>`: one containerd's containers
/// never collide with another's.
pub fn dir(root: &Path, address: &str, namespace: &str, id: &str) -> PathBuf {
    root.join(format!("{:016x}", crate::fnv1a(address.as_bytes()))).join(namespace).join(id)
}

pub fn write(dir: &Path, rec: &Record) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("state.json.tmp");
    // No fsync: the state lives on tmpfs (/run) and is meaningless after a reboot.
    std::fs::write(&tmp, serde_json::to_vec(rec)?)?;
    std::fs::rename(&tmp, dir.join("state.json"))
}

pub fn read(dir: &Path) -> std::io::Result<Record> {
    Ok(serde_json::from_slice(&std::fs::read(dir.join("state.json"))?)?)
}

pub fn remove(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_replace_remove() {
        let root = std::env::temp_dir().join(format!("myshim-state-{}", std::process::id()));
        let d = dir(&root, "/run/containerd/containerd.sock", "default", "c1");
        let mut rec = Record {
            id: "c1".into(),
            bundle: "/b".into(),
            rootfs_mount: None,
            cgroup: "/default/c1".into(),
            systemd_unit: None,
            cgroup_owned: true,
            shared_pidns: false,
            pid: 0,
        };
        write(&d, &rec).expect("write");
        rec.pid = 42;
        write(&d, &rec).expect("replace");
        assert_eq!(read(&d).expect("read"), rec);
        assert!(!d.join("state.json.tmp").exists());
        remove(&d).expect("remove");
        remove(&d).expect("idempotent");
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}
