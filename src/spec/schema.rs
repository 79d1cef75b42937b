//! The keys the OCI runtime spec (1.2, Linux) defines, as a tree the lint
//! walks. Free-form maps (annotations, sysctl, unified) and values whose
//! inner shape serde checks fully (required fields) are leaves.

pub enum Shape {
    Leaf,
    Obj(&'static [(&'static str, Shape)]),
    Arr(&'static Shape),
}

use Shape::{Arr, Leaf, Obj};

const ID_MAP: Shape = Obj(&[("containerID", Leaf), ("hostID", Leaf), ("size", Leaf)]);

const HOOK: Shape = Obj(&[("path", Leaf), ("args", Leaf), ("env", Leaf), ("timeout", Leaf)]);

const HOOKS: Shape = Obj(&[
    ("prestart", Arr(&HOOK)),
    ("createRuntime", Arr(&HOOK)),
    ("createContainer", Arr(&HOOK)),
    ("startContainer", Arr(&HOOK)),
    ("poststart", Arr(&HOOK)),
    ("poststop", Arr(&HOOK)),
]);

const MOUNT: Shape = Obj(&[
    ("destination", Leaf),
    ("source", Leaf),
    ("options", Leaf),
    ("type", Leaf),
    ("uidMappings", Arr(&ID_MAP)),
    ("gidMappings", Arr(&ID_MAP)),
]);

const PROCESS: Shape = Obj(&[
    ("terminal", Leaf),
    ("consoleSize", Obj(&[("height", Leaf), ("width", Leaf)])),
    ("user", Obj(&[("uid", Leaf), ("gid", Leaf), ("umask", Leaf), ("additionalGids", Leaf), ("username", Leaf)])),
    ("args", Leaf),
    ("commandLine", Leaf),
    ("env", Leaf),
    ("cwd", Leaf),
    (
        "capabilities",
        Obj(&[("bounding", Leaf), ("effective", Leaf), ("inheritable", Leaf), ("permitted", Leaf), ("ambient", Leaf)]),
    ),
    ("rlimits", Arr(&Obj(&[("type", Leaf), ("soft", Leaf), ("hard", Leaf)]))),
    ("noNewPrivileges", Leaf),
    ("apparmorProfile", Leaf),
    ("oomScoreAdj", Leaf),
    ("selinuxLabel", Leaf),
    ("ioPriority", Obj(&[("class", Leaf), ("priority", Leaf)])),
    (
        "scheduler",
        Obj(&[
            ("policy", Leaf),
            ("nice", Leaf),
            ("priority", Leaf),
            ("flags", Leaf),
            ("runtime", Leaf),
            ("deadline", Leaf),
            ("period", Leaf),
        ]),
    ),
    ("execCPUAffinity", Obj(&[("initial", Leaf), ("final", Leaf)])),
]);

const SECCOMP_ARG: Shape = Obj(&[("index", Leaf), ("value", Leaf), ("valueTwo", Leaf), ("op", Leaf)]);

const SECCOMP: Shape = Obj(&[
    ("defaultAction", Leaf),
    ("defaultErrnoRet", Leaf),
    ("architectures", Leaf),
    ("flags", Leaf),
    ("listenerPath", Leaf),
    ("listenerMetadata", Leaf),
    ("syscalls", Arr(&Obj(&[("names", Leaf), ("action", Leaf), ("errnoRet", Leaf), ("args", Arr(&SECCOMP_ARG))]))),
]);

const RESOURCES: Shape = Obj(&[
    ("devices", Arr(&Obj(&[("allow", Leaf), ("type", Leaf), ("major", Leaf), ("minor", Leaf), ("access", Leaf)]))),
    (
        "memory",
        Obj(&[
            ("limit", Leaf),
            ("reservation", Leaf),
            ("swap", Leaf),
            ("kernel", Leaf),
            ("kernelTCP", Leaf),
            ("swappiness", Leaf),
            ("disableOOMKiller", Leaf),
            ("useHierarchy", Leaf),
            ("checkBeforeUpdate", Leaf),
        ]),
    ),
    (
        "cpu",
        Obj(&[
            ("shares", Leaf),
            ("quota", Leaf),
            ("burst", Leaf),
            ("period", Leaf),
            ("realtimeRuntime", Leaf),
            ("realtimePeriod", Leaf),
            ("cpus", Leaf),
            ("mems", Leaf),
            ("idle", Leaf),
        ]),
    ),
    ("pids", Obj(&[("limit", Leaf)])),
    (
        "blockIO",
        Obj(&[
            ("weight", Leaf),
            ("leafWeight", Leaf),
            ("weightDevice", Leaf),
            ("throttleReadBpsDevice", Leaf),
            ("throttleWriteBpsDevice", Leaf),
            ("throttleReadIOPSDevice", Leaf),
            ("throttleWriteIOPSDevice", Leaf),
        ]),
    ),
    ("hugepageLimits", Arr(&Obj(&[("pageSize", Leaf), ("limit", Leaf)]))),
    ("network", Obj(&[("classID", Leaf), ("priorities", Leaf)])),
    ("rdma", Leaf),
    ("unified", Leaf),
]);

