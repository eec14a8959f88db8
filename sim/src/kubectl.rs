//! A tiny `kubectl` stand-in: `get` / `delete` of the secret
//! `kube-system/k3s-serving`, backed by the simulated datastore file.
//!
//! It answers only while the simulated API is up (`/var/run/k3s-api.up`).
//! Deleting the secret does not make the running k3s re-create it (real k3s
//! would); that happens at the next start.

use crate::fsutil;
use crate::paths::{p, API_UP, SERVING_SECRET};

/// Parsed command line.
#[derive(Debug, Default, PartialEq)]
struct Cmd {
    positional: Vec<String>,
    namespace: Option<String>,
    output: Option<String>,
}

fn parse(args: &[String]) -> Result<Cmd, String> {
    let mut cmd = Cmd::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("error: flag needs an argument: {name}"))
        };
        match a.as_str() {
            "-n" | "--namespace" => cmd.namespace = Some(value(a)?),
            "-o" | "--output" => cmd.output = Some(value(a)?),
            // Accepted and ignored: the sim has one cluster and no TLS.
            "--kubeconfig" | "-s" | "--server" | "--request-timeout" => {
                value(a)?;
            }
            _ if a.starts_with("--insecure-skip-tls-verify") => {}
            _ if a.starts_with("--namespace=") => cmd.namespace = Some(a[12..].into()),
            _ if a.starts_with("--output=") => cmd.output = Some(a[9..].into()),
            _ if a.starts_with("-o=") => cmd.output = Some(a[3..].into()),
            _ if a.starts_with("-o") && a.len() > 2 => cmd.output = Some(a[2..].into()),
            _ if a.starts_with("-n") && a.len() > 2 => cmd.namespace = Some(a[2..].into()),
            _ if a.starts_with("--kubeconfig=")
                || a.starts_with("--server=")
                || a.starts_with("--request-timeout=") => {}
            _ if a.starts_with('-') && a.len() > 1 => {
                return Err(format!("error: unknown flag: {a}"));
            }
            _ => cmd.positional.push(a.clone()),
        }
    }
    Ok(cmd)
}

/// Runs `kubectl ARGS...`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let cmd = match parse(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let pos: Vec<&str> = cmd.positional.iter().map(String::as_str).collect();
    let (verb, rest) = match pos.split_first() {
        Some((v, r)) => (*v, r),
        None => {
            eprintln!("kubectl (rancher-cert-guard sim): supports only 'get|delete secret k3s-serving -n kube-system'");
            return 1;
        }
    };
    if verb == "version" {
        println!("Client Version: v1.18.8+k3s1 (sim)");
        return 0;
    }
    if verb != "get" && verb != "delete" {
        eprintln!(
            "error: unknown command \"{verb}\" for \"kubectl\" (sim supports get and delete)"
        );
        return 1;
    }
    // `secret NAME` or `secret/NAME`.
    let (resource, name) = match rest {
        [r] if r.contains('/') => {
            let (r, n) = r.split_once('/').unwrap_or((r, ""));
            (r, n)
        }
        [r, n] => (*r, *n),
        _ => {
            eprintln!("error: the sim expects exactly one resource type and name");
            return 1;
        }
    };
    if resource != "secret" && resource != "secrets" {
        eprintln!("error: the server doesn't have a resource type \"{resource}\" (sim knows only secrets)");
        return 1;
    }
    if let Some(o) = cmd.output.as_deref() {
        if o != "json" {
            eprintln!("error: output format \"{o}\" not supported by the sim (use -o json)");
            return 1;
        }
    }

    if !p(API_UP).exists() {
        eprintln!("The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?");
        return 1;
    }
    let namespace = cmd.namespace.as_deref().unwrap_or("default");
    let store = p(SERVING_SECRET);
    let found = namespace == "kube-system" && name == "k3s-serving" && store.exists();
    if !found {
        eprintln!("Error from server (NotFound): secrets \"{name}\" not found");
        return 1;
    }
    match verb {
        "delete" => match fsutil::remove(&store) {
            Ok(()) => {
                println!("secret \"{name}\" deleted");
                0
            }
            Err(e) => {
                eprintln!("Error from server: {e}");
                1
            }
        },
        _ => {
            let text = fsutil::read_string(&store).unwrap_or_default();
            print_secret(&text);
            0
        }
    }
}

/// Prints the secret like `kubectl get -o json` (indented, with kind and
/// apiVersion); falls back to the raw text if it does not parse.
fn print_secret(text: &str) {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.insert("apiVersion".into(), "v1".into());
            m.insert("kind".into(), "Secret".into());
            let v = serde_json::Value::Object(m);
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        _ => print!("{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_in_any_order() {
        let want = Cmd {
            positional: s(&["delete", "secret", "k3s-serving"]),
            namespace: Some("kube-system".into()),
            output: None,
        };
        for args in [
            &[
                "--insecure-skip-tls-verify",
                "delete",
                "secret",
                "-n",
                "kube-system",
                "k3s-serving",
            ][..],
            &["delete", "secret", "k3s-serving", "--namespace=kube-system"],
            &[
                "-n",
                "kube-system",
                "delete",
                "secret",
                "k3s-serving",
                "--insecure-skip-tls-verify=true",
            ],
            &[
                "delete",
                "--namespace",
                "kube-system",
                "secret",
                "k3s-serving",
            ],
        ] {
            assert_eq!(parse(&s(args)).unwrap(), want, "{args:?}");
        }
        let c = parse(&s(&[
            "get",
            "secrets",
            "k3s-serving",
            "-ojson",
            "-nkube-system",
        ]))
        .unwrap();
        assert_eq!(c.output.as_deref(), Some("json"));
        assert_eq!(c.namespace.as_deref(), Some("kube-system"));
        assert!(parse(&s(&["get", "-n"])).is_err());
        assert!(parse(&s(&["get", "--bogus"])).is_err());
    }
}
