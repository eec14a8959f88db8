//! `/etc/rancher/k3s/k3s.yaml`: written by k3s on every start, read by
//! Rancher once (possibly the stale copy from the previous run).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::fsutil;
use crate::paths::{p, KUBECONFIG};
use crate::pki;

/// The server CA embedded in the current kubeconfig, if the file exists and
/// holds a parsable `certificate-authority-data`.
pub fn read_ca() -> Option<Vec<u8>> {
    let text = fsutil::read_string(&p(KUBECONFIG))?;
    let value = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data:"))?
        .trim()
        .trim_matches('"');
    let pem = String::from_utf8(B64.decode(value).ok()?).ok()?;
    pki::cert_ders(&pem).into_iter().next()
}

/// Writes the kubeconfig (mode 0600) the way k3s does.
pub fn write(server_ca_pem: &str, admin_crt_pem: &str, admin_key_pem: &str) -> Result<(), String> {
    let text = format!(
        "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {}
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {{}}
users:
- name: default
  user:
    client-certificate-data: {}
    client-key-data: {}
",
        B64.encode(server_ca_pem),
        B64.encode(admin_crt_pem),
        B64.encode(admin_key_pem)
    );
    let path = p(KUBECONFIG);
    fsutil::write(&path, text.as_bytes(), 0o600)
        .map_err(|e| format!("write {}: {e}", path.display()))
}
