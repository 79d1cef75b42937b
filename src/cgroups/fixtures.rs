//! Fixture cgroup trees, files written as the kernel writes them, read by
//! the code Stats uses and turned into the exact metrics containerd gets.

use std::path::{Path, PathBuf};

use containerd_shim_protos::cgroups::metrics as v1m;
use containerd_shim_protos::cgroups_v2::metrics as v2m;
use containerd_shim_protos::protobuf::MessageField;
use oci_spec::runtime::LinuxResources;

use super::{Cgroup, CgroupStats, V1Mounts};

fn tree(name: &str) -> PathBuf {
    crate::scratch_dir(&format!("cg-{name}"))
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write fixture file");
    }
}

const UNLIMITED: &str = "9223372036854771712\n";

/// A v1 cgroup /default/c1 in its own hierarchy per controller, as a
/// 5.10 kernel shows it (throttle-layer blkio: no CFQ entries).
fn v1_tree(root: &Path, ns_counters: bool) -> V1Mounts {
    let c1 = |ctl: &str| root.join(ctl).join("default/c1");
    write(
        &c1("cpuacct"),
        &[
            ("cpuacct.usage", "123456789\n"),
            ("cpuacct.usage_percpu", "100000000 23456789 \n"),
            ("cpuacct.stat", "user 8\nsystem 4\n"),
        ],
    );
    if ns_counters {
        write(
            &c1("cpuacct"),
            &[
                ("cpuacct.usage_user", "80000000\n"),
                ("cpuacct.usage_sys", "43456789\n"),
                ("cpuacct.usage_percpu_user", "60000000 20000000 \n"),
                ("cpuacct.usage_percpu_sys", "40000000 3456789 \n"),
            ],
        );
    }
    write(
        &c1("cpu"),
        &[("cpu.stat", "nr_periods 10\nnr_throttled 2\nthrottled_time 3000000\nnr_bursts 0\nburst_time 0\n")],
    );
    write(
        &c1("memory"),
        &[
            ("memory.usage_in_bytes", "4194304\n"),
            ("memory.max_usage_in_bytes", "8388608\n"),
            ("memory.failcnt", "1\n"),
            ("memory.limit_in_bytes", "33554432\n"),
            ("memory.memsw.usage_in_bytes", "4200000\n"),
            ("memory.memsw.max_usage_in_bytes", "8400000\n"),
            ("memory.memsw.failcnt", "0\n"),
            ("memory.memsw.limit_in_bytes", UNLIMITED),
            ("memory.kmem.usage_in_bytes", "1048576\n"),
            ("memory.kmem.max_usage_in_bytes", "2097152\n"),
            ("memory.kmem.failcnt", "0\n"),
            ("memory.kmem.limit_in_bytes", UNLIMITED),
            ("memory.kmem.tcp.usage_in_bytes", "0\n"),
            ("memory.kmem.tcp.max_usage_in_bytes", "0\n"),
            ("memory.kmem.tcp.failcnt", "0\n"),
            ("memory.kmem.tcp.limit_in_bytes", UNLIMITED),
            ("memory.use_hierarchy", "1\n"),
            (
                "memory.stat",
                "cache 12288\nrss 2744320\nrss_huge 0\nshmem 0\nmapped_file 4096\ndirty 8192\nwriteback 0\n\
                 swap 0\npgpgin 1000\npgpgout 300\npgfault 1500\npgmajfault 2\ninactive_anon 2600000\n\
                 active_anon 144320\ninactive_file 8192\nactive_file 4096\nunevictable 0\n\
                 hierarchical_memory_limit 33554432\nhierarchical_memsw_limit 9223372036854771712\n\
                 total_cache 12288\ntotal_rss 2744320\ntotal_rss_huge 0\ntotal_shmem 0\n\
                 total_mapped_file 4096\ntotal_dirty 8192\ntotal_writeback 0\ntotal_swap 0\n\
                 total_pgpgin 1000\ntotal_pgpgout 300\ntotal_pgfault 1500\ntotal_pgmajfault 2\n\
                 total_inactive_anon 2600000\ntotal_active_anon 144320\ntotal_inactive_file 8192\n\
                 total_active_file 4096\ntotal_unevictable 0\n",
            ),
        ],
    );
    write(&c1("pids"), &[("pids.current", "3\n"), ("pids.max", "max\n")]);
    let io = |bytes: u64| {
        format!(
            "8:0 Read {bytes}\n8:0 Write {}\n8:0 Sync {}\n8:0 Async 0\n8:0 Discard 0\n8:0 Total {}\nTotal {}\n",
            bytes * 2,
            bytes * 3,
            bytes * 3,
            bytes * 3
        )
    };
    write(
        &c1("blkio"),
        &[
            ("blkio.io_serviced_recursive", "Total 0\n"),
            ("blkio.throttle.io_service_bytes_recursive", &io(4096)),
            ("blkio.throttle.io_serviced_recursive", &io(1)),
        ],
    );
    write(
        &c1("hugetlb"),
        &[
            ("hugetlb.2MB.usage_in_bytes", "2097152\n"),
            ("hugetlb.2MB.max_usage_in_bytes", "4194304\n"),
            ("hugetlb.2MB.failcnt", "1\n"),
            ("hugetlb.2MB.rsvd.usage_in_bytes", "0\n"),
            ("hugetlb.1GB.usage_in_bytes", "0\n"),
            ("hugetlb.1GB.max_usage_in_bytes", "0\n"),
            ("hugetlb.1GB.failcnt", "0\n"),
        ],
    );
    ["cpuacct", "cpu", "memory", "pids", "blkio", "hugetlb"]
        .into_iter()
        .map(|ctl| (ctl.to_string(), root.join(ctl)))
        .collect()
}

