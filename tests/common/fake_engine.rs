//! A fake Docker engine for the repair ladder, on paused tokio time: one container with a K3s
//! TLS tree, a K3s that regenerates missing files at every start, and faults injected on any
//! call (daemon gone, 404, 409, 500, a call that never answers, the container recreated under
//! the same name, the wall clock jumping).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rancher_cert_guard::docker::{ContainerInfo, Lease};
use rancher_cert_guard::error::Error;
use rancher_cert_guard::repair::engine::Engine;
use rancher_cert_guard::source::{EntryBody, Tree, TreeEntry};
use tokio::time::Instant;

pub const ID: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub const NEW_ID: &str = "2222222222222222222222222222222222222222222222222222222222222222";
pub const TLS: &str = "/var/lib/rancher/k3s/server/tls";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The daemon went away (connection refused).
    Unreachable,
    /// 404: no such container.
    NotFound,
    /// 409 conflict.
    Conflict,
    /// 500 from the daemon.
    Server500,
    /// The daemon never answers: like the real client, the call gives up at its own
    /// deadline (60 s, and the grace period on top for stop/restart) with a timeout error.
    Hang,
    /// Before the call: the container is removed and another created under its name.
    Recreate,
    /// Before the call: the wall clock jumps by this many seconds.
    ClockJump(i64),
    /// From this call on, the daemon is gone for this many seconds (every call fails).
    Outage(u64),
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub call: &'static str,
    /// The nth call of that kind (1-based).
    pub nth: usize,
    pub kind: FaultKind,
}

#[derive(Debug)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub starts: u32,
    pub stops: u32,
    pub restart_count: i64,
    pub started_at_nanos: i128,
    pub auto_remove: bool,
    pub tree: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug)]
pub struct State {
    pub c: Container,
    /// What K3s writes for a missing file at start (same CAs: the renewed cluster).
    pub fresh: BTreeMap<String, Vec<u8>>,
    /// Files K3s does not bring back.
    pub no_regen: HashSet<String>,
    /// Lines logged after each start, in order (then none).
    pub boot_lines: VecDeque<Vec<String>>,
    pub logs: Vec<(i128, String)>,
    /// Rancher answers `/ping` when running.
    pub pong: bool,
    pub clock_offset: i64,
    /// The daemon is gone until then.
    pub outage_until: Option<Instant>,
    /// How far the daemon's clock is behind the tool's (seconds).
    pub daemon_offset: i64,
    pub leases: HashMap<String, Lease>,
    pub lease_seq: u32,
    pub counts: HashMap<&'static str, usize>,
    pub calls: Vec<String>,
    /// Containers that lived under the name before (recreated).
    pub old: Vec<Container>,
}

pub struct FakeEngine {
    pub s: Mutex<State>,
    pub faults: Mutex<Vec<Fault>>,
    base_wall: i64,
    base: Instant,
}

pub fn read_tree_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let t = rancher_cert_guard::source::dir::read_dir_tree(dir).unwrap();
    t.files()
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect()
}

impl FakeEngine {
    /// A running container whose tree is `dir`'s files; K3s regenerates from `fresh`.
    pub fn new(
        now: i64,
        tree: BTreeMap<String, Vec<u8>>,
        fresh: BTreeMap<String, Vec<u8>>,
    ) -> Self {
        FakeEngine {
            s: Mutex::new(State {
                c: Container {
                    id: ID.into(),
                    name: "rancher".into(),
                    running: true,
                    starts: 0,
                    stops: 0,
                    restart_count: 0,
                    started_at_nanos: i128::from(now - 3600) * 1_000_000_000,
                    auto_remove: false,
                    tree,
                },
                fresh,
                no_regen: HashSet::new(),
                boot_lines: VecDeque::new(),
                logs: vec![],
                pong: true,
                clock_offset: 0,
                outage_until: None,
                daemon_offset: 0,
                leases: HashMap::new(),
                lease_seq: 0,
                counts: HashMap::new(),
                calls: vec![],
                old: vec![],
            }),
            faults: Mutex::new(vec![]),
            base_wall: now,
            base: Instant::now(),
        }
    }

