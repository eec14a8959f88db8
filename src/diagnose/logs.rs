//! The log classifier: which lines say that the embedded K3s's *own* certificates failed.
//!
//! A Rancher server logs x509 errors all day about things that are not its embedded K3s:
//! downstream and imported clusters (`https://10.x.x.x:6443/…`), agents (`wss://…/v3/connect`),
//! catalogs, Helm and Git repositories, auth providers, registries, browsers failing a handshake
//! on :443. Only a failure of K3s itself is a reason to wipe and restart K3s, so each line gets
//! one of three answers ([`LineClass`]):
//!
//! * **local K3s** — an x509/TLS verification error on a request to a *loopback* host
//!   (`127.x.x.x`, `localhost`, `[::1]`) at a *K3s port* ([`K3S_PORTS`]: 6443 the supervisor,
//!   6444 the apiserver, 2379 etcd), and K3s's own TLS start-up failure (`starting tls server:
//!   … x509: …`). Loopback alone is not enough: other services in the container listen there.
//!   The endpoint that counts is the last one named *before* the error text (Go's `url.Error`
//!   reads `Get "URL": x509: …`), and its path must be one K3s or a Kubernetes client asks
//!   for ([`K3S_PATHS`]) — a user who registers a catalog at `https://127.0.0.1:6443/` makes
//!   Rancher fetch `…/index.yaml`, which is not a K3s failure;
//! * **Rancher's own certificate** — the `rancher.cattle.io` webhook, the internal :444
//!   listener, the :443 serving certificate (`serving-cert`, `dynamiclistener-ca`,
//!   `rancher.cattle-system`, loopback :443). Recorded and reported, never a reason to wipe K3s;
//! * **unrelated** — everything else, including `http: TLS handshake error from …` (a peer
//!   failing *our* handshake) and boot noise such as `Waiting for server to become available:
//!   … connection refused`.
//!
//! `k3s exited with` is reported on its own ([`LineClass::K3sExited`]): Rancher prints it
//! whenever K3s dies (cgroups, disk, ports…), so it only counts together with a local line or
//! an expired certificate — the caller decides.
//!
//! Each line is cleaned first: CRLF ends, ANSI colour codes, and JSON-formatted lines
//! (`{"level":"error","msg":"…"}`, Docker's json-file `{"log":"…"}`) whose message is
//! classified. Work is linear in the input and allocations are bounded: at most
//! [`MAX_LINE`] bytes of a line are looked at, and every token is parsed with a length cap.

use serde::Serialize;

/// The ports of the embedded K3s: 6443 supervisor (dynamiclistener), 6444 kube-apiserver,
/// 2379 etcd (k3s `pkg/cluster/https.go`, `pkg/daemons/control/server.go`).
pub const K3S_PORTS: [u16; 3] = [6443, 6444, 2379];

/// Path prefixes a request to K3s has: Kubernetes clients (`/api`, `/apis`, `/version`,
/// `/openapi`), the health endpoints, the supervisor (`/cacerts`, `/ping`, `/v1-k3s/…`) and
/// etcd (`/health`). A URL with no path (or `/`) counts too.
pub const K3S_PATHS: &[&str] = &[
    "/api", "/version", "/openapi", "/cacerts", "/ping", "/health", "/livez", "/readyz", "/v1-",
    "/metrics",
];

/// At most this many bytes of a line are classified. Real lines are far shorter; a longer one
/// is cut (at a character boundary), which can only hide a failure that comes after the cut.
pub const MAX_LINE: usize = 16 * 1024;
/// At most this many sample lines are kept by [`scan`].
pub const MAX_SAMPLES: usize = 5;
/// Each sample is cut to this many characters.
pub const SAMPLE_CHARS: usize = 300;

