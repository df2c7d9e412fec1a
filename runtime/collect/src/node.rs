//! The built-in host collector: CPU, load, memory, file systems, disk I/O, network, boot
//! time, file descriptors, temperatures and SysV shared memory read straight from `/proc`
//! and `/sys`, under node_exporter's metric names so its dashboards and habits carry over.
//! One round costs a handful of small file reads (no process scan).

use std::collections::HashMap;
use std::path::Path;

use procfs::{Current, CurrentSI};
use tocsin_store::Sample;

/// File-system types that are not storage (node_exporter's default exclusion list).
const PSEUDO_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
];

/// Mount points under these are not reported (node_exporter's default).
const PSEUDO_MOUNTS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/run/credentials",
    "/var/lib/docker",
];

/// Bytes per sector in `/proc/diskstats` (always 512, whatever the device's own).
const SECTOR_BYTES: f64 = 512.0;

/// Reads one round of host metrics.
pub struct NodeCollector {
    ticks_per_second: f64,
}

impl Default for NodeCollector {
    fn default() -> Self {
        NodeCollector::new()
    }
}

/// Appends samples stamped with one timestamp.
struct Out<'a> {
    ts_ms: i64,
    samples: &'a mut Vec<Sample>,
}

impl Out<'_> {
    fn push(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.samples.push(Sample {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ts_ms: self.ts_ms,
            value,
        });
    }
}

impl NodeCollector {
    /// A collector for this machine.
    pub fn new() -> NodeCollector {
        NodeCollector {
            ticks_per_second: procfs::ticks_per_second() as f64,
        }
    }

    /// Append one round of samples at `ts_ms` to `samples`. Each group (CPU, memory, ...)
    /// is read on its own: one unreadable file loses that group, not the round. Returns
    /// the groups that failed, with why.
    pub fn collect(&mut self, ts_ms: i64, samples: &mut Vec<Sample>) -> Vec<String> {
        let mut out = Out { ts_ms, samples };
        let mut failed = Vec::new();
        let mut note = |group: &str, r: Result<(), String>| {
            if let Err(e) = r {
                failed.push(format!("{group}: {e}"));
            }
        };
        note("stat", self.stat(&mut out));
        note("loadavg", load(&mut out));
        note("meminfo", memory(&mut out));
        note("filesystems", filesystems(&mut out));
        note("diskstats", disks(&mut out));
        note("netdev", network(&mut out));
        note("filefd", filefd(&mut out));
        note("shm", shared_memory(&mut out));
        hwmon(Path::new("/sys/class/hwmon"), &mut out);
        failed
    }

    fn stat(&self, out: &mut Out<'_>) -> Result<(), String> {
        let stat = procfs::KernelStats::current().map_err(|e| e.to_string())?;
        let tps = self.ticks_per_second;
        for (i, cpu) in stat.cpu_time.iter().enumerate() {
            let id = i.to_string();
            let modes = [
                ("user", Some(cpu.user)),
                ("nice", Some(cpu.nice)),
                ("system", Some(cpu.system)),
                ("idle", Some(cpu.idle)),
                ("iowait", cpu.iowait),
                ("irq", cpu.irq),
                ("softirq", cpu.softirq),
                ("steal", cpu.steal),
            ];
            for (mode, ticks) in modes {
                if let Some(t) = ticks {
                    out.push(
                        "node_cpu_seconds_total",
                        &[("cpu", &id), ("mode", mode)],
                        t as f64 / tps,
                    );
                }
            }
        }
        out.push("node_context_switches_total", &[], stat.ctxt as f64);
        out.push("node_forks_total", &[], stat.processes as f64);
        out.push("node_boot_time_seconds", &[], stat.btime as f64);
        if let Some(n) = stat.procs_running {
            out.push("node_procs_running", &[], f64::from(n));
        }
        if let Some(n) = stat.procs_blocked {
            out.push("node_procs_blocked", &[], f64::from(n));
        }
        Ok(())
    }
}

fn load(out: &mut Out<'_>) -> Result<(), String> {
    let l = procfs::LoadAverage::current().map_err(|e| e.to_string())?;
    out.push("node_load1", &[], f64::from(l.one));
    out.push("node_load5", &[], f64::from(l.five));
    out.push("node_load15", &[], f64::from(l.fifteen));
    Ok(())
}

