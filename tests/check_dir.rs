//! Black-box tests of `check --dir`: table, JSON, every exit code, agreement with openssl.

mod common;

use common::fixtures::*;
use common::*;
use serde_json::Value;

fn tree(leaf_days: i64) -> (tempfile::TempDir, Expected) {
    let dir = tempfile::tempdir().unwrap();
    let exp = write_k3s_tree(dir.path(), &TreeSpec::days_left(now(), leaf_days));
    (dir, exp)
}

fn check_json(dir: &std::path::Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["check", "--dir", dir.to_str().unwrap(), "--output", "json"];
    args.extend_from_slice(extra);
    let o = run_bin(&args);
    let v: Value =
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
    (o.status.code().unwrap(), v)
}

#[test]
fn fresh_tree_is_ok_and_reports_every_certificate() {
    let (dir, exp) = tree(365);
    let (code, v) = check_json(dir.path(), &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["status"], "ok");
    assert_eq!(v["renew_before_days"], 90);
    let certs = v["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), exp.certs.len());
    for (path, index, not_after) in &exp.certs {
        let c = certs
            .iter()
            .find(|c| c["path"] == path.as_str() && c["index"] == *index)
            .unwrap_or_else(|| panic!("{path}[{index}] missing"));
        let got = time::OffsetDateTime::parse(
            c["not_after"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp();
        assert_eq!(got, *not_after, "{path}[{index}]");
    }
    // Kinds: CA files, leaves, chain blocks, the serving cert.
    let kind = |p: &str, i: u64| {
        certs
            .iter()
            .find(|c| c["path"] == p && c["index"] == i)
            .unwrap()["kind"]
            .clone()
    };
    assert_eq!(kind("server-ca.crt", 0), "ca");
    assert_eq!(kind("etcd/peer-ca.crt", 0), "ca");
    assert_eq!(kind("client-admin.crt", 0), "leaf");
    assert_eq!(kind("client-admin.crt", 1), "chain");
    assert_eq!(kind("dynamic-cert.json", 0), "serving");
    let admin = certs
        .iter()
        .find(|c| c["path"] == "client-admin.crt" && c["index"] == 0)
        .unwrap();
    assert_eq!(admin["subject"], "CN=system:admin,O=system:masters");
    assert!(admin["issuer"]
        .as_str()
        .unwrap()
        .starts_with("CN=k3s-client-ca@"));
    assert_eq!(admin["is_ca"], false);
    let ca = certs.iter().find(|c| c["path"] == "client-ca.crt").unwrap();
    assert_eq!(ca["serial"], "0");
    assert_eq!(ca["is_ca"], true);
    // Keys are named, in order; temporary-certs/ is skipped.
    let keys: Vec<String> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, exp.key_files);
    assert!(
        v["problems"].as_array().unwrap().is_empty(),
        "{}",
        v["problems"]
    );
    assert!(!stdout_has_key_material(&v.to_string(), dir.path()));
}

fn stdout_has_key_material(out: &str, dir: &std::path::Path) -> bool {
    if out.contains("PRIVATE KEY") {
        return true;
    }
    // No line of any key file's base64 body appears in the output.
    for e in walk(dir) {
        if e.extension().map(|x| x == "key").unwrap_or(false) {
            let text = std::fs::read_to_string(&e).unwrap();
            for line in text
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 20)
            {
                if out.contains(line) {
                    return true;
                }
            }
        }
    }
    false
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}

#[test]
fn exit_codes_follow_the_nagios_convention() {
    let (ok, _) = tree(200);
    let (warn, _) = tree(20);
    let (expired, _) = tree(-5);
    assert_eq!(check_json(ok.path(), &[]).0, 0);
    let (code, v) = check_json(warn.path(), &[]);
    assert_eq!((code, v["status"].as_str().unwrap()), (1, "warning"));
    // The window is configurable: 20 days left is fine with a 10-day window.
    assert_eq!(check_json(warn.path(), &["--renew-before", "10"]).0, 0);
    let (code, v) = check_json(expired.path(), &[]);
    assert_eq!((code, v["status"].as_str().unwrap()), (2, "expired"));
    // Chain blocks never decide: every leaf file's CA block is ok, the leaf decides.
    let chain_ok = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "chain")
        .all(|c| c["status"] == "ok");
    assert!(chain_ok);

    // Not yet valid: a leaf whose notBefore lies ahead (its CA is fine) is critical.
    let nyv = tempfile::tempdir().unwrap();
    let c = ca("k3s-client-ca@1", now() - DAY);
    let l = common::fixtures::leaf(
        &c,
        "system:admin",
        None,
        now() + 10 * DAY,
        now() + 300 * DAY,
        false,
    );
    std::fs::write(nyv.path().join("client-ca.crt"), &c.pem).unwrap();
    std::fs::write(
        nyv.path().join("client-admin.crt"),
        format!("{}{}", l.pem, c.pem),
    )
    .unwrap();
    let (code, v) = check_json(nyv.path(), &[]);
    assert_eq!((code, v["status"].as_str().unwrap()), (2, "not_yet_valid"));
    assert!(v["clock"].is_null(), "{}", v["clock"]);
    // A CA minted ten days from now: the clock is what is wrong, every verdict is in doubt —
    // unknown (3), and the report says why (k3s-io/k3s#6152: certificates "not yet valid"
    // after the clock was reset).
    let skew = tempfile::tempdir().unwrap();
    let c = ca("k3s-client-ca@1", now() + 10 * DAY);
    std::fs::write(skew.path().join("client-ca.crt"), &c.pem).unwrap();
    let (code, v) = check_json(skew.path(), &[]);
    assert_eq!((code, v["status"].as_str().unwrap()), (3, "not_yet_valid"));
    assert!(
        v["clock"]["reason"].as_str().unwrap().contains("clock"),
        "{}",
        v["clock"]
    );

    // A problem file alone is a warning.
    let (dir, _) = tree(365);
    std::fs::write(dir.path().join("garbage.crt"), b"hello world").unwrap();
    let (code, v) = check_json(dir.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(v["problems"][0]["path"], "garbage.crt");
    assert_eq!(v["problems"][0]["reason"], "bad_pem");

    // Unreadable source: 3, with the JSON still printed.
    let o = run_bin(&["check", "--dir", "/nonexistent/tls", "-o", "json"]);
    assert_eq!(o.status.code(), Some(3));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["status"], "unknown");
    assert!(stderr(&o).contains("/nonexistent/tls"), "{}", stderr(&o));
}

