//! rancher-cert-guard: keeps a Rancher single-node Docker install alive when the certificates
//! of its embedded K3s expire.
//!
//! The pipeline: [`source`] reads a TLS tree → [`inventory`] judges it → [`diagnose`] says
//! whether the logs and the clocks can be believed → [`repair`] plans, backs up, wipes,
//! restarts and verifies through [`docker`] → [`report`] and [`watch`]'s HTTP endpoints and
//! metrics tell people what happened. [`exit`] maps every outcome to an exit code. The binary
//! (`main.rs`) is one thin adapter.

pub mod backoff;
pub mod check;
pub mod cli;
pub mod config;
pub mod diagnose;
pub mod docker;
pub mod error;
pub mod exit;
pub mod inventory;
pub mod probe;
pub mod process;
pub mod repair;
pub mod report;
pub mod shutdown;
pub mod source;
pub mod timefmt;
pub mod token;
pub mod watch;

mod run;
pub use run::run;