fn memory(out: &mut Out<'_>) -> Result<(), String> {
    let m = procfs::Meminfo::current().map_err(|e| e.to_string())?;
    let mut put =
        |field: &str, v: u64| out.push(&format!("node_memory_{field}_bytes"), &[], v as f64);
    put("MemTotal", m.mem_total);
    put("MemFree", m.mem_free);
    if let Some(v) = m.mem_available {
        put("MemAvailable", v);
    }
    put("Buffers", m.buffers);
    put("Cached", m.cached);
    put("SwapTotal", m.swap_total);
    put("SwapFree", m.swap_free);
    put("Dirty", m.dirty);
    put("Shmem", m.shmem.unwrap_or(0));
    Ok(())
}

/// Whether a mount is storage worth reporting.
fn real_mount(fs_type: &str, mount_point: &str) -> bool {
    !PSEUDO_FS.contains(&fs_type)
        && !PSEUDO_MOUNTS
            .iter()
            .any(|p| mount_point == *p || mount_point.starts_with(&format!("{p}/")))
}

fn filesystems(out: &mut Out<'_>) -> Result<(), String> {
    let mounts = procfs::mounts().map_err(|e| e.to_string())?;
    let mut seen = std::collections::HashSet::new();
    for m in mounts {
        if !real_mount(&m.fs_vfstype, &m.fs_file) || !seen.insert(m.fs_file.clone()) {
            continue;
        }
        // statvfs on a hung network mount blocks: only local kinds are read.
        if network_mount(&m.fs_vfstype, &m.fs_spec) {
            continue;
        }
        let Ok(st) = rustix::fs::statvfs(m.fs_file.as_str()) else {
            continue;
        };
        let labels = [
            ("device", m.fs_spec.as_str()),
            ("fstype", m.fs_vfstype.as_str()),
            ("mountpoint", m.fs_file.as_str()),
        ];
        let block = st.f_frsize as f64;
        out.push(
            "node_filesystem_size_bytes",
            &labels,
            st.f_blocks as f64 * block,
        );
        out.push(
            "node_filesystem_free_bytes",
            &labels,
            st.f_bfree as f64 * block,
        );
        out.push(
            "node_filesystem_avail_bytes",
            &labels,
            st.f_bavail as f64 * block,
        );
        out.push("node_filesystem_files", &labels, st.f_files as f64);
        out.push("node_filesystem_files_free", &labels, st.f_ffree as f64);
        let ro = rustix::fs::StatVfsMountFlags::RDONLY;
        out.push(
            "node_filesystem_readonly",
            &labels,
            if st.f_flag.contains(ro) { 1.0 } else { 0.0 },
        );
    }
    Ok(())
}

/// A network or FUSE file system (whose statvfs can hang): by type, or by a `host:/path`
/// or `//host/share` source.
fn network_mount(fs_type: &str, source: &str) -> bool {
    const NETWORK: &[&str] = &[
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ceph",
        "glusterfs",
        "9p",
        "lustre",
        "afs",
        "gfs2",
        "ocfs2",
        "fuse",
        "fuseblk",
    ];
    NETWORK.contains(&fs_type)
        || fs_type.starts_with("fuse.")
        || source.starts_with("//")
        || source.contains(":/")
}

/// Partitions and virtual devices node_exporter leaves out of disk I/O by default.
fn whole_disk(name: &str) -> bool {
    let digits_tail = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()))
    };
    if name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram") {
        return false;
    }
    // sda1, vdb2, xvda1: a letter device followed by a partition number.
    for prefix in ["sd", "vd", "hd", "xvd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let letters = rest.trim_end_matches(|c: char| c.is_ascii_digit());
            if letters.len() < rest.len() && letters.chars().all(|c| c.is_ascii_lowercase()) {
                return false;
            }
        }
    }
    // nvme0n1p1, mmcblk0p1.
    if let Some(p) = name.rfind('p')
        && (name.starts_with("nvme") || name.starts_with("mmcblk"))
        && digits_tail(&name[..=p])
    {
        return false;
    }
    true
}

