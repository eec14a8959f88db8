//! A Docker engine of the test's own — its socket, data and exec roots in a temporary
//! directory, `--iptables=false --bridge=none` — which the test may stop and start (by the
//! pid it started) without touching the machine's engine. It runs in a network namespace of
//! its own (`unshare --net`): a dockerd started with `--bridge=none` deletes any `docker0`
//! link it sees, which would cut the machine's engine off its default bridge.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

pub struct PrivateDaemon {
    pub dir: tempfile::TempDir,
    /// `unix:///…/docker.sock`, for `DOCKER_HOST`.
    pub host: String,
    child: Option<Child>,
}

impl PrivateDaemon {
    /// Start one; `None` (or a panic under `CI=true`) when `dockerd` cannot run here.
    pub fn start() -> Option<Self> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        if Command::new("dockerd").arg("--version").output().is_err() {
            assert!(!ci, "CI=true and dockerd is not installed");
            eprintln!("SKIPPED: dockerd is not installed");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("rcg-dockerd")
            .tempdir_in("/tmp")
            .ok()?;
        std::fs::write(dir.path().join("daemon.json"), "{}").ok()?;
        let host = format!("unix://{}", dir.path().join("docker.sock").display());
        let mut d = PrivateDaemon {
            dir,
            host,
            child: None,
        };
        if !d.launch() {
            assert!(
                !ci,
                "CI=true and a private dockerd did not start: {}",
                d.log()
            );
            eprintln!("SKIPPED: a private dockerd did not start: {}", d.log());
            return None;
        }
        Some(d)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("dockerd.log"))
            .unwrap_or_default()
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Start the daemon and wait until it answers (at most 30 s).
    pub fn launch(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("dockerd.log"))
            .unwrap();
        let child = Command::new("unshare")
            .args(["--net", "--", "dockerd"])
            .arg("--config-file")
            .arg(self.path("daemon.json"))
            .arg("--data-root")
            .arg(self.path("data"))
            .arg("--exec-root")
            .arg(self.path("exec"))
            .arg("--pidfile")
            .arg(self.path("dockerd.pid"))
            .args(["-H", &self.host])
            .args(["--iptables=false", "--bridge=none"])
            .args(["--containerd-namespace", "rcg-test"])
            .args(["--containerd-plugins-namespace", "rcg-test-plugins"])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if self
                .cli(&["info", "--format", "{{.ServerVersion}}"])
                .status
                .success()
            {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        false
    }

    /// Stop the daemon (SIGTERM to the pid we started, then wait): its containers stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // `unshare` execs dockerd: the pid we started is the daemon's.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// `docker -H <this daemon> …`
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(super::docker_cli())
            .args(["-H", &self.host])
            .args(args)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("run docker")
    }

    /// Like `cli`, panicking with stderr on failure; trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Copy an image of the machine's engine into this one.
    pub fn load(&self, image: &str) {
        let mut save = Command::new(super::docker_cli())
            .args(["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let o = Command::new(super::docker_cli())
            .args(["-H", &self.host, "load", "-q"])
            .stdin(save.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(save.wait().unwrap().success(), "docker save {image}");
        assert!(
            o.status.success(),
            "load: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.ok(&["ps", "-aq"]);
            for id in ids.lines() {
                let _ = self.cli(&["rm", "-f", "-v", id]);
            }
        }
        self.stop();
    }
}
