//! The service lifecycle as an explicit state machine: what an instance does, what the
//! reconciler does next, and what `status.deployment` says meanwhile.
//!
//! Pure functions, so every transition is tested without sandboxes.

use flankbox_protocol::service::{ContainerStatus, DeploymentStatus, RolloutReason, RolloutStatus};

/// Where a service's one instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Being booted.
    Starting,
    /// Running; exec works.
    Running,
    /// Being stopped.
    Stopping,
    /// Failed to boot, or crashed; will be retried with backoff while wanted.
    Failed,
    /// Its main process exited; will be restarted with backoff while wanted.
    Finished,
}

impl Phase {
    /// Whether exec may be attempted.
    pub fn can_exec(self) -> bool {
        self == Self::Running
    }

    /// Whether the instance holds a sandbox that must be stopped.
    pub fn holds_sandbox(self) -> bool {
        matches!(self, Self::Starting | Self::Running)
    }

    /// The container status `GET /containers` reports.
    pub fn container_status(self) -> ContainerStatus {
        match self {
            Self::Starting => ContainerStatus::TaskStarting,
            Self::Running => ContainerStatus::TaskRunning,
            Self::Stopping => ContainerStatus::TaskKilling,
            Self::Failed => ContainerStatus::TaskFailed,
            Self::Finished => ContainerStatus::TaskFinished,
        }
    }
}

/// Whether a service wants its instance running.
pub fn wants_running(instances: u32, paused: bool) -> bool {
    instances > 0 && !paused
}

/// What the reconciler does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start a fresh instance.
    Boot,
    /// Stop the instance.
    Stop,
    /// Stop, then start a fresh one.
    Restart,
    /// Nothing left to do.
    Settle,
}

/// The next step from the wanted state, the instance's phase and a pending restart.
pub fn decide(wants_running: bool, phase: Option<Phase>, restart: bool) -> Action {
    match (wants_running, phase) {
        (false, Some(p)) if p.holds_sandbox() => Action::Stop,
        (false, _) => Action::Settle,
        (true, None) => Action::Boot,
        (true, Some(Phase::Failed | Phase::Finished)) => Action::Boot,
        (true, Some(Phase::Running)) if restart => Action::Restart,
        (true, Some(_)) => Action::Settle,
    }
}

/// `status.deployment` when a change is accepted: the rollout starts over.
pub fn accepted(reason: RolloutReason, now: &str) -> DeploymentStatus {
    DeploymentStatus {
        status: RolloutStatus::Pending,
        reason,
        last_transition_time: Some(now.into()),
    }
}

/// `status.deployment` once the reconciler picks the change up.
pub fn started(current: &DeploymentStatus, now: &str) -> DeploymentStatus {
    transition(current, RolloutStatus::InProgress, now)
}

/// `status.deployment` once the instance matches what is wanted.
pub fn completed(current: &DeploymentStatus, now: &str) -> DeploymentStatus {
    transition(current, RolloutStatus::Completed, now)
}

/// `status.deployment` when the instance cannot be booted.
pub fn failed(current: &DeploymentStatus, now: &str) -> DeploymentStatus {
    transition(current, RolloutStatus::Failed, now)
}

fn transition(current: &DeploymentStatus, status: RolloutStatus, now: &str) -> DeploymentStatus {
    if current.status == status {
        return current.clone();
    }
    DeploymentStatus {
        status,
        reason: current.reason,
        last_transition_time: Some(now.into()),
    }
}

/// Crash-loop backoff: 1 s, 2 s, 4 s … at most 30 s.
pub fn backoff(restarts: u32) -> std::time::Duration {
    std::time::Duration::from_secs(1u64 << restarts.min(5)).min(std::time::Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boots_when_wanted_and_absent_or_ended() {
        assert_eq!(decide(true, None, false), Action::Boot);
        assert_eq!(decide(true, Some(Phase::Failed), false), Action::Boot);
        assert_eq!(decide(true, Some(Phase::Finished), false), Action::Boot);
        assert_eq!(decide(true, Some(Phase::Running), false), Action::Settle);
    }

    #[test]
    fn stops_only_what_holds_a_sandbox() {
        assert_eq!(decide(false, Some(Phase::Running), false), Action::Stop);
        assert_eq!(decide(false, Some(Phase::Starting), false), Action::Stop);
        assert_eq!(decide(false, Some(Phase::Failed), false), Action::Settle);
        assert_eq!(decide(false, None, true), Action::Settle);
    }

    #[test]
    fn restarts_a_running_instance_on_request() {
        assert_eq!(decide(true, Some(Phase::Running), true), Action::Restart);
        assert_eq!(decide(true, None, true), Action::Boot);
    }

    #[test]
    fn pause_and_scale_zero_mean_stopped() {
        assert!(!wants_running(1, true));
        assert!(!wants_running(0, false));
        assert!(wants_running(1, false));
    }

    #[test]
    fn rollout_goes_pending_in_progress_completed() {
        let s = accepted(RolloutReason::Deploying, "t0");
        assert_eq!((s.status, s.reason), (RolloutStatus::Pending, RolloutReason::Deploying));
        let s = started(&s, "t1");
        assert_eq!(s.status, RolloutStatus::InProgress);
        assert_eq!(s.last_transition_time.as_deref(), Some("t1"));
        let s = completed(&s, "t2");
        assert_eq!(
            (s.status, s.reason),
            (RolloutStatus::Completed, RolloutReason::Deploying)
        );
        assert_eq!(
            completed(&s, "t3").last_transition_time.as_deref(),
            Some("t2"),
            "no transition, no new time"
        );
        assert_eq!(failed(&s, "t4").status, RolloutStatus::Failed);
    }

    #[test]
    fn only_running_instances_take_exec() {
        for p in [Phase::Starting, Phase::Stopping, Phase::Failed, Phase::Finished] {
            assert!(!p.can_exec(), "{p:?}");
        }
        assert!(Phase::Running.can_exec());
        assert_eq!(Phase::Running.container_status(), ContainerStatus::TaskRunning);
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        assert_eq!(backoff(0).as_secs(), 1);
        assert_eq!(backoff(3).as_secs(), 8);
        assert_eq!(backoff(10).as_secs(), 30);
    }
}