/// The embedded K3s's own certificates failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalFailure {
    /// `x509: certificate signed by unknown authority` (also with Go's `(possibly because …)`).
    UnknownAuthority,
    /// `x509: certificate has expired or is not yet valid` with `current time X is after Y`,
    /// or with no detail (Go before 1.9 printed none).
    Expired,
    /// `… current time X is before Y`: the clock is behind the certificate — a clock problem,
    /// not ageing.
    NotYetValid,
    /// Another x509/TLS verification error on a local K3s endpoint (`certificate is valid for
    /// …, not …`, `remote error: tls: bad certificate`, …).
    OtherX509,
    /// K3s's own TLS start-up failed (`starting tls server: … x509: …`, k3s v0.8 in
    /// Rancher v2.3, rancher/rancher#29803).
    TlsStartup,
}

/// Rancher's own certificates (not K3s's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RancherCert {
    /// The :443 serving certificate (`cattle-system/serving-cert`, CA `dynamiclistener-ca`).
    Serving,
    /// The `rancher.cattle.io` admission webhook (`cattle-system/cattle-webhook-tls`).
    Webhook,
    /// The internal :444 listener (`cattle-system/tls-rancher-internal`).
    Internal,
}

/// The answer for one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum LineClass {
    LocalK3s(LocalFailure),
    /// `k3s exited with …`: K3s died, for whatever reason.
    K3sExited,
    RancherOwn(RancherCert),
    Unrelated,
}

/// What the logs say, line by line, summed up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogFindings {
    /// Local K3s failures, distinct, in order of first appearance.
    pub local: Vec<LocalFailure>,
    /// A `k3s exited with` line was seen. It counts only together with a local failure or an
    /// expired certificate: the caller decides.
    pub k3s_exited: bool,
    /// Rancher's own certificate failures, distinct, in order of first appearance.
    pub rancher: Vec<RancherCert>,
    /// Up to [`MAX_SAMPLES`] local or Rancher lines, cleaned, each cut to [`SAMPLE_CHARS`]
    /// characters, control characters replaced by spaces.
    pub samples: Vec<String>,
}

/// Classify one log line.
pub fn classify_line(line: &str) -> LineClass {
    let line = cap(line);
    // Most lines mention neither x509 nor TLS nor K3s exiting: no allocation for them.
    if !(contains_ci(line, b"x509") || contains_ci(line, b"tls") || contains_ci(line, b"exited")) {
        return LineClass::Unrelated;
    }
    classify_clean(&clean(line).to_ascii_lowercase())
}

/// Classify every line of `logs` and sum up.
pub fn scan(logs: &str) -> LogFindings {
    let mut f = LogFindings::default();
    for line in logs.split('\n') {
        let class = classify_line(line);
        let keep = match class {
            LineClass::LocalK3s(l) => {
                if !f.local.contains(&l) {
                    f.local.push(l);
                }
                true
            }
            LineClass::RancherOwn(r) => {
                if !f.rancher.contains(&r) {
                    f.rancher.push(r);
                }
                true
            }
            LineClass::K3sExited => {
                f.k3s_exited = true;
                false
            }
            LineClass::Unrelated => false,
        };
        if keep && f.samples.len() < MAX_SAMPLES {
            f.samples.push(sample(line));
        }
    }
    f
}

// ------------------------------------------------------------------ cleaning

