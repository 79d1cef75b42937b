#!/usr/bin/env python3
"""Builds a busybox OCI image layout tarball from the host's busybox-static,
with no registry and no docker: `busybox-image.py OUT.tar REF [CMD_JSON]`.
The result is deterministic (fixed mtimes, numeric owners, sorted entries)."""
import gzip, hashlib, io, json, os, subprocess, sys, tarfile

out, ref = sys.argv[1], sys.argv[2]
cmd = json.loads(sys.argv[3]) if len(sys.argv) > 3 else ["sh"]
busybox = "/bin/busybox"
applets = [a for a in subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split() if a != "busybox"]

files = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\ntester:x:1000:1000::/home/tester:/bin/sh\n",
    "etc/group": "root:x:0:\ntester:x:1000:\ng2:x:2000:\ng3:x:3000:\nnogroup:x:65534:\n",
    "etc/hostname": "busybox\n",
}

def entry(name, kind, mode, data=b"", target=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = kind, mode, 0, 0, 0, "", ""
    if kind == tarfile.SYMTYPE:
        ti.linkname = target
    ti.size = len(data)
    return ti, data

entries = []
for d in ["bin", "dev", "etc", "home", "home/tester", "proc", "root", "sys", "usr", "usr/bin", "var"]:
    entries.append(entry(d, tarfile.DIRTYPE, 0o755))
entries.append(entry("tmp", tarfile.DIRTYPE, 0o1777))
entries.append(entry("bin/busybox", tarfile.REGTYPE, 0o755, open(busybox, "rb").read()))
for a in applets:
    entries.append(entry("bin/" + a, tarfile.SYMTYPE, 0o777, target="busybox"))
for name, text in files.items():
    entries.append(entry(name, tarfile.REGTYPE, 0o644, text.encode()))

raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
    for ti, data in sorted(entries, key=lambda e: e[0].name):
        t.addfile(ti, io.BytesIO(data) if data else None)
layer_tar = raw.getvalue()
layer = gzip.compress(layer_tar, mtime=0)

def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()

config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
    "rootfs": {"type": "layers", "diff_ids": [digest(layer_tar)]},
}, sort_keys=True).encode()
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(layer), "size": len(layer)}],
}, sort_keys=True).encode()
index = json.dumps({
    "schemaVersion": 2,
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest), "size": len(manifest),
                   "annotations": {"org.opencontainers.image.ref.name": ref, "io.containerd.image.name": ref},
                   "platform": {"architecture": "amd64", "os": "linux"}}],
}, sort_keys=True).encode()

tmp = out + ".tmp"
with tarfile.open(tmp, "w") as t:
    def add(name, data):
        ti, _ = entry(name, tarfile.REGTYPE, 0o644, data)
        t.addfile(ti, io.BytesIO(data))
    add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add("index.json", index)
    for blob in (layer, config, manifest):
        add("blobs/sha256/" + digest(blob).split(":")[1], blob)
os.replace(tmp, out)
