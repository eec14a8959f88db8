//! The loop's reactions to Docker events and API requests.

use tokio::time::Instant;

use super::jobs::JobKind;
use super::{ApiCommand, ApiReply, Controller, Runner};
use crate::watch::schedule::Gate;
use crate::watch::targets::Trigger;

impl<R: Runner> Controller<R> {
    /// The target an event is about: by id first (a `--container` given as an id), then by name.
    pub(super) fn key_for(&self, name: &str, id: &str) -> String {
        self.targets
            .values()
            .find(|t| !id.is_empty() && t.status.id.as_deref() == Some(id))
            .map(|t| t.name.clone())
            .unwrap_or_else(|| name.to_string())
    }

    pub(super) fn on_trigger(&mut self, t: Trigger) {
        let now = Instant::now();
        match t {
            Trigger::Resync => {
                self.shared.set_docker_up(true);
                self.next_discovery = now;
                for t in self.targets.values_mut() {
                    t.look_by(now, "the events stream reconnected");
                }
            }
            Trigger::StreamDown(why) => {
                self.shared.set_docker_up(false);
                tracing::debug!(%why, "events stream down");
            }
            Trigger::Changed { name, id, action } => {
                if name.is_empty() {
                    return;
                }
                let key = self.key_for(&name, &id);
                let (spacing, debounce) = (self.cfg.min_event_spacing, self.cfg.debounce);
                let busy = self.jobs.target_busy(&key).is_some();
                let t = self.ensure_target(&key, false);
                if busy {
                    t.recheck = true;
                    return;
                }
                let earliest = t.last_look.map(|l| l + spacing).unwrap_or(now);
                tracing::info!(container = %key, event = %action, "container event; looking at it");
                t.look_by(
                    (now + debounce).max(earliest),
                    format!("container event: {action}"),
                );
            }
            Trigger::Gone { name, id } => {
                let key = self.key_for(&name, &id);
                self.forget(&key, "the container was removed");
            }
        }
    }

    /// The container is gone: a pinned target stays (missing), any other is dropped.
    pub(super) fn forget(&mut self, key: &str, why: &str) {
        let busy = self.jobs.target_busy(key).is_some();
        let interval = self.cfg.interval;
        let Some(t) = self.targets.get_mut(key) else {
            return;
        };
        if busy {
            t.recheck = true;
            return;
        }
        if t.pinned {
            tracing::warn!(container = %key, "{why}; waiting for it to come back");
            t.status.up = false;
            t.status.state = Some("missing".into());
            t.status.inventory = None;
            t.status.reasons.clear();
            t.status.next_action = None;
            t.look_at(Instant::now() + interval, "safety interval");
        } else {
            tracing::info!(container = %key, "{why}; no longer a target");
            self.targets.remove(key);
        }
    }

    pub(super) fn on_command(&mut self, c: ApiCommand) {
        let ApiCommand::Repair {
            container,
            force,
            reply,
        } = c;
        let busy = self.jobs.target_busy(&container);
        let answer = match self.targets.get_mut(&container) {
            None => ApiReply::NotFound,
            Some(_) if self.cfg.policy.monitor_only => ApiReply::MonitorOnly,
            Some(_) if busy == Some(JobKind::Repair) => ApiReply::Busy,
            Some(t) => match t.gate.verdict(Instant::now()) {
                Gate::Tripped { remaining, .. } => ApiReply::Tripped(remaining),
                _ if busy.is_some() => ApiReply::Busy,
                _ => ApiReply::Accepted,
            },
        };
        if answer == ApiReply::Accepted {
            tracing::info!(container = %container, force, "repair requested through the API");
            self.spawn_repair(&container, force, "api");
        } else {
            tracing::info!(container = %container, answer = ?answer, "repair request through the API not accepted");
        }
        let _ = reply.send(answer);
    }
}