/// At most [`MAX_LINE`] bytes, cut at a character boundary.
fn cap(line: &str) -> &str {
    if line.len() <= MAX_LINE {
        return line;
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// The text to classify: line ends and ANSI escapes removed; for a JSON object, its message
/// fields (`msg`, `message`, `log`, `error`, `err`), themselves cleaned of escapes.
fn clean(line: &str) -> String {
    let text = strip_ansi(line.trim_end_matches(['\r', '\n']));
    let trimmed = text.trim();
    if trimmed.starts_with('{') && trimmed.ends_with('}') {
        if let Ok(serde_json::Value::Object(map)) =
            serde_json::from_str::<serde_json::Value>(trimmed)
        {
            let parts: Vec<&str> = ["msg", "message", "log", "error", "err"]
                .iter()
                .filter_map(|k| map.get(*k).and_then(|v| v.as_str()))
                .collect();
            if !parts.is_empty() {
                return strip_ansi(parts.join(" ").trim());
            }
        }
    }
    text
}

/// Remove ANSI escape sequences (`ESC [ … final`, and two-byte `ESC x`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        // `ESC [` is followed by parameters and intermediates, then one final byte in @..~;
        // any other escape is two bytes (or a lone ESC at the end).
        if let Some('[') = chars.next() {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// A sample for reports: cleaned, cut, control characters replaced.
fn sample(line: &str) -> String {
    clean(cap(line))
        .chars()
        .take(SAMPLE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// ASCII case-insensitive substring test, linear for a short needle.
fn contains_ci(hay: &str, needle: &[u8]) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

// ------------------------------------------------------------------ classification

/// Texts that begin a certificate or TLS verification error (lower case).
const MARKERS: &[&str] = &[
    "x509: ",
    // rancher/rancher#37491 quotes the unknown-authority error without its colon.
    "x509 certificate",
    // Go ≥ 1.20 wraps verification errors: `tls: failed to verify certificate: x509: …`.
    "tls: failed to verify certificate",
    // The peer rejected our certificate.
    "remote error: tls:",
];

/// `t` is cleaned and lower case.
fn classify_clean(t: &str) -> LineClass {
    let exited = || {
        if t.contains("k3s exited with") {
            LineClass::K3sExited
        } else {
            LineClass::Unrelated
        }
    };
    // A peer (a browser, an agent, a node) failed *our* handshake: its problem, or a
    // misconfigured client — never a K3s certificate (rancher/rancher#15040, k3s-io/k3s#4067).
    if t.contains("http: tls handshake error from") {
        return exited();
    }
    let Some(at) = MARKERS.iter().filter_map(|m| t.find(m)).min() else {
        return exited();
    };
    let (before, error) = t.split_at(at);
    let failure = failure_kind(error);

    // The webhook is named before its error (`failed calling webhook "rancher.cattle.io":
    // Post "https://rancher-webhook…": x509: …`); named after an error about something else,
    // it is not what failed (rancher/rancher#43179).
    if before.contains("rancher-webhook.cattle-system")
        || before.contains("\"rancher.cattle.io")
        || before.contains("rancherauth.cattle.io")
        || before.contains("open rancher.cattle.io")
    {
        return LineClass::RancherOwn(RancherCert::Webhook);
    }
    if before.contains("starting tls server") {
        return LineClass::LocalK3s(match failure {
            LocalFailure::NotYetValid => LocalFailure::NotYetValid,
            _ => LocalFailure::TlsStartup,
        });
    }
    let ep = last_endpoint(before);
    if let Some(ep) = &ep {
        if ep.loopback() && ep.port.is_some_and(|p| K3S_PORTS.contains(&p)) && k3s_path(ep.path) {
            return LineClass::LocalK3s(failure);
        }
        if ep.port == Some(444) {
            return LineClass::RancherOwn(RancherCert::Internal);
        }
        if (ep.loopback() && ep.port == Some(443)) || ep.host.starts_with("rancher.cattle-system") {
            return LineClass::RancherOwn(RancherCert::Serving);
        }
    }
    if t.contains("tls-rancher-internal") {
        return LineClass::RancherOwn(RancherCert::Internal);
    }
    if t.contains("serving-cert") || t.contains("dynamiclistener-ca") {
        return LineClass::RancherOwn(RancherCert::Serving);
    }
    exited()
}

/// A path K3s serves: none, `/`, or one of [`K3S_PATHS`] — but not what Rancher appends to a
/// URL a user registered (a Helm repository's `index.yaml`, a chart `.tgz`, a Git `.git`).
fn k3s_path(path: &str) -> bool {
    let user_url = path.ends_with("index.yaml")
        || path.ends_with(".tgz")
        || path.ends_with(".git")
        || path.contains(".git/");
    !user_url && (path.is_empty() || path == "/" || K3S_PATHS.iter().any(|p| path.starts_with(p)))
}

/// What kind of failure the error text (from its first marker on) describes.
fn failure_kind(error: &str) -> LocalFailure {
    if error.contains("signed by unknown authority") {
        LocalFailure::UnknownAuthority
    } else if error.contains("not yet valid")
        || error.contains("has expired")
        || error.contains("expired certificate")
    {
        // Go: `x509: certificate has expired or is not yet valid: current time X is before Y`.
        match error.find("current time") {
            Some(i) if error[i..].contains(" is before ") => LocalFailure::NotYetValid,
            _ => LocalFailure::Expired,
        }
    } else {
        LocalFailure::OtherX509
    }
}

/// A host (and port, and path) named in a line.
#[derive(Debug, PartialEq, Eq)]
struct Endpoint<'a> {
    host: &'a str,
    /// Explicit, or the scheme's default (https/wss 443, http/ws 80).
    port: Option<u16>,
    /// Without query; empty for `host:port` without a URL.
    path: &'a str,
}

impl Endpoint<'_> {
    fn loopback(&self) -> bool {
        let h = self.host;
        h == "localhost"
            || h == "[::1]"
            || h == "::1"
            || h == "[0:0:0:0:0:0:0:1]"
            || (h.starts_with("127.") && is_ipv4(h))
    }
}

/// Longest host, path and scheme parsed: tokens are never scanned further (linear time).
const MAX_HOST: usize = 253;
const MAX_PATH: usize = 256;
const MAX_SCHEME: usize = 16;

/// The last endpoint named in `t`: URLs (`scheme://host[:port][/path]`) and bare
/// `host:port` with an IPv4 literal, `localhost` or a bracketed IPv6 host (`dial tcp
/// 127.0.0.1:2379`, `Failed to dial 127.0.0.1:2379`).
fn last_endpoint(t: &str) -> Option<Endpoint<'_>> {
    let b = t.as_bytes();
    let mut best: Option<(usize, Endpoint<'_>)> = None;
    // URLs.
    for (i, _) in t.match_indices("://") {
        let mut s = i;
        while s > 0 && i - s < MAX_SCHEME && is_scheme_byte(b[s - 1]) {
            s -= 1;
        }
        let scheme = &t[s..i];
        let default_port = match scheme {
            "https" | "wss" => Some(443),
            "http" | "ws" => Some(80),
            _ => None,
        };
        if let Some((host, port, rest)) = host_port(&t[i + 3..]) {
            let path = url_path(rest);
            keep(
                s,
                Endpoint {
                    host,
                    port: port.or(default_port),
                    path,
                },
                &mut best,
            );
        }
    }
    // Bare host:port; a host that follows `/` or `:` belongs to a URL or a longer token.
    for (i, &c) in b.iter().enumerate() {
        if !(c.is_ascii_digit() || c == b'l' || c == b'[') {
            continue;
        }
        if i > 0 && is_token_byte(b[i - 1]) {
            continue;
        }
        if let Some((host, Some(port), _)) = host_port(&t[i..]) {
            let bare_ok = host == "localhost" || host.starts_with('[') || is_ipv4(host);
            if bare_ok {
                keep(
                    i,
                    Endpoint {
                        host,
                        port: Some(port),
                        path: "",
                    },
                    &mut best,
                );
            }
        }
    }
    best.map(|(_, ep)| ep)
}

/// Keep `ep` (found at `pos`) when it comes after the best so far.
fn keep<'a>(pos: usize, ep: Endpoint<'a>, best: &mut Option<(usize, Endpoint<'a>)>) {
    if best.as_ref().is_none_or(|(p, _)| pos >= *p) {
        *best = Some((pos, ep));
    }
}

/// `host[:port]` at the start of `s`; the rest after them.
fn host_port(s: &str) -> Option<(&str, Option<u16>, &str)> {
    let b = s.as_bytes();
    let host_end = if b.first() == Some(&b'[') {
        let close = b.iter().take(64).position(|&c| c == b']')?;
        close + 1
    } else {
        let n = b
            .iter()
            .take(MAX_HOST + 1)
            .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_')
            .count();
        if n == 0 || n > MAX_HOST {
            return None;
        }
        n
    };
    let host = &s[..host_end];
    let rest = &s[host_end..];
    if let Some(after) = rest.strip_prefix(':') {
        let digits = after
            .bytes()
            .take(6)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits > 0 && digits <= 5 {
            let port = after[..digits].parse::<u16>().ok()?;
            return Some((host, Some(port), &after[digits..]));
        }
    }
    Some((host, None, rest))
}

/// The path at the start of `rest` (after the authority), without query or fragment.
fn url_path(rest: &str) -> &str {
    if !rest.starts_with('/') {
        return "";
    }
    let end = rest
        .bytes()
        .take(MAX_PATH)
        .position(|c| {
            matches!(
                c,
                b'?' | b'#' | b'"' | b'\'' | b'\\' | b' ' | b'\t' | b')' | b'>' | b',' | b';'
            )
        })
        .unwrap_or_else(|| rest.len().min(MAX_PATH));
    let mut end = end.min(rest.len());
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    let path = &rest[..end];
    // `Get https://localhost:6443/version?timeout=30s: x509: …` (old Go, no quotes): the
    // colon ends the URL.
    path.split(':').next().unwrap_or(path)
}

fn is_scheme_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.'
}

/// Bytes that continue a token: a host that follows one is not a host of its own.
fn is_token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'/' | b':' | b'@' | b'[')
}