const LINUX: Shape = Obj(&[
    ("namespaces", Arr(&Obj(&[("type", Leaf), ("path", Leaf)]))),
    ("uidMappings", Arr(&ID_MAP)),
    ("gidMappings", Arr(&ID_MAP)),
    ("timeOffsets", Leaf),
    (
        "devices",
        Arr(&Obj(&[
            ("type", Leaf),
            ("path", Leaf),
            ("major", Leaf),
            ("minor", Leaf),
            ("fileMode", Leaf),
            ("uid", Leaf),
            ("gid", Leaf),
        ])),
    ),
    ("netDevices", Leaf),
    ("cgroupsPath", Leaf),
    ("rootfsPropagation", Leaf),
    ("seccomp", SECCOMP),
    ("sysctl", Leaf),
    ("resources", RESOURCES),
    ("intelRdt", Leaf),
    ("personality", Obj(&[("domain", Leaf), ("flags", Leaf)])),
    ("maskedPaths", Leaf),
    ("readonlyPaths", Leaf),
    ("mountLabel", Leaf),
    ("memoryPolicy", Leaf),
]);

pub const CONFIG: Shape = Obj(&[
    ("ociVersion", Leaf),
    ("root", Obj(&[("path", Leaf), ("readonly", Leaf)])),
    ("mounts", Arr(&MOUNT)),
    ("process", PROCESS),
    ("hostname", Leaf),
    ("domainname", Leaf),
    ("hooks", HOOKS),
    ("annotations", Leaf),
    ("linux", LINUX),
    ("solaris", Leaf),
    ("windows", Leaf),
    ("vm", Leaf),
    ("zos", Leaf),
]);

/// Keys whose loss would give a weaker container than the user asked for:
/// mis-cased, they are errors, not warnings.
pub const SECURITY: &[&str] = &[
    "linux",
    "process",
    "root",
    "mounts",
    "namespaces",
    "type",
    "path",
    "destination",
    "source",
    "options",
    "seccomp",
    "defaultAction",
    "defaultErrnoRet",
    "architectures",
    "syscalls",
    "names",
    "action",
    "errnoRet",
    "args",
    "index",
    "value",
    "valueTwo",
    "op",
    "capabilities",
    "noNewPrivileges",
    "apparmorProfile",
    "selinuxLabel",
    "maskedPaths",
    "readonlyPaths",
    "devices",
    "allow",
    "access",
    "major",
    "minor",
    "resources",
    "memory",
    "cpu",
    "pids",
    "limit",
    "uidMappings",
    "gidMappings",
    "containerID",
    "hostID",
    "size",
    "user",
    "rlimits",
    "soft",
    "hard",
    "readonly",
    "uid",
    "gid",
    "additionalGids",
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
    "cgroupsPath",
    "sysctl",
    "rootfsPropagation",
];

/// Where the spec puts the security keys people most often put elsewhere.
pub const HOME: &[(&str, &str)] = &[
    ("namespaces", "linux.namespaces"),
    ("seccomp", "linux.seccomp"),
    ("maskedPaths", "linux.maskedPaths"),
    ("readonlyPaths", "linux.readonlyPaths"),
    ("uidMappings", "linux.uidMappings"),
    ("gidMappings", "linux.gidMappings"),
    ("devices", "linux.devices"),
    ("sysctl", "linux.sysctl"),
    ("resources", "linux.resources"),
    ("cgroupsPath", "linux.cgroupsPath"),
    ("mountLabel", "linux.mountLabel"),
    ("capabilities", "process.capabilities"),
    ("noNewPrivileges", "process.noNewPrivileges"),
    ("apparmorProfile", "process.apparmorProfile"),
    ("selinuxLabel", "process.selinuxLabel"),
    ("rlimits", "process.rlimits"),
    ("user", "process.user"),
    ("readonly", "root.readonly"),
];
