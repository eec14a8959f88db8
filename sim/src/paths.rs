//! Well-known paths inside the container.
//!
//! Every path is resolved below `SIM_ROOT` (default `/`), a development knob
//! that lets the binary run on a host against a scratch directory.

use std::path::PathBuf;

/// The k3s server TLS directory.
pub const TLS_DIR: &str = "/var/lib/rancher/k3s/server/tls";
/// Marker written after the first successful certificate generation.
pub const MARKER: &str = "/var/lib/rancher/.sim-initialized";
/// Unix time used in the CN of the CAs minted last (sim bookkeeping, see
/// `k3s::Ctx::new`).
pub const LAST_CA_MINT: &str = "/var/lib/rancher/.sim-last-ca-mint";
/// The simulated datastore copy of the `kube-system/k3s-serving` secret.
pub const SERVING_SECRET: &str =
    "/var/lib/rancher/management-state/secrets/kube-system/k3s-serving.json";
/// The kubeconfig k3s writes and Rancher reads.
pub const KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";
/// Where k3s logs with `SIM_K3S_LOG=file` (Rancher's `--log=./k3s.log`,
/// relative to `WORKDIR /var/lib/rancher`).
pub const K3S_LOG: &str = "/var/lib/rancher/k3s.log";
/// Exists while the simulated Kubernetes API answers (used by `kubectl`).
pub const API_UP: &str = "/var/run/k3s-api.up";

/// Resolves an absolute container path below `SIM_ROOT`.
pub fn p(abs: &str) -> PathBuf {
    let root = std::env::var_os("SIM_ROOT").unwrap_or_else(|| "/".into());
    PathBuf::from(root).join(abs.trim_start_matches('/'))
}

/// A file below the TLS directory, e.g. `tls("etcd/peer-ca.crt")`.
pub fn tls(rel: &str) -> PathBuf {
    p(TLS_DIR).join(rel)
}