fn blk(op: &str, value: u64) -> v1m::BlkIOEntry {
    v1m::BlkIOEntry { op: op.into(), major: 8, minor: 0, value, ..Default::default() }
}

fn blk_list(unit: u64) -> Vec<v1m::BlkIOEntry> {
    vec![
        blk("Read", unit),
        blk("Write", unit * 2),
        blk("Sync", unit * 3),
        blk("Async", 0),
        blk("Discard", 0),
        blk("Total", unit * 3),
    ]
}

fn v1_expected(user: u64, kernel: u64) -> v1m::Metrics {
    let entry = |usage, max, failcnt, limit| {
        MessageField::some(v1m::MemoryEntry { usage, max, failcnt, limit, ..Default::default() })
    };
    let unlimited = 9223372036854771712;
    let hugetlb = |pagesize: &str, usage, max, failcnt| v1m::HugetlbStat {
        pagesize: pagesize.into(),
        usage,
        max,
        failcnt,
        ..Default::default()
    };
    v1m::Metrics {
        hugetlb: vec![hugetlb("1GB", 0, 0, 0), hugetlb("2MB", 2097152, 4194304, 1)],
        pids: MessageField::some(v1m::PidsStat { current: 3, limit: 0, ..Default::default() }),
        cpu: MessageField::some(v1m::CPUStat {
            usage: MessageField::some(v1m::CPUUsage {
                total: 123456789,
                kernel,
                user,
                per_cpu: vec![100000000, 23456789],
                ..Default::default()
            }),
            throttling: MessageField::some(v1m::Throttle {
                periods: 10,
                throttled_periods: 2,
                throttled_time: 3000000,
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(v1m::MemoryStat {
            cache: 12288,
            rss: 2744320,
            mapped_file: 4096,
            dirty: 8192,
            pg_pg_in: 1000,
            pg_pg_out: 300,
            pg_fault: 1500,
            pg_maj_fault: 2,
            inactive_anon: 2600000,
            active_anon: 144320,
            inactive_file: 8192,
            active_file: 4096,
            hierarchical_memory_limit: 33554432,
            hierarchical_swap_limit: unlimited,
            total_cache: 12288,
            total_rss: 2744320,
            total_mapped_file: 4096,
            total_dirty: 8192,
            total_pg_pg_in: 1000,
            total_pg_pg_out: 300,
            total_pg_fault: 1500,
            total_pg_maj_fault: 2,
            total_inactive_anon: 2600000,
            total_active_anon: 144320,
            total_inactive_file: 8192,
            total_active_file: 4096,
            usage: entry(4194304, 8388608, 1, 33554432),
            swap: entry(4200000, 8400000, 0, unlimited),
            kernel: entry(1048576, 2097152, 0, unlimited),
            kernel_tcp: entry(0, 0, 0, unlimited),
            ..Default::default()
        }),
        blkio: MessageField::some(v1m::BlkIOStat {
            io_service_bytes_recursive: blk_list(4096),
            io_serviced_recursive: blk_list(1),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn v1_tree_becomes_the_exact_v1_metrics() {
    let root = tree("v1");
    let mounts = v1_tree(&root, true);
    let stats = super::v1_stats(&mounts, Path::new("/default/c1")).expect("read v1 tree");
    assert_eq!(crate::metrics::v1(&stats), v1_expected(80000000, 43456789));
    let (url, _) = crate::metrics::encode(&CgroupStats::V1(stats)).expect("encode");
    assert_eq!(url, "io.containerd.cgroups.v1.Metrics");
    std::fs::remove_dir_all(&root).expect("cleanup");
}

/// Kernels before 4.7: user and system only as cpuacct.stat's clock ticks,
/// which containerd's metrics carry as nanoseconds.
#[test]
fn v1_clock_ticks_become_nanoseconds() {
    let root = tree("v1-ticks");
    let mounts = v1_tree(&root, false);
    let stats = super::v1_stats(&mounts, Path::new("/default/c1")).expect("read v1 tree");
    let tick = 1_000_000_000 / crate::sys::clock_ticks();
    assert_eq!(crate::metrics::v1(&stats), v1_expected(8 * tick, 4 * tick));
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn v1_missing_controller_files_are_named() {
    let root = tree("v1-broken");
    let mut mounts = v1_tree(&root, true);
    std::fs::remove_file(root.join("memory/default/c1/memory.stat")).expect("rm");
    let e = super::v1_stats(&mounts, Path::new("/default/c1")).expect_err("no memory.stat");
    assert!(e.contains("memory/default/c1/memory.stat"), "{e}");
    std::fs::write(root.join("pids/default/c1/pids.current"), "three\n").expect("write");
    mounts.remove("memory");
    let e = super::v1_stats(&mounts, Path::new("/default/c1")).expect_err("bad pids.current");
    assert!(e.contains("pids.current") && e.contains("three"), "{e}");
    std::fs::remove_dir_all(&root).expect("cleanup");
}

/// A cgroup v2 tree: the root's controllers, and /default/c1 with the
/// control files a real cgroupfs creates with each directory.
pub fn v2_tree(name: &str) -> PathBuf {
    let root = tree(name);
    write(&root, &[("cgroup.controllers", "cpuset cpu io memory hugetlb pids\n"), ("cgroup.subtree_control", "")]);
    write(&root.join("default"), &[("cgroup.subtree_control", "")]);
    let psi = "some avg10=1.50 avg60=0.75 avg300=0.25 total=12345\nfull avg10=0.50 avg60=0.25 avg300=0.00 total=678\n";
    write(
        &root.join("default/c1"),
        &[
            ("cgroup.procs", ""),
            ("cpu.weight", "100\n"),
            ("cpu.max", "max 100000\n"),
            (
                "cpu.stat",
                "usage_usec 250000\nuser_usec 150000\nsystem_usec 100000\nnr_periods 10\nnr_throttled 2\n\
                 throttled_usec 3000\nnr_bursts 0\nburst_usec 0\n",
            ),
            ("cpu.pressure", psi),
            ("memory.current", "4194304\n"),
            ("memory.max", "max\n"),
            ("memory.low", "0\n"),
            ("memory.peak", "8388608\n"),
            ("memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n"),
            ("memory.swap.current", "65536\n"),
            ("memory.swap.max", "max\n"),
            ("memory.swap.peak", "131072\n"),
            ("memory.swap.events", "high 0\nmax 0\nfail 0\n"),
            (
                "memory.stat",
                "anon 2744320\nfile 12288\nkernel 360448\nkernel_stack 32768\npagetables 81920\nsec_pagetables 0\n\
                 percpu 0\nsock 0\nvmalloc 0\nshmem 0\nzswap 0\nzswapped 0\nfile_mapped 4096\nfile_dirty 8192\n\
                 file_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon 2600000\n\
                 active_anon 144320\ninactive_file 8192\nactive_file 4096\nunevictable 0\nslab_reclaimable 1000\n\
                 slab_unreclaimable 2000\nslab 3000\nworkingset_refault_anon 0\nworkingset_refault_file 7\n\
                 workingset_activate_anon 0\nworkingset_activate_file 0\nworkingset_restore_anon 0\n\
                 workingset_restore_file 0\nworkingset_nodereclaim 0\npgscan 11\npgsteal 12\npgscan_kswapd 0\n\
                 pgscan_direct 11\npgsteal_kswapd 0\npgsteal_direct 12\npgfault 1500\npgmajfault 2\npgrefill 13\n\
                 pgactivate 14\npgdeactivate 15\npglazyfree 0\npglazyfreed 0\nthp_fault_alloc 0\n\
                 thp_collapse_alloc 0\n",
            ),
            ("memory.pressure", psi),
            ("io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"),
            ("io.pressure", psi),
            ("pids.current", "3\n"),
            ("pids.max", "64\n"),
        ],
    );
    // libcgroups asks the host which huge page sizes exist.
    for size in libcgroups::stats::supported_page_sizes().expect("page sizes") {
        let current = if size == "2MB" { "2097152\n" } else { "0\n" };
        let files = [(format!("hugetlb.{size}.current"), current), (format!("hugetlb.{size}.events"), "max 1\n")];
        for (name, text) in files {
            std::fs::write(root.join("default/c1").join(name), text).expect("hugetlb file");
        }
    }
    root
}

#[test]
fn v2_tree_becomes_the_exact_v2_metrics() {
    let root = v2_tree("v2-stats");
    let cg = Cgroup::v2_fixture(&root, "/default/c1");
    let stats = cg.stats_v2().expect("read v2 tree");
    let CgroupStats::V2(s, events) = &stats else { panic!("v2 stats expected") };
    let psi = || {
        // libcgroups reads the averages, not the totals.
        let data =
            |avg10, avg60, avg300| MessageField::some(v2m::PSIData { avg10, avg60, avg300, ..Default::default() });
        MessageField::some(v2m::PSIStats {
            some: data(1.5, 0.75, 0.25),
            full: data(0.5, 0.25, 0.0),
            ..Default::default()
        })
    };
    let mut sizes = libcgroups::stats::supported_page_sizes().expect("page sizes");
    sizes.sort();
    let hugetlb = sizes
        .iter()
        .map(|size| v2m::HugeTlbStat {
            current: if size == "2MB" { 2097152 } else { 0 },
            max: 0,
            failcnt: 1,
            pagesize: size.clone(),
            ..Default::default()
        })
        .collect();
    let expected = v2m::Metrics {
        pids: MessageField::some(v2m::PidsStat { current: 3, limit: 64, ..Default::default() }),
        cpu: MessageField::some(v2m::CPUStat {
            usage_usec: 250000,
            user_usec: 150000,
            system_usec: 100000,
            nr_periods: 10,
            nr_throttled: 2,
            throttled_usec: 3000,
            psi: psi(),
            ..Default::default()
        }),
        memory: MessageField::some(v2m::MemoryStat {
            anon: 2744320,
            file: 12288,
            kernel_stack: 32768,
            slab: 3000,
            file_mapped: 4096,
            file_dirty: 8192,
            inactive_anon: 2600000,
            active_anon: 144320,
            inactive_file: 8192,
            active_file: 4096,
            slab_reclaimable: 1000,
            slab_unreclaimable: 2000,
            pgfault: 1500,
            pgmajfault: 2,
            pgrefill: 13,
            pgscan: 11,
            pgsteal: 12,
            pgactivate: 14,
            pgdeactivate: 15,
            usage: 4194304,
            usage_limit: u64::MAX,
            max_usage: 8388608,
            swap_usage: 65536,
            swap_limit: u64::MAX,
            swap_max_usage: 131072,
            psi: psi(),
            ..Default::default()
        }),
        io: MessageField::some(v2m::IOStat {
            usage: vec![
                v2m::IOEntry { major: 8, minor: 0, rbytes: 4096, wbytes: 8192, rios: 1, wios: 2, ..Default::default() },
                v2m::IOEntry { major: 253, minor: 1, rbytes: 512, rios: 1, ..Default::default() },
            ],
            psi: psi(),
            ..Default::default()
        }),
        hugetlb,
        memory_events: MessageField::some(v2m::MemoryEvents { max: 5, oom: 1, oom_kill: 1, ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(crate::metrics::v2(s, events), expected);
    let (url, _) = crate::metrics::encode(&stats).expect("encode");
    assert_eq!(url, "io.containerd.cgroups.v2.Metrics");
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn v2_enter_places_the_pid_and_writes_the_limits() {
    let root = v2_tree("v2-enter");
    let cg = Cgroup::v2_fixture(&root, "/default/c1");
    let r: LinuxResources = serde_json::from_value(serde_json::json!({
        "memory": {"limit": 33554432},
        "pids": {"limit": 64},
        "cpu": {"quota": 50000, "period": 100000}
    }))
    .expect("resources");
    // The device filter comes after the limits and needs a real cgroup (and
    // here CAP_SYS_RESOURCE for the BPF memlock limit): a fixture tree only
    // gets as far as refusing it.
    match cg.enter(4242, Some(&r)) {
        Ok(()) => {}
        Err(e) if e.to_string().contains("bpf") => {}
        Err(e) => panic!("enter: {e}"),
    }
    let read = |f: &str| std::fs::read_to_string(root.join("default/c1").join(f)).expect("read");
    assert_eq!(read("cgroup.procs").trim(), "4242");
    assert_eq!(read("memory.max").trim(), "33554432");
    assert_eq!(read("pids.max").trim(), "64");
    assert_eq!(read("cpu.max").trim(), "50000 100000");
    std::fs::remove_dir_all(&root).expect("cleanup");
}
