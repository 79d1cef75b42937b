//! Cgroup files the shim reads itself: a v1 cgroup's figures, into
//! libcgroups' `Stats`, and flat-keyed files (v2's memory.events). Read here rather than by libcgroups' v1 manager because that
//! manager finds the hierarchies only through the live mount table (a
//! private procfs handle), so it cannot read a fixture tree; it gives
//! cpuacct.stat's user/system in clock ticks where containerd's metrics
//! carry nanoseconds; and it reads mountinfo once per controller per call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use libcgroups::stats::{BlkioDeviceStat, BlkioStats, CpuStats, HugeTlbStats, MemoryData, MemoryStats, Stats};

/// The figures of the cgroup whose directory in controller `c`'s hierarchy
/// is `dir(c)` (None: that controller is not mounted). A controller that is
/// mounted but whose files cannot be read is an error naming the file.
pub fn v1_stats(dir: impl Fn(&str) -> Option<PathBuf>) -> Result<Stats, String> {
    let mut s = Stats::default();
    if let Some(d) = dir("cpuacct") {
        cpuacct(&d, &mut s.cpu)?;
    }
    if let Some(d) = dir("cpu") {
        let t = flat(&d.join("cpu.stat"))?;
        let get = |k: &str| t.get(k).copied().unwrap_or(0);
        s.cpu.throttling.periods = get("nr_periods");
        s.cpu.throttling.throttled_periods = get("nr_throttled");
        s.cpu.throttling.throttled_time = get("throttled_time");
    }
    if let Some(d) = dir("memory") {
        s.memory = memory(&d)?;
    }
    if let Some(d) = dir("pids") {
        s.pids.current = single(&d.join("pids.current"))?;
        s.pids.limit = single(&d.join("pids.max")).map(|l| if l == u64::MAX { 0 } else { l })?;
    }
    if let Some(d) = dir("blkio") {
        s.blkio = blkio(&d)?;
    }
    if let Some(d) = dir("hugetlb") {
        s.hugetlb = hugetlb(&d)?;
    }
    Ok(s)
}

fn cpuacct(d: &Path, cpu: &mut CpuStats) -> Result<(), String> {
    let u = &mut cpu.usage;
    u.usage_total = single(&d.join("cpuacct.usage"))?;
    u.per_core_usage_total = list(&d.join("cpuacct.usage_percpu"))?;
    // Nanoseconds where the kernel has them (4.7 and later), else the
    // clock ticks of cpuacct.stat, converted.
    match (optional(&d.join("cpuacct.usage_user"))?, optional(&d.join("cpuacct.usage_sys"))?) {
        (Some(user), Some(sys)) => (u.usage_user, u.usage_kernel) = (user, sys),
        _ => {
            let t = flat(&d.join("cpuacct.stat"))?;
            let ns = |k: &str| t.get(k).copied().unwrap_or(0).saturating_mul(1_000_000_000 / crate::sys::clock_ticks());
            (u.usage_user, u.usage_kernel) = (ns("user"), ns("system"));
        }
    }
    if d.join("cpuacct.usage_percpu_user").exists() {
        u.per_core_usage_user = list(&d.join("cpuacct.usage_percpu_user"))?;
        u.per_core_usage_kernel = list(&d.join("cpuacct.usage_percpu_sys"))?;
    }
    Ok(())
}

fn memory(d: &Path) -> Result<MemoryStats, String> {
    // memsw and kmem files exist only with swap accounting and on older
    // kernels: absent, they read as zero.
    let data = |prefix: &str, required: bool| -> Result<MemoryData, String> {
        let f = |name: &str| d.join(format!("{prefix}.{name}"));
        if !required && !f("usage_in_bytes").exists() {
            return Ok(MemoryData::default());
        }
        Ok(MemoryData {
            usage: single(&f("usage_in_bytes"))?,
            max_usage: single(&f("max_usage_in_bytes"))?,
            fail_count: single(&f("failcnt"))?,
            limit: single(&f("limit_in_bytes"))?,
        })
    };
    let stats = flat(&d.join("memory.stat"))?;
    Ok(MemoryStats {
        memory: data("memory", true)?,
        memswap: data("memory.memsw", false)?,
        kernel: data("memory.kmem", false)?,
        kernel_tcp: data("memory.kmem.tcp", false)?,
        cache: stats.get("cache").copied().unwrap_or(0),
        hierarchy: optional(&d.join("memory.use_hierarchy"))? == Some(1),
        stats,
        ..Default::default()
    })
}