    pub fn fault(&self, call: &'static str, nth: usize, kind: FaultKind) {
        self.faults.lock().unwrap().push(Fault { call, nth, kind });
    }

    fn wall(&self, s: &State) -> i64 {
        self.base_wall + Instant::now().duration_since(self.base).as_secs() as i64 + s.clock_offset
    }

    fn nanos(&self, s: &State) -> i128 {
        i128::from(self.base_wall + s.clock_offset) * 1_000_000_000
            + Instant::now().duration_since(self.base).as_nanos() as i128
    }

    /// Count the call, apply its fault if one is due: `Err` to return, or hang.
    async fn enter(&self, call: &'static str) -> Result<(), Error> {
        let kind = {
            let mut s = self.s.lock().unwrap();
            let n = {
                let c = s.counts.entry(call).or_insert(0);
                *c += 1;
                *c
            };
            s.calls.push(call.to_string());
            if s.outage_until.is_some_and(|u| Instant::now() < u) {
                return Err(Error::DockerUnreachable {
                    host: "unix:///fake.sock".into(),
                    detail: "connection refused (outage)".into(),
                });
            }
            let f = self.faults.lock().unwrap();
            f.iter()
                .find(|f| f.call == call && f.nth == n)
                .map(|f| f.kind)
        };
        let Some(kind) = kind else { return Ok(()) };
        let server = |code: u16| Error::Docker {
            action: call.into(),
            container: "rancher".into(),
            source: bollard::errors::Error::DockerResponseServerError {
                status_code: code,
                message: format!("fault {code}"),
            },
        };
        match kind {
            FaultKind::Unreachable => Err(Error::DockerUnreachable {
                host: "unix:///fake.sock".into(),
                detail: "connection refused".into(),
            }),
            FaultKind::NotFound => Err(Error::ContainerNotFound {
                name: "rancher".into(),
                running: vec![],
            }),
            FaultKind::Conflict => Err(server(409)),
            FaultKind::Server500 => Err(server(500)),
            FaultKind::Hang => {
                let grace = if matches!(call, "stop" | "restart") {
                    30
                } else {
                    0
                };
                tokio::time::sleep(Duration::from_secs(60 + grace)).await;
                Err(Error::Timeout {
                    action: call.into(),
                    container: "rancher".into(),
                    secs: 60 + grace,
                })
            }
            FaultKind::Recreate => {
                let mut s = self.s.lock().unwrap();
                let now = self.nanos(&s);
                let tree = s.c.tree.clone();
                let old = std::mem::replace(
                    &mut s.c,
                    Container {
                        id: NEW_ID.into(),
                        name: "rancher".into(),
                        running: true,
                        starts: 1,
                        stops: 0,
                        restart_count: 0,
                        started_at_nanos: now,
                        auto_remove: false,
                        tree,
                    },
                );
                s.old.push(old);
                Ok(())
            }
            FaultKind::Outage(secs) => {
                self.s.lock().unwrap().outage_until =
                    Some(Instant::now() + Duration::from_secs(secs));
                Err(Error::DockerUnreachable {
                    host: "unix:///fake.sock".into(),
                    detail: "connection refused (outage)".into(),
                })
            }
            FaultKind::ClockJump(by) => {
                self.s.lock().unwrap().clock_offset += by;
                Ok(())
            }
        }
    }

