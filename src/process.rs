//! This process as other runs see it: its container (when it runs in one), its host, pid and
//! start time, and a random id per run. A lease records these so that another run can tell
//! whether the lease's holder is still alive (see `repair::lock`).

use std::io::Read;

/// How this process knows its own container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnId {
    /// The full 64-hex id (from /proc/self/mountinfo or cgroup).
    Full(String),
    /// The hostname, when it looks like Docker's default (the first 12 hex digits of the id).
    Prefix(String),
}

impl OwnId {
    pub fn is(&self, id: &str) -> bool {
        match self {
            OwnId::Full(own) => own == id,
            OwnId::Prefix(p) => id.starts_with(p.as_str()),
        }
    }
}

fn hex_run_after<'a>(s: &'a str, marker: &str) -> Option<&'a str> {
    let mut rest = s;
    while let Some(i) = rest.find(marker) {
        let tail = &rest[i + marker.len()..];
        if tail.len() >= 64 && tail.as_bytes()[..64].iter().all(u8::is_ascii_hexdigit) {
            let after = tail.as_bytes().get(64);
            if after.is_none_or(|c| !c.is_ascii_hexdigit()) {
                return Some(&tail[..64]);
            }
        }
        rest = tail;
    }
    None
}

/// The container id in `/proc/self/mountinfo`: Docker bind-mounts
/// `/var/lib/docker/containers/<id>/hostname` (and `hosts`, `resolv.conf`) onto `/etc/…` in
/// every container. Only those mount points count: on the host itself, mountinfo lists every
/// running container's `…/containers/<id>/mounts/shm`, which says nothing about *this* process.
pub fn id_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        if !matches!(
            mount_point,
            "/etc/hostname" | "/etc/hosts" | "/etc/resolv.conf"
        ) {
            return None;
        }
        hex_run_after(root, "/containers/").map(str::to_string)
    })
}

/// The container id in `/proc/self/cgroup` (cgroup v1 `…/docker/<id>`, systemd
/// `docker-<id>.scope`).
pub fn id_from_cgroup(cgroup: &str) -> Option<String> {
    hex_run_after(cgroup, "/docker/")
        .or_else(|| hex_run_after(cgroup, "docker-"))
        .map(str::to_string)
}

/// The hostname when it looks like a Docker container id prefix (12+ hex digits).
pub fn id_from_hostname(hostname: &str) -> Option<String> {
    let h = hostname.trim();
    (h.len() >= 12 && h.len() <= 64 && h.bytes().all(|c| c.is_ascii_hexdigit()))
        .then(|| h.to_ascii_lowercase())
}

/// This process's own container, if it runs in one.
pub fn own_container() -> Option<OwnId> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    id_from_mountinfo(&read("/proc/self/mountinfo"))
        .or_else(|| id_from_cgroup(&read("/proc/self/cgroup")))
        .map(OwnId::Full)
        .or_else(|| id_from_hostname(&read("/etc/hostname")).map(OwnId::Prefix))
}

/// Who is running: enough for another run to tell whether we are still alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    /// The kernel's host name (a container's is its id prefix unless set).
    pub host: String,
    pub pid: u32,
    /// Start time of the pid in clock ticks since boot (`/proc/<pid>/stat` field 22): a pid
    /// reused by another process has another start time.
    pub pid_start: Option<u64>,
    /// This process's container, when it runs in one.
    pub container: Option<OwnId>,
}

/// This process.
pub fn me() -> Me {
    let pid = std::process::id();
    Me {
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        pid,
        pid_start: pid_start(pid),
        container: own_container(),
    }
}

/// Start time of a process in clock ticks since boot, `None` when it does not exist (here).
pub fn pid_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A random id for one run (16 hex digits), used in helper and lease names so that no run
/// ever touches another run's containers.
pub fn run_id() -> String {
    let mut buf = [0u8; 8];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !filled {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        buf = ((t as u64) ^ (u64::from(std::process::id()) << 40)).to_be_bytes();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_run_ids_differ() {
        let me = me();
        assert_eq!(me.pid, std::process::id());
        assert!(me.pid_start.is_some());
        assert_eq!(pid_start(me.pid), me.pid_start);
        assert_ne!(run_id(), run_id());
        assert_eq!(run_id().len(), 16);
    }
}