/// The CFQ recursive files where that scheduler counts (containerd's rule:
/// `io_serviced_recursive` has entries), else the throttle layer's.
fn blkio(d: &Path) -> Result<BlkioStats, String> {
    let cfq = d.join("blkio.io_serviced_recursive");
    if cfq.exists() && !devices(&cfq)?.is_empty() {
        let f = |name: &str| devices(&d.join(format!("blkio.{name}_recursive")));
        return Ok(BlkioStats {
            service_bytes: f("io_service_bytes")?,
            serviced: f("io_serviced")?,
            queued: f("io_queued")?,
            service_time: f("io_service_time")?,
            wait_time: f("io_wait_time")?,
            merged: f("io_merged")?,
            time: f("time")?,
            sectors: f("sectors")?,
            ..Default::default()
        });
    }
    Ok(BlkioStats {
        service_bytes: devices(&d.join("blkio.throttle.io_service_bytes_recursive"))?,
        serviced: devices(&d.join("blkio.throttle.io_serviced_recursive"))?,
        ..Default::default()
    })
}

/// One entry per `hugetlb.<size>.usage_in_bytes` file in the directory.
fn hugetlb(d: &Path) -> Result<HashMap<String, HugeTlbStats>, String> {
    let mut out = HashMap::new();
    let entries = std::fs::read_dir(d).map_err(|e| format!("{}: {e}", d.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(size) = name.strip_prefix("hugetlb.").and_then(|n| n.strip_suffix(".usage_in_bytes")) else {
            continue;
        };
        if size.contains('.') {
            continue; // hugetlb.<size>.rsvd.*: reservations, not usage
        }
        let f = |what: &str| single(&d.join(format!("hugetlb.{size}.{what}")));
        let stats = HugeTlbStats {
            usage: f("usage_in_bytes")?,
            max_usage: f("max_usage_in_bytes")?,
            fail_count: f("failcnt")?,
        };
        out.insert(size.to_string(), stats);
    }
    Ok(out)
}

fn read_file(p: &Path) -> Result<String, String> {
    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn parse(p: &Path, v: &str) -> Result<u64, String> {
    match v {
        "max" => Ok(u64::MAX),
        // A v1 limit of "unlimited" reads as a huge positive number; a
        // negative one (-1) would not parse as u64 and means the same.
        v if v.starts_with('-') => Ok(u64::MAX),
        v => v.parse().map_err(|e| format!("{}: {v:?}: {e}", p.display())),
    }
}

fn single(p: &Path) -> Result<u64, String> {
    parse(p, read_file(p)?.trim())
}

fn optional(p: &Path) -> Result<Option<u64>, String> {
    if p.exists() {
        single(p).map(Some)
    } else {
        Ok(None)
    }
}

fn list(p: &Path) -> Result<Vec<u64>, String> {
    read_file(p)?.split_ascii_whitespace().map(|v| parse(p, v)).collect()
}

/// `key value` lines.
pub fn flat(p: &Path) -> Result<HashMap<String, u64>, String> {
    read_file(p)?
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| Ok((k.to_string(), parse(p, v.trim())?)))
        .collect()
}

/// `major:minor op value` lines; the file's closing `Total N` is left out.
fn devices(p: &Path) -> Result<Vec<BlkioDeviceStat>, String> {
    let mut out = Vec::new();
    for line in read_file(p)?.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let (dev, op, value) = match fields[..] {
            [dev, op, value] => (dev, Some(op.to_string()), value),
            [dev, value] if dev.contains(':') => (dev, None, value),
            _ => continue,
        };
        let Some((major, minor)) = dev.split_once(':') else { continue };
        out.push(BlkioDeviceStat {
            major: parse(p, major)?,
            minor: parse(p, minor)?,
            op_type: op,
            value: parse(p, value)?,
        });
    }
    Ok(out)
}