    fn find<'a>(s: &'a mut State, name_or_id: &str) -> Option<&'a mut Container> {
        let c = &mut s.c;
        (c.id == name_or_id
            || c.name == name_or_id
            || (name_or_id.len() >= 12 && c.id.starts_with(name_or_id)))
        .then_some(c)
    }

    fn not_found(name: &str) -> Error {
        Error::ContainerNotFound {
            name: name.into(),
            running: vec![],
        }
    }

    fn do_start(&self, s: &mut State) {
        let now = self.nanos(s);
        let fresh = s.fresh.clone();
        let no_regen = s.no_regen.clone();
        let c = &mut s.c;
        c.running = true;
        c.starts += 1;
        c.started_at_nanos = now;
        for (p, b) in fresh {
            if !c.tree.contains_key(&p) && !no_regen.contains(&p) {
                c.tree.insert(p, b);
            }
        }
        c.tree.remove("dynamic-cert-regenerate");
        if let Some(lines) = s.boot_lines.pop_front() {
            for l in lines {
                s.logs.push((now + 1, l));
            }
        }
    }

    pub fn state<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.s.lock().unwrap())
    }
}

impl Engine for FakeEngine {
    async fn inspect(&self, name_or_id: &str) -> Result<ContainerInfo, Error> {
        self.enter("inspect").await?;
        let mut s = self.s.lock().unwrap();
        let c = Self::find(&mut s, name_or_id).ok_or_else(|| Self::not_found(name_or_id))?;
        let started = time::OffsetDateTime::from_unix_timestamp_nanos(c.started_at_nanos)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        Ok(ContainerInfo {
            id: c.id.clone(),
            name: c.name.clone(),
            image: "rancher/rancher:v2.5.7".into(),
            image_id: "sha256:rancher".into(),
            status: if c.running { "running" } else { "exited" }.into(),
            running: c.running,
            restarting: false,
            started_at: Some(started),
            restart_count: c.restart_count,
            labels: HashMap::new(),
            auto_remove: c.auto_remove,
            env: vec![
                "CATTLE_SERVER_VERSION=v2.5.7".into(),
                "CATTLE_K3S_VERSION=v1.18.8+k3s1".into(),
            ],
        })
    }

    async fn read_tree(&self, id: &str, _path: &str) -> Result<Tree, Error> {
        self.enter("read_tree").await?;
        let mut s = self.s.lock().unwrap();
        let c = Self::find(&mut s, id).ok_or_else(|| Self::not_found(id))?;
        let mut t = Tree {
            entries: c
                .tree
                .iter()
                .map(|(p, b)| TreeEntry {
                    path: p.clone(),
                    body: EntryBody::File(b.clone()),
                })
                .collect(),
        };
        t.sort();
        Ok(t)
    }

    async fn read_file(&self, id: &str, _path: &str) -> Result<Option<Vec<u8>>, Error> {
        self.enter("read_file").await?;
        let mut s = self.s.lock().unwrap();
        Self::find(&mut s, id).ok_or_else(|| Self::not_found(id))?;
        Ok(Some(b"apiVersion: v1\nkind: Config\n".to_vec()))
    }

    async fn logs_since(&self, id: &str, since_nanos: i128, _tail: usize) -> Result<String, Error> {
        self.enter("logs").await?;
        let mut s = self.s.lock().unwrap();
        Self::find(&mut s, id).ok_or_else(|| Self::not_found(id))?;
        Ok(s.logs
            .iter()
            .filter(|(t, _)| *t >= since_nanos)
            .map(|(_, l)| format!("{l}\n"))
            .collect())
    }

    async fn read_tail(
        &self,
        id: &str,
        _path: &str,
        _max: usize,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.enter("read_tail").await?;
        let mut s = self.s.lock().unwrap();
        Self::find(&mut s, id).ok_or_else(|| Self::not_found(id))?;
        Ok(None)
    }

    async fn exec(
        &self,
        id: &str,
        cmd: &[&str],
        _timeout: Duration,
    ) -> Result<(i64, String), Error> {
        self.enter("exec").await?;
        let mut s = self.s.lock().unwrap();
        let c = Self::find(&mut s, id).ok_or_else(|| Self::not_found(id))?;
        if !c.running {
            return Ok((
                1,
                "The connection to the server 127.0.0.1:6443 was refused".into(),
            ));
        }
        if cmd.contains(&"delete") {
            Ok((0, "secret \"k3s-serving\" deleted".into()))
        } else {
            Ok((0, "{\"kind\":\"Secret\"}".into()))
        }
    }

