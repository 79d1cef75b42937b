//! Capability names and the kernel's numbering of them.

use oci_spec::runtime::Capabilities;

use super::InitError;

/// Capability names in kernel number order (capability.h).
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The set as a bit mask; unknown names are an error, never dropped.
pub fn cap_mask(set: &Option<Capabilities>, what: &str) -> Result<u64, InitError> {
    let mut mask = 0u64;
    for cap in set.iter().flatten() {
        let name = serde_json::to_value(cap).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let bit = CAPS
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| InitError::Msg(format!("process.capabilities.{what}: unknown capability {name:?}")))?;
        mask |= 1 << bit;
    }
    Ok(mask)
}

pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CAPS.len() as u32 - 1)
}

/// Every capability name this shim knows, in kernel order.
pub fn all_names() -> &'static [&'static str] {
    CAPS
}

pub fn name(cap: u32) -> &'static str {
    CAPS.get(cap as usize).copied().unwrap_or("CAP_UNKNOWN")
}

/// Names in a set, for tests.
#[cfg(test)]
fn cap_names(mask: u64) -> std::collections::HashSet<&'static str> {
    CAPS.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, n)| *n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn capability_masks_follow_kernel_numbers() {
        let set: Capabilities =
            serde_json::from_value(serde_json::json!(["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"])).expect("caps");
        let m = cap_mask(&Some(set), "bounding").expect("mask");
        assert_eq!(m, (1 << 0) | (1 << 5) | (1 << 21));
        assert_eq!(cap_names(m), HashSet::from(["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"]));
        assert_eq!(cap_mask(&None, "effective").expect("none"), 0);
    }
}
