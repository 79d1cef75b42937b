//! Stats as containerd reads them: a cgroup's figures turned into
//! `io.containerd.cgroups.v1.Metrics` on a v1 host and
//! `io.containerd.cgroups.v2.Metrics` on a v2 host. Pure code.

use containerd_shim_protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, HugetlbStat, MemoryEntry, MemoryStat, Metrics, PidsStat, Throttle,
};
use containerd_shim_protos::cgroups_v2::metrics as v2m;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::protobuf::MessageField;
use libcgroups::stats::{BlkioDeviceStat, MemoryData, PSIStats, Stats};

use crate::cgroups::CgroupStats;

pub const V1_TYPE_URL: &str = "io.containerd.cgroups.v1.Metrics";
pub const V2_TYPE_URL: &str = "io.containerd.cgroups.v2.Metrics";

/// The metrics message for the host's cgroup version: its type URL and bytes.
pub fn encode(s: &CgroupStats) -> Result<(&'static str, Vec<u8>), String> {
    let bytes = match s {
        CgroupStats::V1(stats) => v1(stats).write_to_bytes(),
        CgroupStats::V2(stats, events) => v2(stats, events).write_to_bytes(),
    }
    .map_err(|e| format!("encode metrics: {e}"))?;
    Ok((if matches!(s, CgroupStats::V1(_)) { V1_TYPE_URL } else { V2_TYPE_URL }, bytes))
}

