//! Tests of `diagnose::clock`.

use super::*;
use crate::inventory::{CertKind, CertRecord, Status, DAY};

/// 2026-12-01T00:00:00Z: a sane "now" after the floor.
const NOW: i64 = CLOCK_FLOOR + 5 * DAY;
const TOL: i64 = DEFAULT_TOLERANCE_SECS;

fn cert(path: &str, kind: CertKind, not_before: i64, not_after: i64) -> CertRecord {
    CertRecord {
        path: path.into(),
        index: 0,
        kind,
        subject: String::new(),
        issuer: String::new(),
        serial: "0".into(),
        not_before,
        not_after,
        is_ca: kind == CertKind::Ca,
        seconds_left: 0,
        status: Status::Ok,
        sha256: String::new(),
        subject_cn: String::new(),
        issuer_cn: String::new(),
    }
}

/// A K3s tree minted at `minted`: one CA, one leaf (notBefore = the CA's), the serving cert.
fn tree(minted: i64) -> Inventory {
    Inventory {
        certificates: vec![
            cert("server-ca.crt", CertKind::Ca, minted, minted + 3650 * DAY),
            cert(
                "client-admin.crt",
                CertKind::Leaf,
                minted,
                minted + 365 * DAY,
            ),
            cert(
                "dynamic-cert.json",
                CertKind::Serving,
                minted,
                minted + 365 * DAY,
            ),
        ],
        ..Default::default()
    }
}

#[test]
fn table() {
    struct Case {
        name: &'static str,
        tool: i64,
        daemon: Option<i64>,
        inv: Inventory,
        want: &'static [SkewKind],
    }
    use SkewKind::*;
    let cases = [
        Case {
            name: "healthy: same clock, tree minted a month ago",
            tool: NOW,
            daemon: Some(NOW + 1),
            inv: tree(NOW - 30 * DAY),
            want: &[],
        },
        Case {
            name: "daemon unreadable: the other checks still apply",
            tool: NOW,
            daemon: None,
            inv: tree(NOW - 30 * DAY),
            want: &[],
        },
        Case {
            name: "empty tree (first boot)",
            tool: NOW,
            daemon: Some(NOW),
            inv: Inventory::default(),
            want: &[],
        },
        Case {
            name: "clocks differ within the tolerance",
            tool: NOW,
            daemon: Some(NOW - TOL),
            inv: tree(NOW - DAY),
            want: &[],
        },
        Case {
            name: "the tool is 10 minutes behind Docker",
            tool: NOW,
            daemon: Some(NOW + 600),
            inv: tree(NOW - DAY),
            want: &[DaemonDisagrees],
        },
        Case {
            name: "RTC reset to 1970 on the whole host",
            tool: 5,
            daemon: Some(6),
            inv: tree(NOW - 30 * DAY),
            want: &[
                ToolBeforeFloor,
                DaemonBeforeFloor,
                CaFromTheFuture,
                NothingValidYet,
            ],
        },
        Case {
            name: "only the tool's container fakes 1970",
            tool: 5,
            daemon: Some(NOW),
            inv: tree(NOW - 30 * DAY),
            want: &[
                DaemonDisagrees,
                ToolBeforeFloor,
                CaFromTheFuture,
                NothingValidYet,
            ],
        },
        Case {
            name: "tree minted 30 days ahead (k3s#6152), clock now right",
            tool: NOW,
            daemon: Some(NOW),
            inv: tree(NOW + 30 * DAY),
            want: &[CaFromTheFuture, NothingValidYet],
        },
        Case {
            name: "a CA a minute in the future is within the tolerance",
            tool: NOW,
            daemon: Some(NOW),
            inv: tree(NOW + 60),
            want: &[],
        },
        Case {
            name: "a CA in the future, leaves already valid (CA re-minted ahead)",
            tool: NOW,
            daemon: Some(NOW),
            inv: Inventory {
                certificates: vec![
                    cert(
                        "server-ca.crt",
                        CertKind::Ca,
                        NOW + 2 * DAY,
                        NOW + 3000 * DAY,
                    ),
                    cert(
                        "client-admin.crt",
                        CertKind::Leaf,
                        NOW - DAY,
                        NOW + 300 * DAY,
                    ),
                ],
                ..Default::default()
            },
            want: &[CaFromTheFuture],
        },
        Case {
            name: "no CA in the tree, every leaf not yet valid",
            tool: NOW,
            daemon: Some(NOW),
            inv: Inventory {
                certificates: vec![cert(
                    "client-admin.crt",
                    CertKind::Leaf,
                    NOW + DAY,
                    NOW + 366 * DAY,
                )],
                ..Default::default()
            },
            want: &[NothingValidYet],
        },
        Case {
            name: "one user leaf not yet valid is not a clock problem",
            tool: NOW,
            daemon: Some(NOW),
            inv: {
                let mut i = tree(NOW - DAY);
                i.certificates.push(cert(
                    "python-api.crt",
                    CertKind::Leaf,
                    NOW + 10 * DAY,
                    NOW + 20 * DAY,
                ));
                i
            },
            want: &[],
        },
        Case {
            // Documented limit: the whole host jumped two years ahead. Tool and daemon
            // agree, the tree just looks old (expired leaves), nothing here can tell.
            name: "a clock that jumped ahead is not detectable",
            tool: NOW + 730 * DAY,
            daemon: Some(NOW + 730 * DAY),
            inv: tree(NOW - 30 * DAY),
            want: &[],
        },
    ];
    for c in cases {
        let got = check_clock(c.tool, c.daemon, &c.inv, TOL);
        let kinds = got
            .as_ref()
            .err()
            .map(|s| s.kinds.clone())
            .unwrap_or_default();
        assert_eq!(kinds, c.want, "{}: {got:?}", c.name);
    }
}

#[test]
fn reason_names_the_clocks_and_offsets() {
    let skew = check_clock(5, Some(NOW), &tree(NOW - 30 * DAY), TOL).unwrap_err();
    assert!(
        skew.reason.starts_with(
            "clock skew: the tool's clock reads 1970-01-01T00:00:05Z, Docker's reads 2026-12-01T00:00:00Z (the tool is 56 years behind)"
        ),
        "{}",
        skew.reason
    );
    assert!(skew.reason.contains("before 2026-11-26T00:00:00Z"));
    assert!(skew.reason.contains("CA server-ca.crt is valid only from"));
    assert!(skew
        .reason
        .ends_with("fix the host's time (NTP, RTC battery) and run again"));
    assert!(skew.refusal().ends_with("; nothing was changed"));
    assert_eq!(skew.tool_minus_daemon_secs, Some(5 - NOW));
    assert_eq!(skew.ca_path.as_deref(), Some("server-ca.crt"));

    let skew = check_clock(NOW, Some(NOW), &tree(NOW + 30 * DAY), TOL).unwrap_err();
    assert_eq!(skew.ca_ahead_secs, Some(30 * DAY));
    assert!(
        skew.reason.contains("30 days after the tool's clock"),
        "{}",
        skew.reason
    );
    let json = serde_json::to_value(&skew).unwrap();
    assert_eq!(json["kinds"][0], "ca_from_the_future");
    assert_eq!(json["tool_now"], "2026-12-01T00:00:00Z");
}

#[test]
fn extreme_values_do_not_overflow() {
    let inv = tree(i64::MAX / 2);
    assert!(check_clock(i64::MIN, Some(i64::MAX), &inv, i64::MAX).is_err());
    assert!(check_clock(i64::MAX, Some(i64::MIN), &inv, -1).is_err());
}