fn disks(out: &mut Out<'_>) -> Result<(), String> {
    let stats = procfs::DiskStats::current().map_err(|e| e.to_string())?;
    for d in stats.0.iter().filter(|d| whole_disk(&d.name)) {
        let l = [("device", d.name.as_str())];
        out.push("node_disk_reads_completed_total", &l, d.reads as f64);
        out.push("node_disk_writes_completed_total", &l, d.writes as f64);
        out.push(
            "node_disk_read_bytes_total",
            &l,
            d.sectors_read as f64 * SECTOR_BYTES,
        );
        out.push(
            "node_disk_written_bytes_total",
            &l,
            d.sectors_written as f64 * SECTOR_BYTES,
        );
        out.push(
            "node_disk_read_time_seconds_total",
            &l,
            d.time_reading as f64 / 1000.0,
        );
        out.push(
            "node_disk_write_time_seconds_total",
            &l,
            d.time_writing as f64 / 1000.0,
        );
        out.push(
            "node_disk_io_time_seconds_total",
            &l,
            d.time_in_progress as f64 / 1000.0,
        );
        out.push("node_disk_io_now", &l, d.in_progress as f64);
    }
    Ok(())
}

fn network(out: &mut Out<'_>) -> Result<(), String> {
    let devs = procfs::net::dev_status().map_err(|e| e.to_string())?;
    let mut names: Vec<&String> = devs.keys().collect();
    names.sort();
    for name in names {
        let d = &devs[name];
        let l = [("device", name.as_str())];
        out.push("node_network_receive_bytes_total", &l, d.recv_bytes as f64);
        out.push("node_network_transmit_bytes_total", &l, d.sent_bytes as f64);
        out.push(
            "node_network_receive_packets_total",
            &l,
            d.recv_packets as f64,
        );
        out.push(
            "node_network_transmit_packets_total",
            &l,
            d.sent_packets as f64,
        );
        out.push("node_network_receive_errs_total", &l, d.recv_errs as f64);
        out.push("node_network_transmit_errs_total", &l, d.sent_errs as f64);
        out.push("node_network_receive_drop_total", &l, d.recv_drop as f64);
        out.push("node_network_transmit_drop_total", &l, d.sent_drop as f64);
    }
    Ok(())
}

fn filefd(out: &mut Out<'_>) -> Result<(), String> {
    let text = std::fs::read_to_string("/proc/sys/fs/file-nr").map_err(|e| e.to_string())?;
    let mut fields = text.split_whitespace();
    let allocated: f64 = fields
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or("no allocated count")?;
    let max: f64 = fields
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or("no maximum")?;
    out.push("node_filefd_allocated", &[], allocated);
    out.push("node_filefd_maximum", &[], max);
    Ok(())
}

fn shared_memory(out: &mut Out<'_>) -> Result<(), String> {
    let segs = procfs::SharedMemorySegments::current().map_err(|e| e.to_string())?;
    let bytes: u64 = segs.0.iter().map(|s| s.size).sum();
    out.push("node_shm_segments", &[], segs.0.len() as f64);
    out.push("node_shm_bytes", &[], bytes as f64);
    Ok(())
}