    async fn stop(&self, id: &str, _grace_secs: u32) -> Result<(), Error> {
        self.enter("stop").await?;
        let mut s = self.s.lock().unwrap();
        let c = Self::find(&mut s, id).ok_or_else(|| Self::not_found(id))?;
        c.running = false;
        c.stops += 1;
        Ok(())
    }

    async fn start(&self, id: &str) -> Result<(), Error> {
        self.enter("start").await?;
        let mut s = self.s.lock().unwrap();
        Self::find(&mut s, id).ok_or_else(|| Self::not_found(id))?;
        self.do_start(&mut s);
        Ok(())
    }

    async fn restart(&self, id: &str, _grace_secs: u32) -> Result<(), Error> {
        self.enter("restart").await?;
        let mut s = self.s.lock().unwrap();
        let c = Self::find(&mut s, id).ok_or_else(|| Self::not_found(id))?;
        c.stops += 1;
        self.do_start(&mut s);
        Ok(())
    }

    async fn run_helper(
        &self,
        target: &ContainerInfo,
        _run_id: &str,
        cmd: Vec<String>,
        _timeout: Duration,
    ) -> Result<(i64, String), Error> {
        self.enter("run_helper").await?;
        let mut s = self.s.lock().unwrap();
        let c = Self::find(&mut s, &target.id).ok_or_else(|| Self::not_found(&target.id))?;
        assert!(!c.running, "the wipe runs only on a stopped container");
        // cmd: sh -c SCRIPT name TLS trigger files...
        let files = &cmd[6..];
        for f in files {
            c.tree.remove(f);
        }
        c.tree.insert("dynamic-cert-regenerate".into(), vec![]);
        Ok((0, format!("wiped {}", files.len())))
    }

    async fn remove_exited_helpers(&self, _target_id: &str, _run_id: &str) -> Vec<String> {
        vec![]
    }

    async fn ping(&self, id: &str, _health_url: Option<&str>) -> bool {
        if self.enter("ping").await.is_err() {
            return false;
        }
        let mut s = self.s.lock().unwrap();
        let pong = s.pong;
        Self::find(&mut s, id).is_some_and(|c| c.running) && pong
    }

    async fn create_lease(
        &self,
        _target: &ContainerInfo,
        lease: &Lease,
    ) -> Result<Option<Lease>, Error> {
        self.enter("create_lease").await?;
        let mut s = self.s.lock().unwrap();
        if let Some(held) = s.leases.get(&lease.target_id) {
            return Ok(Some(held.clone()));
        }
        s.lease_seq += 1;
        let mut l = lease.clone();
        l.lease_id = format!("lease-{}", s.lease_seq);
        s.leases.insert(lease.target_id.clone(), l);
        Ok(None)
    }

    async fn find_lease(&self, target_id: &str) -> Result<Option<Lease>, Error> {
        self.enter("find_lease").await?;
        Ok(self.s.lock().unwrap().leases.get(target_id).cloned())
    }

    async fn remove_lease(&self, lease_id: &str) -> Result<(), Error> {
        self.enter("remove_lease").await?;
        self.s
            .lock()
            .unwrap()
            .leases
            .retain(|_, l| l.lease_id != lease_id);
        Ok(())
    }

    fn daemon_id(&self) -> String {
        "fake-daemon".into()
    }

    async fn daemon_time(&self) -> Result<i64, Error> {
        self.enter("daemon_time").await?;
        let s = self.s.lock().unwrap();
        Ok(self.wall(&s) - s.daemon_offset)
    }

    fn now(&self) -> i64 {
        let s = self.s.lock().unwrap();
        self.wall(&s)
    }
}
