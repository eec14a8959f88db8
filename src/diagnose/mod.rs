//! Diagnosis: the pure judgement of what a container's logs and clocks say, before anything is
//! changed. No I/O and no clock — the caller passes the log text, `now` and the inventory.
//!
//! * [`logs`] sorts every log line into three answers: the embedded K3s's own certificates
//!   failed ([`logs::LineClass::LocalK3s`], the only reason to wipe K3s), Rancher's own
//!   certificates failed ([`logs::LineClass::RancherOwn`], recorded and reported, never a reason
//!   to wipe K3s), or something else entirely ([`logs::LineClass::Unrelated`]: downstream
//!   clusters, agents, catalogs, repositories, auth providers, registries, browsers, boot noise).
//! * [`clock`] is the clock sanity gate: it refuses to act when the tool's clock, the Docker
//!   daemon's clock and the certificates disagree, because every "expired" or "not yet valid"
//!   verdict — and every certificate K3s would mint — depends on the clock being right.
//! * [`logfile`] picks, from the end of K3s's own log file (Rancher ≥ v2.5.10), the lines
//!   written since the container's last start.

pub mod clock;
pub mod logfile;
pub mod logs;