/// `node_hwmon_temp_celsius{chip,sensor}` from every `tempN_input` the kernel exposes
/// (none inside most VMs).
fn hwmon(root: &Path, out: &mut Out<'_>) {
    let Ok(dirs) = std::fs::read_dir(root) else {
        return;
    };
    let mut found: Vec<(String, String, f64)> = Vec::new();
    for dir in dirs.flatten() {
        let path = dir.path();
        let chip = std::fs::read_to_string(path.join("name"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| dir.file_name().to_string_lossy().into_owned());
        let Ok(files) = std::fs::read_dir(&path) else {
            continue;
        };
        let mut labels: HashMap<String, String> = HashMap::new();
        let mut inputs = Vec::new();
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if let Some(sensor) = name
                .strip_suffix("_input")
                .filter(|s| s.starts_with("temp"))
            {
                inputs.push((sensor.to_string(), f.path()));
            } else if let Some(sensor) = name
                .strip_suffix("_label")
                .filter(|s| s.starts_with("temp"))
                && let Ok(l) = std::fs::read_to_string(f.path())
            {
                labels.insert(sensor.to_string(), l.trim().to_string());
            }
        }
        for (sensor, file) in inputs {
            let Some(milli) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
            else {
                continue;
            };
            let name = labels.remove(&sensor).unwrap_or(sensor);
            found.push((chip.clone(), name, milli / 1000.0));
        }
    }
    found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    for (chip, sensor, celsius) in found {
        out.push(
            "node_hwmon_temp_celsius",
            &[("chip", &chip), ("sensor", &sensor)],
            celsius,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(samples: &[Sample], name: &str) -> Vec<f64> {
        samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .collect()
    }

    #[test]
    fn this_machine_reads_plausibly() {
        let mut c = NodeCollector::new();
        let mut first = Vec::new();
        let failed = c.collect(1, &mut first);
        assert!(failed.is_empty(), "{failed:?}");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let idle = first
            .iter()
            .filter(|s| {
                s.name == "node_cpu_seconds_total" && s.labels.iter().any(|(_, v)| v == "idle")
            })
            .count();
        assert!(idle >= cpus, "{idle} idle series for {cpus} CPUs");
        let total = values(&first, "node_memory_MemTotal_bytes");
        assert_eq!(total.len(), 1);
        assert!(total[0] > 64.0 * 1024.0 * 1024.0, "{total:?}");
        let avail = values(&first, "node_memory_MemAvailable_bytes")[0];
        assert!(avail > 0.0 && avail <= total[0]);
        let root_size = first
            .iter()
            .find(|s| {
                s.name == "node_filesystem_size_bytes"
                    && s.labels.iter().any(|(k, v)| k == "mountpoint" && v == "/")
            })
            .map(|s| s.value);
        assert!(
            root_size.is_some_and(|b| b > 1e8),
            "no / file system: {root_size:?}"
        );
        let lo = first
            .iter()
            .any(|s| s.name == "node_network_receive_bytes_total" && s.labels[0].1 == "lo");
        assert!(lo, "no loopback interface");
        let boot = values(&first, "node_boot_time_seconds")[0];
        assert!(boot > 1.0e9 && boot < 4.0e9, "{boot}");
        assert!(values(&first, "node_load1")[0] >= 0.0);

        // Counters never go down between two reads.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut second = Vec::new();
        assert!(c.collect(2, &mut second).is_empty());
        let key = |s: &Sample| (s.name.clone(), s.labels.clone());
        let before: HashMap<_, f64> = first.iter().map(|s| (key(s), s.value)).collect();
        let mut compared = 0;
        for s in second.iter().filter(|s| s.name.ends_with("_total")) {
            if let Some(b) = before.get(&key(s)) {
                assert!(
                    s.value >= *b,
                    "{} {:?} went from {b} to {}",
                    s.name,
                    s.labels,
                    s.value
                );
                compared += 1;
            }
        }
        assert!(compared > 10, "only {compared} counters compared");
    }

    #[test]
    fn pseudo_file_systems_and_partitions_are_left_out() {
        assert!(real_mount("ext4", "/"));
        assert!(real_mount("tmpfs", "/tmp"));
        assert!(!real_mount("proc", "/proc"));
        assert!(!real_mount("tmpfs", "/dev/shm"));
        assert!(!real_mount("ext4", "/var/lib/docker/overlay/x"));
        assert!(real_mount("ext4", "/devdata"));
        assert!(network_mount("fuse.sshfs", "me@host:"));
        assert!(network_mount("ext4", "nas:/export"));
        assert!(network_mount("cifs", "//nas/share"));
        assert!(!network_mount("ext4", "/dev/vda1"));
        for d in ["sda", "vda", "nvme0n1", "mmcblk0", "xvdb", "dm-0", "md0"] {
            assert!(whole_disk(d), "{d}");
        }
        for p in [
            "sda1",
            "vda15",
            "nvme0n1p2",
            "mmcblk0p1",
            "loop3",
            "ram0",
            "zram0",
            "xvda1",
        ] {
            assert!(!whole_disk(p), "{p}");
        }
    }

    #[test]
    fn hwmon_temperatures_use_labels_when_the_kernel_gives_them() {
        let dir = tempfile::tempdir().expect("test");
        let chip = dir.path().join("hwmon0");
        std::fs::create_dir(&chip).expect("test");
        std::fs::write(chip.join("name"), "coretemp\n").expect("test");
        std::fs::write(chip.join("temp1_input"), "45500\n").expect("test");
        std::fs::write(chip.join("temp1_label"), "Package id 0\n").expect("test");
        std::fs::write(chip.join("temp2_input"), "39000\n").expect("test");
        let mut samples = Vec::new();
        hwmon(
            dir.path(),
            &mut Out {
                ts_ms: 5,
                samples: &mut samples,
            },
        );
        let got: Vec<(String, f64)> = samples
            .iter()
            .map(|s| (s.labels[1].1.clone(), s.value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Package id 0".to_string(), 45.5),
                ("temp2".to_string(), 39.0)
            ]
        );
        assert!(
            samples
                .iter()
                .all(|s| s.labels[0] == ("chip".into(), "coretemp".into()))
        );
    }
}