#[test]
fn table_lists_leaves_first_soonest_first_then_problems() {
    let dir = tempfile::tempdir().unwrap();
    let n = now();
    let c = ca("k3s-client-ca@1700000000", n - 100 * DAY);
    let soon = leaf(
        &c,
        "system:admin",
        Some("system:masters"),
        c.not_before,
        n + 10 * DAY,
        false,
    );
    let later = leaf(
        &c,
        "system:kube-proxy",
        None,
        c.not_before,
        n + 200 * DAY,
        false,
    );
    std::fs::write(dir.path().join("client-ca.crt"), &c.pem).unwrap();
    std::fs::write(
        dir.path().join("client-kube-proxy.crt"),
        format!("{}{}", later.pem, c.pem),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("client-admin.crt"),
        format!("{}{}", soon.pem, c.pem),
    )
    .unwrap();
    std::fs::write(dir.path().join("zz.crt"), b"").unwrap();
    let o = run_bin(&["check", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1].starts_with("FILENAME"), "{out}");
    for col in ["SUBJECT", "ISSUER", "EXPIRES", "RESIDUAL TIME", "STATUS"] {
        assert!(lines[1].contains(col), "{out}");
    }
    assert!(
        lines[2].starts_with("client-admin.crt ") && lines[2].ends_with("WARNING"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("client-kube-proxy.crt ") && lines[3].ends_with("OK"),
        "{out}"
    );
    assert!(lines[4].starts_with("client-ca.crt "), "{out}");
    assert!(out.contains("CN=system:admin,O=system:masters"));
    let problems_at = lines
        .iter()
        .position(|l| *l == "PROBLEMS")
        .expect("PROBLEMS section");
    assert!(lines[problems_at + 1].contains("zz.crt") && lines[problems_at + 1].contains("empty"));
}

/// `check` agrees to the second with `openssl x509 -enddate` on every block of every file.
#[test]
fn agrees_with_openssl_enddate() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openssl missing under CI"
        );
        eprintln!("SKIPPED: openssl not installed");
        return;
    }
    let (dir, _) = tree(123);
    // Add a DER file and a CRLF file.
    let c = ca("k3s-server-ca@1", now() - DAY);
    std::fs::write(dir.path().join("der.crt"), &c.der).unwrap();
    std::fs::write(dir.path().join("crlf.crt"), c.pem.replace('\n', "\r\n")).unwrap();
    let (_, v) = check_json(dir.path(), &[]);
    let mut compared = 0;
    for cert in v["certificates"].as_array().unwrap() {
        let path = cert["path"].as_str().unwrap();
        if path == "dynamic-cert.json" {
            continue;
        }
        let index = cert["index"].as_u64().unwrap() as usize;
        let bytes = std::fs::read(dir.path().join(path)).unwrap();
        let (form, input) = if path == "der.crt" {
            ("DER", bytes)
        } else {
            let text = String::from_utf8(bytes).unwrap().replace("\r\n", "\n");
            let block = text
                .split_inclusive("-----END CERTIFICATE-----\n")
                .nth(index)
                .unwrap()
                .to_string();
            ("PEM", block.into_bytes())
        };
        let tmp = dir.path().join("one.tmp");
        std::fs::write(&tmp, input).unwrap();
        let o = std::process::Command::new("openssl")
            .args([
                "x509",
                "-enddate",
                "-noout",
                "-inform",
                form,
                "-in",
                tmp.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&o.stdout);
        let date = line.trim().strip_prefix("notAfter=").unwrap().to_string();
        let fmt = time::macros::format_description!(
            "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
        );
        let openssl_ts = time::PrimitiveDateTime::parse(&date, &fmt)
            .unwrap_or_else(|e| panic!("{e}: {date}"))
            .assume_utc()
            .unix_timestamp();
        let ours = time::OffsetDateTime::parse(
            cert["not_after"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp();
        assert_eq!(ours, openssl_ts, "{path}[{index}]");
        compared += 1;
    }
    assert!(compared > 30, "compared only {compared}");
}

#[test]
fn both_dynamic_cert_json_shapes_are_read() {
    for shape in [ServingShape::Local, ServingShape::Synced] {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = TreeSpec::days_left(now(), 300);
        spec.shape = shape;
        spec.serving_not_after = now() - DAY;
        write_k3s_tree(dir.path(), &spec);
        let (code, v) = check_json(dir.path(), &[]);
        assert_eq!(code, 2, "{shape:?}: the serving cert alone expired");
        let serving: Vec<&Value> = v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["path"] == "dynamic-cert.json")
            .collect();
        assert_eq!(serving[0]["kind"], "serving");
        assert_eq!(serving[0]["subject"], "CN=k3s,O=k3s");
        assert_eq!(serving[0]["status"], "expired");
        assert_eq!(
            serving.len(),
            if shape == ServingShape::Synced { 2 } else { 1 }
        );
        assert!(!v.to_string().contains("tls.key"));
    }
}

/// Logs redirected to a file (or collected by Docker) carry no ANSI colour codes.
#[test]
fn logs_are_plain_text_when_stderr_is_not_a_terminal() {
    let (dir, _) = tree(365);
    let o = run_bin(&["repair", "--dir", dir.path().to_str().unwrap()]);
    let err = stderr(&o);
    assert!(err.contains("repair finished"), "{err}");
    assert!(!err.contains('\u{1b}'), "ANSI escape in {err:?}");
}
