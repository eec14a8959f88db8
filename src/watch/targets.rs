//! Which containers `watch` looks after: by name, by label, or by default every container of
//! a `rancher/rancher` image — never its own container, never a helper of this tool. Also turns
//! Docker events into triggers for the loop.

use std::collections::HashMap;

use crate::docker::HELPER_LABEL;
pub use crate::process::{
    id_from_cgroup, id_from_hostname, id_from_mountinfo, own_container, OwnId,
};

/// The parsed `--container` / `--label` selection.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Containers named on the command line (names or ids), watched whatever their image.
    pub names: Vec<String>,
    /// `KEY=VALUE` (or `KEY`: present with any value); a container must carry all of them.
    pub labels: Vec<(String, Option<String>)>,
    /// This process's own container, never a target.
    pub own: Option<OwnId>,
}

impl Selector {
    pub fn parse(names: &[String], labels: &[String]) -> Result<Self, String> {
        let names: Vec<String> = names
            .iter()
            .map(|n| n.trim().trim_start_matches('/').to_string())
            .filter(|n| !n.is_empty())
            .collect();
        let mut parsed = Vec::new();
        for l in labels.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
            match l.split_once('=') {
                Some(("", _)) => {
                    return Err(format!("invalid --label {l:?}: want KEY=VALUE or KEY"))
                }
                Some((k, v)) => parsed.push((k.to_string(), Some(v.to_string()))),
                None => parsed.push((l.to_string(), None)),
            }
        }
        Ok(Self {
            names,
            labels: parsed,
            own: None,
        })
    }

    /// Neither names nor labels: every `rancher/rancher` container.
    pub fn by_image(&self) -> bool {
        self.names.is_empty() && self.labels.is_empty()
    }

    /// Whether containers have to be listed to be found (labels or image), as opposed to
    /// looked up by name.
    pub fn needs_listing(&self) -> bool {
        !self.labels.is_empty() || self.by_image()
    }

    /// Docker list filters for discovery (`None`: list everything and match the image here).
    pub fn list_filters(&self) -> HashMap<String, Vec<String>> {
        let mut f = HashMap::new();
        if !self.labels.is_empty() {
            f.insert(
                "label".to_string(),
                self.labels
                    .iter()
                    .map(|(k, v)| match v {
                        Some(v) => format!("{k}={v}"),
                        None => k.clone(),
                    })
                    .collect(),
            );
        }
        f
    }

    pub fn is_self(&self, id: &str) -> bool {
        !id.is_empty() && self.own.as_ref().is_some_and(|o| o.is(id))
    }

    fn labels_match(&self, labels: &HashMap<String, String>) -> bool {
        !self.labels.is_empty()
            && self.labels.iter().all(|(k, v)| match v {
                Some(v) => labels.get(k) == Some(v),
                None => labels.contains_key(k),
            })
    }

    /// Is this container a target? `labels` may hold more than labels (event attributes do).
    pub fn matches(
        &self,
        id: &str,
        name: &str,
        image: &str,
        labels: &HashMap<String, String>,
    ) -> bool {
        if self.is_self(id) || labels.contains_key(HELPER_LABEL) {
            return false;
        }
        let name = name.trim_start_matches('/');
        self.names
            .iter()
            .any(|n| n == name || (n.len() >= 12 && id.starts_with(n.as_str())))
            || self.labels_match(labels)
            || (self.by_image() && is_rancher_image(image))
    }

    /// Human description for logs and /status.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.names.is_empty() {
            parts.push(format!("containers {}", self.names.join(", ")));
        }
        if !self.labels.is_empty() {
            let l: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                })
                .collect();
            parts.push(format!("containers labelled {}", l.join(" and ")));
        }
        if parts.is_empty() {
            parts.push("containers of rancher/rancher images".into());
        }
        parts.join(" or ")
    }
}

/// `rancher/rancher`, `rancher/rancher:v2.5.7`, `docker.io/rancher/rancher@sha256:…`,
/// `mirror:5000/rancher/rancher:v2.6` — but not `rancher/rancher-agent`.
pub fn is_rancher_image(image: &str) -> bool {
    let no_digest = image.split('@').next().unwrap_or(image);
    let repo = match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    };
    repo == "rancher/rancher" || repo.ends_with("/rancher/rancher")
}

/// What a Docker event means for the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The events stream is (re)connected: whatever happened meanwhile is unknown; list again.
    Resync,
    /// The events stream is down; Docker is unreachable until the next `Resync`.
    StreamDown(String),
    /// A target container started, restarted, died or was (re)created: look at it soon.
    Changed {
        name: String,
        id: String,
        action: String,
    },
    /// A target container was removed.
    Gone { name: String, id: String },
}