/// A dotted-quad IPv4 literal.
fn is_ipv4(h: &str) -> bool {
    let mut n = 0;
    for part in h.split('.') {
        n += 1;
        if n > 4 || part.is_empty() || part.len() > 3 || !part.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
        if part.parse::<u16>().map_or(true, |v| v > 255) {
            return false;
        }
    }
    n == 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use LineClass::*;
    use LocalFailure::*;

    #[test]
    fn endpoints() {
        let ep =
            |t: &str| last_endpoint(t).map(|e| (e.host.to_string(), e.port, e.path.to_string()));
        assert_eq!(
            ep("get \"https://127.0.0.1:6443/version?timeout=15m0s\": "),
            Some(("127.0.0.1".into(), Some(6443), "/version".into()))
        );
        assert_eq!(
            ep("get https://localhost:6443/version?timeout=30s: "),
            Some(("localhost".into(), Some(6443), "/version".into()))
        );
        assert_eq!(
            ep("get https://localhost:6443/cacerts: "),
            Some(("localhost".into(), Some(6443), "/cacerts".into()))
        );
        assert_eq!(
            ep("get \"https://[::1]:6443/api/v1/x\": "),
            Some(("[::1]".into(), Some(6443), "/api/v1/x".into()))
        );
        assert_eq!(
            ep("failed to dial 127.0.0.1:2379: connection error: "),
            Some(("127.0.0.1".into(), Some(2379), "".into()))
        );
        assert_eq!(
            ep("post \"https://rancher-webhook.cattle-system.svc/v1\": "),
            Some((
                "rancher-webhook.cattle-system.svc".into(),
                Some(443),
                "/v1".into()
            ))
        );
        // The last one before the error counts.
        assert_eq!(
            ep("proxy 127.0.0.1:6443 via get https://10.0.0.5:6443/api: ").map(|e| e.0),
            Some("10.0.0.5".into())
        );
        // Not hosts: timestamps, versions, hosts inside other tokens.
        assert_eq!(ep("current time 2021-04-04t09:04:37z is after"), None);
        assert_eq!(ep("v1.18.8+k3s1 foo.127.0.0.1:6443"), None);
        assert_eq!(ep("notlocalhost:6443"), None);
    }

    #[test]
    fn ipv4() {
        assert!(is_ipv4("127.0.0.1"));
        assert!(is_ipv4("10.43.0.1"));
        assert!(!is_ipv4("127.0.0"));
        assert!(!is_ipv4("256.0.0.1"));
        assert!(!is_ipv4("1.2.3.4.5"));
        assert!(!is_ipv4("a.b.c.d"));
    }

    #[test]
    fn the_three_answers() {
        let c = classify_line;
        assert_eq!(
            c(
                r#"[INFO] Waiting for server to become available: Get "https://127.0.0.1:6443/version?timeout=15m0s": x509: certificate has expired or is not yet valid: current time 2021-04-04T09:04:37Z is after 2021-04-03T12:53:59Z"#
            ),
            LocalK3s(Expired)
        );
        assert_eq!(
            c("x509: certificate has expired or is not yet valid: current time 2022-07-22T18:55:59+12:00 is before 2022-07-22T07:45:55Z Get \"https://127.0.0.1:6444/api\""),
            Unrelated,
            "the endpoint must come before the error"
        );
        assert_eq!(
            c(
                r#"Get "https://127.0.0.1:6444/api/v1/services": x509: certificate has expired or is not yet valid: current time 2022-07-22T18:55:59+12:00 is before 2022-07-22T07:45:55Z"#
            ),
            LocalK3s(NotYetValid)
        );
        assert_eq!(
            c(
                r#"Get "https://127.0.0.1:6443/version": tls: failed to verify certificate: x509: certificate signed by unknown authority"#
            ),
            LocalK3s(UnknownAuthority)
        );
        assert_eq!(
            c(
                r#"Get "https://127.0.0.1:6443/version": x509: certificate is valid for 10.0.0.1, not 127.0.0.1"#
            ),
            LocalK3s(OtherX509)
        );
        assert_eq!(
            c("level=fatal msg=\"starting tls server: Get https://localhost:6444/apis/apiextensions.k8s.io/v1beta1/customresourcedefinitions: x509: certificate has expired or is not yet valid\""),
            LocalK3s(TlsStartup)
        );
        assert_eq!(c("[FATAL] k3s exited with: exit status 1"), K3sExited);
        // Loopback, but not a K3s port: some other local service.
        assert_eq!(
            c(
                r#"Get "https://127.0.0.1:9345/cacerts": x509: certificate has expired or is not yet valid"#
            ),
            Unrelated
        );
        // A K3s port, but not loopback: a downstream cluster.
        assert_eq!(
            c("Get https://172.16.0.15:6443/api/v1/componentstatuses?timeout=30s: x509: certificate has expired or is not yet valid"),
            Unrelated
        );
        // A user-registered URL that points at the local K3s: not a K3s failure.
        assert_eq!(
            c("CatalogController x [catalog] failed with : Get https://127.0.0.1:6443/index.yaml: x509: certificate signed by unknown authority"),
            Unrelated
        );
        assert_eq!(
            c(
                r#"Get "https://127.0.0.1:6443/api/charts/index.yaml": x509: certificate signed by unknown authority"#
            ),
            Unrelated
        );
        assert_eq!(
            c(
                r#"Get "https://localhost:6443/version/x.git/info/refs": x509: certificate signed by unknown authority"#
            ),
            Unrelated
        );
        assert_eq!(
            c(
                r#"failed calling webhook "rancher.cattle.io": Post "https://rancher-webhook.cattle-system.svc:443/v1/webhook/mutation?timeout=10s": x509: certificate has expired or is not yet valid"#
            ),
            RancherOwn(RancherCert::Webhook)
        );
        assert_eq!(
            c(
                r#"Get "https://127.0.0.1:444/v3/connect": x509: certificate has expired or is not yet valid"#
            ),
            RancherOwn(RancherCert::Internal)
        );
        assert_eq!(
            c(r#"Get "https://127.0.0.1/ping": x509: certificate has expired or is not yet valid"#),
            RancherOwn(RancherCert::Serving)
        );
        assert_eq!(
            c("http: TLS handshake error from 127.0.0.1:44528: remote error: tls: bad certificate"),
            Unrelated
        );
        assert_eq!(
            c(
                r#"[INFO] Waiting for server to become available: Get "https://127.0.0.1:6443/version?timeout=15m0s": dial tcp 127.0.0.1:6443: connect: connection refused"#
            ),
            Unrelated
        );
        assert_eq!(c(""), Unrelated);
        assert_eq!(c("x509: "), Unrelated);
    }

    #[test]
    fn cleaning() {
        let line = "\x1b[31mERRO\x1b[0m[0001] Get \"https://127.0.0.1:6443/version\": x509: certificate signed by unknown authority\r";
        assert_eq!(classify_line(line), LocalK3s(UnknownAuthority));
        let json = r#"{"level":"error","msg":"Waiting for server to become available: Get \"https://127.0.0.1:6443/version?timeout=15m0s\": x509: certificate signed by unknown authority","time":"2024-01-01T00:00:00Z"}"#;
        assert_eq!(classify_line(json), LocalK3s(UnknownAuthority));
        let docker = r#"{"log":"2021/04/04 09:04:37 [INFO] Waiting for server to become available: Get \"https://127.0.0.1:6443/version?timeout=15m0s\": x509: certificate has expired or is not yet valid: current time 2021-04-04T09:04:37Z is after 2021-04-03T12:53:59Z\n","stream":"stdout","time":"2021-04-04T09:04:37.1Z"}"#;
        assert_eq!(classify_line(docker), LocalK3s(Expired));
        // Broken JSON is classified as text.
        assert_eq!(classify_line("{\"msg\": x509: oops"), Unrelated);
    }

    #[test]
    fn scan_sums_up_and_bounds_samples() {
        let mut logs = String::new();
        for _ in 0..10 {
            logs.push_str("Get \"https://127.0.0.1:6443/version\": x509: certificate signed by unknown authority\r\n");
        }
        logs.push_str("[FATAL] k3s exited with: exit status 1\n");
        logs.push_str(r#"failed calling webhook "rancher.cattle.io": Post "https://rancher-webhook.cattle-system.svc:443/x": x509: certificate has expired or is not yet valid"#);
        let f = scan(&logs);
        assert_eq!(f.local, vec![UnknownAuthority]);
        assert!(f.k3s_exited);
        assert_eq!(f.rancher, vec![RancherCert::Webhook]);
        assert_eq!(f.samples.len(), MAX_SAMPLES);
        assert!(f.samples.iter().all(|s| !s.contains('\r')));
        assert_eq!(scan(""), LogFindings::default());
    }

    #[test]
    fn hostile_input_is_linear_and_bounded() {
        // Long runs of every token the parser reacts to; each line well past MAX_LINE.
        let patterns = [
            "127.",
            "://",
            "localhost:",
            "[",
            "x509: ",
            "1",
            "\x1b[",
            "{\"msg\":\"",
            "é",
            "https://127.0.0.1:6443/",
        ];
        for p in patterns {
            let line = p.repeat(200_000 / p.len());
            let t0 = std::time::Instant::now();
            let _ = classify_line(&line);
            let f = scan(&format!("{line}\n{line}"));
            assert!(f.samples.iter().all(|s| s.chars().count() <= SAMPLE_CHARS));
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(2),
                "{p:?} took {:?}",
                t0.elapsed()
            );
        }
        // A real failure after a long prefix within the cap is still found.
        let line = format!(
            "{} Get \"https://127.0.0.1:6443/version\": x509: certificate signed by unknown authority",
            "a".repeat(10_000)
        );
        assert_eq!(classify_line(&line), LocalK3s(UnknownAuthority));
        // A cut in the middle of a multi-byte character does not panic.
        let line = "é".repeat(MAX_LINE);
        assert_eq!(classify_line(&line), Unrelated);
    }
}
