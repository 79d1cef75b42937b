//! runc's default device rules, and which limits the v1 fast path writes
//! itself.

use oci_spec::runtime::{LinuxCpu, LinuxDeviceCgroup, LinuxResources};

/// Whether the device rules and cpu shares are all there is to apply.
pub(super) fn devices_and_shares_only(r: &LinuxResources) -> bool {
    let shares_only = |c: &LinuxCpu| {
        let mut only = LinuxCpu::default();
        only.set_shares(c.shares());
        *c == only
    };
    r.memory().is_none()
        && r.cpu().as_ref().is_none_or(shares_only)
        && r.pids().is_none()
        && r.block_io().is_none()
        && r.hugepage_limits().as_ref().is_none_or(|h| h.is_empty())
        && r.network().is_none()
        && r.rdma().as_ref().is_none_or(|m| m.is_empty())
        && r.unified().as_ref().is_none_or(|m| m.is_empty())
}

/// The device rules every container needs (runc's defaults), appended after
/// the config's own so a "deny all" in the config does not take /dev/null away.
pub(super) fn with_default_devices(r: &LinuxResources) -> LinuxResources {
    let mut r = r.clone();
    let Some(mut rules) = r.devices().clone() else {
        return r;
    };
    let defaults: &[(&str, Option<i64>, Option<i64>, &str)] = &[
        ("c", None, None, "m"),
        ("b", None, None, "m"),
        ("c", Some(1), Some(3), "rwm"),
        ("c", Some(1), Some(5), "rwm"),
        ("c", Some(1), Some(7), "rwm"),
        ("c", Some(1), Some(8), "rwm"),
        ("c", Some(1), Some(9), "rwm"),
        ("c", Some(5), Some(0), "rwm"),
        ("c", Some(5), Some(1), "rwm"),
        ("c", Some(5), Some(2), "rwm"),
        ("c", Some(136), None, "rwm"),
        // tun/tap: libcgroups' default too, and runc's again since 1.2.2.
        ("c", Some(10), Some(200), "rwm"),
    ];
    for (typ, major, minor, access) in defaults {
        let v = serde_json::json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": access});
        if let Ok(rule) = serde_json::from_value::<LinuxDeviceCgroup>(v) {
            rules.push(rule);
        }
    }
    r.set_devices(Some(rules));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_a_deny_all() {
        let r: LinuxResources =
            serde_json::from_value(serde_json::json!({"devices": [{"allow": false, "access": "rwm"}]})).expect("r");
        let out = with_default_devices(&r);
        let rules = out.devices().clone().expect("rules");
        assert!(!rules[0].allow());
        assert_eq!(rules.len(), 13);
        assert!(rules[1..].iter().all(|d| d.allow()));
        let none = with_default_devices(&LinuxResources::default());
        assert!(none.devices().is_none());
    }

    #[test]
    fn only_device_rules_and_a_cpu_weight_skip_libcgroups() {
        let r = |v: serde_json::Value| -> LinuxResources { serde_json::from_value(v).expect("resources") };
        let devices = serde_json::json!([{"allow": false, "access": "rwm"}]);
        for (v, simple) in [
            (serde_json::json!({}), true),
            (serde_json::json!({"devices": devices}), true),
            (serde_json::json!({"devices": devices, "cpu": {"shares": 1024}}), true),
            (serde_json::json!({"cpu": {}}), true),
            (serde_json::json!({"cpu": {"shares": 512, "quota": 50000}}), false),
            (serde_json::json!({"cpu": {"cpus": "0"}}), false),
            (serde_json::json!({"cpu": {"shares": 2, "idle": 1}}), false),
            (serde_json::json!({"devices": devices, "memory": {"limit": 1048576}}), false),
            (serde_json::json!({"pids": {"limit": 10}}), false),
        ] {
            assert_eq!(devices_and_shares_only(&r(v.clone())), simple, "{v}");
        }
    }
}
