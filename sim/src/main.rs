//! `sim-rancher`: a simulated `rancher/rancher` single-node container for
//! rancher-cert-guard's tests and demo.
//!
//! One static binary installed as `/usr/bin/rancher`, with `/usr/bin/k3s` and
//! `/usr/bin/kubectl` symlinked to it; the behaviour is picked by `argv[0]`:
//!
//! * `rancher` (PID 1, see [`rancher`]): generates and renews the embedded
//!   k3s certificates under `/var/lib/rancher/k3s/server/tls` like k3s does
//!   ([`k3s`]), syncs the :6443 serving cert between `dynamic-cert.json` and
//!   the `kube-system/k3s-serving` secret ([`serving`]), writes
//!   `/etc/rancher/k3s/k3s.yaml` ([`kubeconfig`]) and then either serves
//!   `/ping` on :80 or loops forever with Rancher's x509 errors.
//! * `kubectl` / `k3s kubectl` ([`kubectl`]): get/delete the k3s-serving secret.
//! * `k3s --version`.
//!
//! Behaviour is tuned with `SIM_ERA`, `SIM_LEAF_DAYS`, `SIM_SERVING_DAYS`,
//! `SIM_BOOT_SECONDS`, `SIM_NOISE`, `SIM_CLOCK_SKEW_DAYS`, `SIM_NO_REGEN` and
//! `SIM_K3S_LOG` ([`config`]); see `sim/README.md`.

mod config;
mod fsutil;
mod http;
mod k3s;
mod kubeconfig;
mod kubectl;
mod log;
mod noise;
mod noise_lines;
mod paths;
mod pki;
mod rancher;
mod serving;

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let prog = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("rancher")
        .to_string();
    let rest = args.get(1..).unwrap_or_default();
    let code = match prog.as_str() {
        "kubectl" => kubectl::main(rest),
        "k3s" => k3s_cli(rest),
        // `docker run IMAGE kubectl ...` passes the words to the entrypoint.
        _ => match rest.first().map(String::as_str) {
            Some("kubectl") => kubectl::main(&rest[1..]),
            Some("k3s") => k3s_cli(&rest[1..]),
            _ => rancher::main(rest),
        },
    };
    std::process::exit(code);
}

/// `k3s kubectl ...`, `k3s --version`.
fn k3s_cli(args: &[String]) -> i32 {
    match args.first().map(String::as_str) {
        Some("kubectl") => kubectl::main(&args[1..]),
        Some("--version" | "-v" | "version") => {
            let era = config::Config::era_or_default();
            println!(
                "k3s version {} (rancher-cert-guard sim, era {})",
                era.k3s_version(),
                era.name()
            );
            0
        }
        _ => {
            eprintln!("k3s (rancher-cert-guard sim): supported: k3s kubectl ..., k3s --version");
            1
        }
    }
}
