// The x509 lines a healthy Rancher server prints about things that are not its embedded K3s,
// printed by `SIM_NOISE=1` every ~0.5 s (see `noise.rs`). Each is a real line (level and
// message; Rancher's timestamp is printed fresh) quoted in the public issue named beside it;
// the same lines are in the project's corpus (`tests/data/log_corpus.jsonl`), whose test also
// includes this file and asserts that none of them is a failure of the embedded K3s.
//
// This file holds data only, so that `rancher-cert-guard`'s tests can `include!` it.

/// `(level, message, source)`.
pub const NOISE_LINES: &[(&str, &str, &str)] = &[
    (
        "ERROR",
        "CatalogController massimo-catalog [catalog] failed with : Get https://massimocatalog.do.rancher.space:4443/index.yaml: x509: certificate signed by unknown authority",
        "https://github.com/rancher/rancher/issues/14403",
    ),
    (
        "ERROR",
        "Failed to communicate with API server: Get https://172.16.0.15:6443/api/v1/componentstatuses?timeout=30s: x509: certificate has expired or is not yet valid",
        "https://github.com/rancher/rancher/issues/24324",
    ),
    (
        "ERROR",
        "Failed to dial steve aggregation server: x509: certificate signed by unknown authority",
        "https://github.com/rancher/rancher/issues/32492",
    ),
    (
        "ERROR",
        "error syncing 'default': handler secretsController: Internal error occurred: failed calling webhook \"rancher.cattle.io\": Post \"https://rancher-webhook.cattle-system.svc:443/v1/webhook/mutation?timeout=10s\": x509: certificate has expired or is not yet valid: current time 2021-10-28T10:30:21+08:00 is after 2021-10-10T01:35:13Z, requeuing",
        "https://github.com/rancher/webhook/issues/58",
    ),
    (
        "ERROR",
        "2025/07/14 10:30:51 http: TLS handshake error from 10.2.0.231:65121: remote error: tls: unknown certificate",
        "https://github.com/rancher/rancher/issues/51018",
    ),
    (
        "ERROR",
        "API error response 500 for POST /v3/activeDirectoryConfigs/activedirectory?action=testAndApply. Cause: Error creating ssl connection: LDAP Result Code 200 \"\": x509: certificate signed by unknown authority",
        "https://github.com/rancher/rancher/issues/12131",
    ),
    (
        "INFO",
        "time=\"2019-08-31T03:55:00Z\" level=error msg=\"Failed to connect to proxy\" error=\"x509: certificate signed by unknown authority\"",
        "https://github.com/rancher/rancher/issues/22582",
    ),
    (
        "INFO",
        "E0730 14:56:18.679564   31585 memcache.go:265] couldn't get current server API group list: Get \"https://52.18.63.80:6443/api?timeout=32s\": tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2024-07-30T14:56:18+02:00 is after 2024-07-30T12:05:05Z",
        "https://github.com/thinkst/canarytokens/issues/555",
    ),
    (
        "ERROR",
        "Get \"https://helm.gravitee.io/index.yaml\": x509: certificate signed by unknown authority",
        "https://github.com/rancher/rancher/issues/31679",
    ),
    (
        "INFO",
        "2020/10/28 05:44:27 http: TLS handshake error from 127.0.0.1:48208: remote error: tls: bad certificate",
        "https://github.com/rancher/rancher/issues/29802",
    ),
];
