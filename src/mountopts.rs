//! Mount option strings (as in config.json and containerd's rootfs mounts)
//! turned into mount(2) flags. Pure, so it is tested without root.

use libc::{
    MS_BIND, MS_DIRSYNC, MS_LAZYTIME, MS_MANDLOCK, MS_NOATIME, MS_NODEV, MS_NODIRATIME, MS_NOEXEC, MS_NOSUID,
    MS_PRIVATE, MS_RDONLY, MS_REC, MS_RELATIME, MS_SHARED, MS_SILENT, MS_SLAVE, MS_STRICTATIME, MS_SYNCHRONOUS,
    MS_UNBINDABLE,
};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount itself (and the bind remount).
    pub flags: u64,
    /// Propagation flags, applied in a separate mount(2) call as the kernel requires.
    pub propagation: u64,
    /// Filesystem-specific options, joined with ',' for the data argument.
    pub data: Vec<String>,
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags & MS_BIND != 0
    }

    pub fn data_string(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }
}

/// The options `parse` turns into flags or propagation (anything else is
/// passed to the filesystem as data): what `features` reports.
pub const KNOWN: &[&str] = &[
    "defaults",
    "ro",
    "rw",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "exec",
    "noexec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "silent",
    "loud",
    "bind",
    "rbind",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

pub fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    for opt in options {
        let (set, clear): (u64, u64) = match opt.as_str() {
            "defaults" => (0, 0),
            "ro" => (MS_RDONLY, 0),
            "rw" => (0, MS_RDONLY),
            "suid" => (0, MS_NOSUID),
            "nosuid" => (MS_NOSUID, 0),
            "dev" => (0, MS_NODEV),
            "nodev" => (MS_NODEV, 0),
            "exec" => (0, MS_NOEXEC),
            "noexec" => (MS_NOEXEC, 0),
            "sync" => (MS_SYNCHRONOUS, 0),
            "async" => (0, MS_SYNCHRONOUS),
            "dirsync" => (MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (MS_MANDLOCK, 0),
            "nomand" => (0, MS_MANDLOCK),
            "atime" => (0, MS_NOATIME),
            "noatime" => (MS_NOATIME, 0),
            "diratime" => (0, MS_NODIRATIME),
            "nodiratime" => (MS_NODIRATIME, 0),
            "relatime" => (MS_RELATIME, 0),
            "norelatime" => (0, MS_RELATIME),
            "strictatime" => (MS_STRICTATIME, 0),
            "nostrictatime" => (0, MS_STRICTATIME),
            "lazytime" => (MS_LAZYTIME, 0),
            "nolazytime" => (0, MS_LAZYTIME),
            "silent" => (MS_SILENT, 0),
            "loud" => (0, MS_SILENT),
            "bind" => (MS_BIND, 0),
            "rbind" => (MS_BIND | MS_REC, 0),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable" => {
                let base = match opt.trim_start_matches('r') {
                    "private" => MS_PRIVATE,
                    "shared" => MS_SHARED,
                    "slave" => MS_SLAVE,
                    _ => MS_UNBINDABLE,
                };
                let rec = if opt.starts_with('r') { MS_REC } else { 0 };
                out.propagation |= base | rec;
                continue;
            }
            _ => {
                out.data.push(opt.clone());
                continue;
            }
        };
        out.flags = (out.flags | set) & !clear;
    }
    out
}

/// Parses one `rootfsPropagation` value.
pub fn propagation(value: &str) -> Option<u64> {
    let p = parse(&[value.to_string()]);
    (p.flags == 0 && p.data.is_empty() && p.propagation != 0).then_some(p.propagation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_option_is_a_flag_or_a_propagation() {
        for o in KNOWN {
            assert!(parse(&[o.to_string()]).data.is_empty(), "{o} would go to the filesystem as data");
        }
        assert_eq!(parse(&["size=1k".to_string()]).data, ["size=1k"]);
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_data_and_propagation_are_separated() {
        let o = parse(&s(&["rbind", "ro", "nosuid", "rslave", "mode=755", "size=65536k"]));
        assert_eq!(o.flags, MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID);
        assert_eq!(o.propagation, MS_SLAVE | MS_REC);
        assert_eq!(o.data_string().as_deref(), Some("mode=755,size=65536k"));
        assert!(o.is_bind());
    }

    #[test]
    fn later_options_override_earlier() {
        assert_eq!(parse(&s(&["ro", "rw"])).flags, 0);
        assert_eq!(parse(&s(&["noexec", "exec", "nodev"])).flags, MS_NODEV);
    }

    #[test]
    fn overlay_options_are_data() {
        let o = parse(&s(&["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l"]));
        assert_eq!(o.flags, 0);
        assert_eq!(o.data.len(), 4);
    }

    #[test]
    fn rootfs_propagation_values() {
        assert_eq!(propagation("rprivate"), Some(MS_PRIVATE | MS_REC));
        assert_eq!(propagation("shared"), Some(MS_SHARED));
        assert_eq!(propagation("bogus"), None);
        assert_eq!(propagation("ro"), None);
    }
}