pub fn v1(s: &Stats) -> Metrics {
    let hugetlb = by_page_size(s)
        .map(|(size, h)| HugetlbStat {
            usage: h.usage,
            max: h.max_usage,
            failcnt: h.fail_count,
            pagesize: size.clone(),
            ..Default::default()
        })
        .collect();
    Metrics {
        hugetlb,
        pids: MessageField::some(PidsStat { current: s.pids.current, limit: s.pids.limit, ..Default::default() }),
        cpu: MessageField::some(CPUStat {
            usage: MessageField::some(CPUUsage {
                total: s.cpu.usage.usage_total,
                kernel: s.cpu.usage.usage_kernel,
                user: s.cpu.usage.usage_user,
                per_cpu: s.cpu.usage.per_core_usage_total.clone(),
                ..Default::default()
            }),
            throttling: MessageField::some(Throttle {
                periods: s.cpu.throttling.periods,
                throttled_periods: s.cpu.throttling.throttled_periods,
                throttled_time: s.cpu.throttling.throttled_time,
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(memory(s)),
        blkio: MessageField::some(BlkIOStat {
            io_service_bytes_recursive: blkio(&s.blkio.service_bytes),
            io_serviced_recursive: blkio(&s.blkio.serviced),
            io_queued_recursive: blkio(&s.blkio.queued),
            io_service_time_recursive: blkio(&s.blkio.service_time),
            io_wait_time_recursive: blkio(&s.blkio.wait_time),
            io_merged_recursive: blkio(&s.blkio.merged),
            io_time_recursive: blkio(&s.blkio.time),
            sectors_recursive: blkio(&s.blkio.sectors),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Huge page figures in page-size order (libcgroups keeps them in a map).
fn by_page_size(s: &Stats) -> impl Iterator<Item = (&String, &libcgroups::stats::HugeTlbStats)> {
    let mut sizes: Vec<_> = s.hugetlb.iter().collect();
    sizes.sort_by(|a, b| a.0.cmp(b.0));
    sizes.into_iter()
}

fn entry(d: &MemoryData) -> MessageField<MemoryEntry> {
    MessageField::some(MemoryEntry {
        limit: d.limit,
        usage: d.usage,
        max: d.max_usage,
        failcnt: d.fail_count,
        ..Default::default()
    })
}

fn memory(s: &Stats) -> MemoryStat {
    let m = &s.memory;
    let stat = |k: &str| m.stats.get(k).copied().unwrap_or(0);
    MemoryStat {
        cache: stat("cache"),
        rss: stat("rss"),
        rss_huge: stat("rss_huge"),
        mapped_file: stat("mapped_file"),
        dirty: stat("dirty"),
        writeback: stat("writeback"),
        pg_pg_in: stat("pgpgin"),
        pg_pg_out: stat("pgpgout"),
        pg_fault: stat("pgfault"),
        pg_maj_fault: stat("pgmajfault"),
        inactive_anon: stat("inactive_anon"),
        active_anon: stat("active_anon"),
        inactive_file: stat("inactive_file"),
        active_file: stat("active_file"),
        unevictable: stat("unevictable"),
        hierarchical_memory_limit: stat("hierarchical_memory_limit"),
        hierarchical_swap_limit: stat("hierarchical_memsw_limit"),
        total_cache: stat("total_cache"),
        total_rss: stat("total_rss"),
        total_rss_huge: stat("total_rss_huge"),
        total_mapped_file: stat("total_mapped_file"),
        total_dirty: stat("total_dirty"),
        total_writeback: stat("total_writeback"),
        total_pg_pg_in: stat("total_pgpgin"),
        total_pg_pg_out: stat("total_pgpgout"),
        total_pg_fault: stat("total_pgfault"),
        total_pg_maj_fault: stat("total_pgmajfault"),
        total_inactive_anon: stat("total_inactive_anon"),
        total_active_anon: stat("total_active_anon"),
        total_inactive_file: stat("total_inactive_file"),
        total_active_file: stat("total_active_file"),
        total_unevictable: stat("total_unevictable"),
        usage: entry(&m.memory),
        swap: entry(&m.memswap),
        kernel: entry(&m.kernel),
        kernel_tcp: entry(&m.kernel_tcp),
        ..Default::default()
    }
}

fn blkio(list: &[BlkioDeviceStat]) -> Vec<BlkIOEntry> {
    list.iter()
        .map(|d| BlkIOEntry {
            op: d.op_type.clone().unwrap_or_default(),
            major: d.major,
            minor: d.minor,
            value: d.value,
            ..Default::default()
        })
        .collect()
}

/// cgroup v2: cpu in microseconds as cpu.stat gives them, memory.stat's
/// keys by name, io per device, memory.events as they stand.
pub fn v2(s: &Stats, events: &std::collections::HashMap<String, u64>) -> v2m::Metrics {
    let event = |k: &str| events.get(k).copied().unwrap_or(0);
    let hugetlb = by_page_size(s)
        .map(|(size, h)| v2m::HugeTlbStat {
            current: h.usage,
            max: h.max_usage,
            failcnt: h.fail_count,
            pagesize: size.clone(),
            ..Default::default()
        })
        .collect();
    // pids.max "max" is 0 to libcgroups; containerd's own reader (the runc
    // shim's) reports it as u64::MAX, which clients print as unlimited.
    let pids_limit = if s.pids.limit == 0 { u64::MAX } else { s.pids.limit };
    v2m::Metrics {
        pids: MessageField::some(v2m::PidsStat { current: s.pids.current, limit: pids_limit, ..Default::default() }),
        cpu: MessageField::some(v2m::CPUStat {
            usage_usec: s.cpu.usage.usage_total,
            user_usec: s.cpu.usage.usage_user,
            system_usec: s.cpu.usage.usage_kernel,
            nr_periods: s.cpu.throttling.periods,
            nr_throttled: s.cpu.throttling.throttled_periods,
            throttled_usec: s.cpu.throttling.throttled_time,
            psi: psi(&s.cpu.psi),
            ..Default::default()
        }),
        memory: MessageField::some(memory_v2(s)),
        io: MessageField::some(v2m::IOStat { usage: io_v2(s), psi: psi(&s.blkio.psi), ..Default::default() }),
        hugetlb,
        memory_events: MessageField::some(v2m::MemoryEvents {
            low: event("low"),
            high: event("high"),
            max: event("max"),
            oom: event("oom"),
            oom_kill: event("oom_kill"),
            oom_group_kill: event("oom_group_kill"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn psi(p: &PSIStats) -> MessageField<v2m::PSIStats> {
    let data = |d: &libcgroups::stats::PSIData| {
        MessageField::some(v2m::PSIData { avg10: d.avg10, avg60: d.avg60, avg300: d.avg300, ..Default::default() })
    };
    MessageField::some(v2m::PSIStats { some: data(&p.some), full: data(&p.full), ..Default::default() })
}

fn memory_v2(s: &Stats) -> v2m::MemoryStat {
    let m = &s.memory;
    let stat = |k: &str| m.stats.get(k).copied().unwrap_or(0);
    v2m::MemoryStat {
        anon: stat("anon"),
        file: stat("file"),
        kernel_stack: stat("kernel_stack"),
        slab: stat("slab"),
        sock: stat("sock"),
        shmem: stat("shmem"),
        file_mapped: stat("file_mapped"),
        file_dirty: stat("file_dirty"),
        file_writeback: stat("file_writeback"),
        anon_thp: stat("anon_thp"),
        inactive_anon: stat("inactive_anon"),
        active_anon: stat("active_anon"),
        inactive_file: stat("inactive_file"),
        active_file: stat("active_file"),
        unevictable: stat("unevictable"),
        slab_reclaimable: stat("slab_reclaimable"),
        slab_unreclaimable: stat("slab_unreclaimable"),
        pgfault: stat("pgfault"),
        pgmajfault: stat("pgmajfault"),
        workingset_refault: stat("workingset_refault"),
        workingset_activate: stat("workingset_activate"),
        workingset_nodereclaim: stat("workingset_nodereclaim"),
        pgrefill: stat("pgrefill"),
        pgscan: stat("pgscan"),
        pgsteal: stat("pgsteal"),
        pgactivate: stat("pgactivate"),
        pgdeactivate: stat("pgdeactivate"),
        pglazyfree: stat("pglazyfree"),
        pglazyfreed: stat("pglazyfreed"),
        thp_fault_alloc: stat("thp_fault_alloc"),
        thp_collapse_alloc: stat("thp_collapse_alloc"),
        usage: m.memory.usage,
        usage_limit: m.memory.limit,
        max_usage: m.memory.max_usage,
        swap_usage: m.memswap.usage,
        swap_limit: m.memswap.limit,
        swap_max_usage: m.memswap.max_usage,
        psi: psi(&m.psi),
        ..Default::default()
    }
}

/// io.stat's per-device counters, one entry per device in device order
/// (libcgroups splits them into read/write byte and operation lists).
fn io_v2(s: &Stats) -> Vec<v2m::IOEntry> {
    let mut devices: std::collections::BTreeMap<(u64, u64), v2m::IOEntry> = Default::default();
    let mut add = |list: &[BlkioDeviceStat], bytes: bool| {
        for d in list {
            let e = devices.entry((d.major, d.minor)).or_insert_with(|| v2m::IOEntry {
                major: d.major,
                minor: d.minor,
                ..Default::default()
            });
            match (d.op_type.as_deref(), bytes) {
                (Some("read"), true) => e.rbytes = d.value,
                (Some("write"), true) => e.wbytes = d.value,
                (Some("read"), false) => e.rios = d.value,
                (Some("write"), false) => e.wios = d.value,
                _ => {}
            }
        }
    };
    add(&s.blkio.service_bytes, true);
    add(&s.blkio.serviced, false);
    devices.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use libcgroups::stats::HugeTlbStats;

    #[test]
    fn an_unlimited_v2_pids_limit_reads_as_containerd_reads_max() {
        let mut s = Stats::default();
        s.pids.current = 1;
        let m = v2(&s, &std::collections::HashMap::new());
        assert_eq!(m.pids.limit, u64::MAX);
        s.pids.limit = 64;
        assert_eq!(v2(&s, &std::collections::HashMap::new()).pids.limit, 64);
    }

    #[test]
    fn v1_metrics_carry_libcgroups_figures() {
        let mut s = Stats::default();
        s.cpu.usage.usage_total = 1_000;
        s.cpu.usage.usage_user = 600;
        s.cpu.usage.usage_kernel = 400;
        s.cpu.usage.per_core_usage_total = vec![700, 300];
        s.cpu.throttling.throttled_periods = 3;
        s.pids.current = 2;
        s.pids.limit = 100;
        s.memory.memory = MemoryData { usage: 4096, max_usage: 8192, fail_count: 1, limit: 65536 };
        s.memory.stats = [("cache".to_string(), 12), ("rss".to_string(), 34), ("total_pgfault".to_string(), 56)].into();
        s.hugetlb = [("2MB".to_string(), HugeTlbStats { usage: 1, max_usage: 2, fail_count: 3 })].into();
        s.blkio.service_bytes = vec![BlkioDeviceStat { major: 8, minor: 0, op_type: Some("Read".into()), value: 512 }];
        let m = v1(&s);
        let cpu = m.cpu.usage.as_ref().expect("cpu");
        assert_eq!((cpu.total, cpu.user, cpu.kernel, cpu.per_cpu.clone()), (1_000, 600, 400, vec![700, 300]));
        assert_eq!(m.cpu.throttling.throttled_periods, 3);
        assert_eq!((m.pids.current, m.pids.limit), (2, 100));
        let mem = &m.memory;
        assert_eq!((mem.cache, mem.rss, mem.total_pg_fault), (12, 34, 56));
        assert_eq!((mem.usage.usage, mem.usage.max, mem.usage.failcnt, mem.usage.limit), (4096, 8192, 1, 65536));
        assert_eq!(m.hugetlb[0].pagesize, "2MB");
        assert_eq!((m.hugetlb[0].usage, m.hugetlb[0].max, m.hugetlb[0].failcnt), (1, 2, 3));
        let b = &m.blkio.io_service_bytes_recursive[0];
        assert_eq!((b.op.as_str(), b.major, b.minor, b.value), ("Read", 8, 0, 512));
    }
}
