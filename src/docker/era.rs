//! The era of a Rancher container: the Rancher and embedded K3s versions its image carries,
//! where remedies differ between them.

use serde::Serialize;

use super::ContainerInfo;

/// The Rancher and embedded K3s versions of a container, from its image's environment
/// (`ENV CATTLE_SERVER_VERSION` and `ENV CATTLE_K3S_VERSION` in rancher/rancher's
/// package/Dockerfile).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Era {
    pub rancher: Option<String>,
    pub k3s: Option<String>,
}

impl Era {
    pub fn of(info: &ContainerInfo) -> Self {
        let get = |k: &str| {
            info.env
                .iter()
                .find_map(|e| e.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .map(str::to_string)
                .filter(|v| !v.is_empty())
        };
        Era {
            rancher: get("CATTLE_SERVER_VERSION"),
            k3s: get("CATTLE_K3S_VERSION"),
        }
    }

    pub fn is_known(&self) -> bool {
        self.rancher.is_some() || self.k3s.is_some()
    }

    /// (major, minor) of the embedded K3s, e.g. `v1.18.8+k3s1` → (1, 18).
    pub fn k3s_minor(&self) -> Option<(u32, u32)> {
        let v = self.k3s.as_deref()?.trim_start_matches('v');
        let mut it = v.split(['.', '+', '-']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    }

    /// Does this K3s honour `tls/dynamic-cert-regenerate`? K3s of Rancher ≤ v2.5.7
    /// (v0.8, v1.17, v1.18, dynamiclistener ≤ v0.2.0) never reads it; writing it there only
    /// leaves a stray file. Unknown versions get it (it is harmless).
    pub fn honours_regenerate_trigger(&self) -> bool {
        !matches!(self.k3s_minor(), Some((0, _)) | Some((1, 0..=18)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eras_from_the_image_environment() {
        let mut i = ContainerInfo {
            id: "x".into(),
            name: "r".into(),
            image: String::new(),
            image_id: String::new(),
            status: String::new(),
            running: true,
            restarting: false,
            started_at: None,
            restart_count: 0,
            labels: Default::default(),
            auto_remove: false,
            env: vec![
                "PATH=/bin".into(),
                "CATTLE_SERVER_VERSION=v2.5.7".into(),
                "CATTLE_K3S_VERSION=v1.18.8+k3s1".into(),
            ],
        };
        let e = Era::of(&i);
        assert_eq!(e.rancher.as_deref(), Some("v2.5.7"));
        assert_eq!(e.k3s_minor(), Some((1, 18)));
        assert!(!e.honours_regenerate_trigger());
        i.env = vec!["CATTLE_K3S_VERSION=v1.21.7+k3s1".into()];
        assert!(Era::of(&i).honours_regenerate_trigger());
        i.env = vec![];
        assert!(!Era::of(&i).is_known());
        assert!(Era::of(&i).honours_regenerate_trigger());
    }
}