/// The trigger for a container event, if it concerns a target and is one that matters.
/// Our own reads (`archive-path`), execs and the helper container never trigger anything,
/// so watching cannot feed itself.
pub fn trigger_for(
    sel: &Selector,
    action: &str,
    id: &str,
    attributes: &HashMap<String, String>,
) -> Option<Trigger> {
    let name = attributes.get("name").map(String::as_str).unwrap_or("");
    let image = attributes.get("image").map(String::as_str).unwrap_or("");
    if !sel.matches(id, name, image, attributes) {
        return None;
    }
    let (name, id) = (name.to_string(), id.to_string());
    let action_word = action.split(':').next().unwrap_or(action).trim();
    match action_word {
        // Docker: create, start, restart, die, unpause; Podman: init, died.
        "create" | "start" | "restart" | "die" | "died" | "unpause" | "rename" => {
            Some(Trigger::Changed {
                name,
                id,
                action: action_word.to_string(),
            })
        }
        "health_status" if action.contains("unhealthy") => Some(Trigger::Changed {
            name,
            id,
            action: "unhealthy".into(),
        }),
        "destroy" | "remove" => Some(Trigger::Gone { name, id }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rancher_images() {
        for yes in [
            "rancher/rancher",
            "rancher/rancher:v2.5.7",
            "docker.io/rancher/rancher:latest",
            "mirror.local:5000/rancher/rancher:v2.6.1",
            "rancher/rancher@sha256:abcd",
        ] {
            assert!(is_rancher_image(yes), "{yes}");
        }
        for no in [
            "rancher/rancher-agent:v2.5.7",
            "rancher/rancher-webhook",
            "rancher-cert-guard-sim:local",
            "myrancher/rancher2",
            "",
        ] {
            assert!(!is_rancher_image(no), "{no}");
        }
    }

    #[test]
    fn selection() {
        let mut s = Selector::parse(
            &["rancher".into()],
            &["rancher-cert-guard.enable=true".into(), "tier".into()],
        )
        .unwrap();
        let none = HashMap::new();
        assert!(s.matches("a1", "rancher", "x", &none));
        assert!(s.matches("a1", "/rancher", "x", &none));
        assert!(
            !s.matches("a1", "other", "rancher/rancher", &none),
            "names given: no image default"
        );
        let l = attrs(&[("rancher-cert-guard.enable", "true"), ("tier", "x")]);
        assert!(s.matches("a2", "other", "x", &l));
        let partial = attrs(&[("rancher-cert-guard.enable", "true")]);
        assert!(
            !s.matches("a2", "other", "x", &partial),
            "all labels must match"
        );
        let own = "f".repeat(64);
        s.own = Some(OwnId::Full(own.clone()));
        assert!(!s.matches(&own, "rancher", "x", &none), "never itself");
        let helper = attrs(&[(HELPER_LABEL, "rancher")]);
        assert!(!s.matches("a3", "rancher", "x", &helper), "never a helper");

        let d = Selector::parse(&[], &[]).unwrap();
        assert!(d.by_image());
        assert!(d.matches("a", "x", "rancher/rancher:v2.5.7", &none));
        assert!(!d.matches("a", "x", "rancher/rancher-agent:v2.5.7", &none));
        assert!(Selector::parse(&[], &["=x".into()]).is_err());
        assert_eq!(
            s.list_filters().get("label").unwrap(),
            &vec!["rancher-cert-guard.enable=true".to_string(), "tier".into()]
        );
    }

    #[test]
    fn own_id_sources() {
        let id = "0123456789abcdef".repeat(4);
        let mountinfo = format!(
            "1 0 0:1 / / rw - overlay overlay rw\n\
             2 1 8:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n"
        );
        assert_eq!(id_from_mountinfo(&mountinfo), Some(id.clone()));
        assert_eq!(
            id_from_mountinfo("1 0 0:1 / / rw - overlay overlay rw\n"),
            None
        );
        // On the host: other containers' shm mounts say nothing about this process.
        let host = format!(
            "1 0 0:1 / / rw - ext4 /dev/vda rw\n\
             9 1 0:50 / /var/lib/docker/containers/{id}/mounts/shm rw - tmpfs shm rw\n"
        );
        assert_eq!(id_from_mountinfo(&host), None);
        assert_eq!(
            id_from_cgroup(&format!("12:pids:/docker/{id}\n")),
            Some(id.clone())
        );
        assert_eq!(
            id_from_cgroup(&format!("0::/system.slice/docker-{id}.scope\n")),
            Some(id.clone())
        );
        assert_eq!(id_from_cgroup("0::/\n"), None);
        assert_eq!(
            id_from_hostname("0123456789ab\n"),
            Some("0123456789ab".into())
        );
        assert_eq!(id_from_hostname("rancher-host"), None);
        assert!(OwnId::Prefix("0123456789ab".into()).is(&id));
        assert!(!OwnId::Prefix("0123456789ab".into()).is("ffff"));
    }

    #[test]
    fn events_to_triggers() {
        let s = Selector::parse(&["rancher".into()], &[]).unwrap();
        let a = attrs(&[("name", "rancher"), ("image", "rancher/rancher")]);
        for (action, want) in [
            ("start", Some("start")),
            ("restart", Some("restart")),
            ("die", Some("die")),
            ("create", Some("create")),
            ("health_status: unhealthy", Some("unhealthy")),
            ("health_status: healthy", None),
            ("archive-path", None),
            ("exec_create: sh -c curl", None),
            ("exec_die", None),
            ("attach", None),
        ] {
            let got = trigger_for(&s, action, "id1", &a);
            match want {
                Some(w) => assert_eq!(
                    got,
                    Some(Trigger::Changed {
                        name: "rancher".into(),
                        id: "id1".into(),
                        action: w.into()
                    }),
                    "{action}"
                ),
                None => assert_eq!(got, None, "{action}"),
            }
        }
        assert_eq!(
            trigger_for(&s, "destroy", "id1", &a),
            Some(Trigger::Gone {
                name: "rancher".into(),
                id: "id1".into()
            })
        );
        let other = attrs(&[("name", "postgres"), ("image", "postgres")]);
        assert_eq!(trigger_for(&s, "start", "id2", &other), None);
    }
}
