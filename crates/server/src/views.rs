//! Engine state → API bodies.

use liftoff_api as api;
use liftoff_driver::Snapshot;
use liftoff_engine::{Action, StepRef, StepState, StepStatus};

pub fn status(snap: &Snapshot) -> api::LaunchStatus {
    let launch = &snap.launch;
    let plan = launch.plan();
    let view = |step: StepRef| {
        step_view(
            launch.step_name(step),
            kind(launch.action(step)),
            launch.step(step),
        )
    };
    let touched = |s: &StepState| s.status != StepStatus::Pending;
    let mut rollback = Vec::new();
    if launch.rollback_cause().is_some() {
        if plan.router.is_some() {
            rollback.push(view(StepRef::RevertTraffic));
        }
        rollback.extend((0..plan.rollback.steps.len()).map(|i| view(StepRef::Rollback(i))));
    }
    let status = launch.status();
    api::LaunchStatus {
        id: snap.row.id.clone(),
        name: plan.name.clone(),
        service: plan.service.clone(),
        plan_path: snap.row.plan_path.clone(),
        status: status.as_str().into(),
        terminal: status.is_terminal(),
        reason: launch.reason(),
        weight: launch.weight().map(|w| w.percent()),
        created_at: snap.row.created_at.clone(),
        started_at: launch.started_at().map(|t| t.to_string()),
        ended_at: launch.ended_at().map(|t| t.to_string()),
        current_step: launch.in_flight().map(|(s, _)| launch.step_name(s)),
        decision_needed: launch.pending_decision().map(|(_, m)| m.to_string()),
        baseline: touched(launch.baseline_step()).then(|| view(StepRef::Baseline)),
        steps: (0..plan.steps.len())
            .map(|i| view(StepRef::Forward(i)))
            .collect(),
        rollback,
        promote: touched(launch.promote_step()).then(|| view(StepRef::Promote)),
    }
}

fn kind(action: Action<'_>) -> String {
    match action {
        Action::Step(s) => s.kind.keyword().into(),
        Action::SetWeight(_) => "weight".into(),
    }
}

fn step_view(name: String, kind: String, s: &StepState) -> api::StepView {
    let outcome = s.outcome.as_ref();
    api::StepView {
        name,
        kind,
        status: s.status.as_str().into(),
        attempts: s.attempts,
        started_at: s.started_at.map(|t| t.to_string()),
        ended_at: s.ended_at.map(|t| t.to_string()),
        deadline: s.deadline.map(|t| t.to_string()),
        message: outcome.and_then(|o| o.message.clone()),
        output: outcome.and_then(|o| o.output.clone()),
        approval: s.approval.as_ref().map(|a| api::ApprovalView {
            role: a.role.clone(),
            by: a.by.clone(),
            comment: a.comment.clone(),
            at: a.at.to_string(),
        }),
        skipped_reason: s.skipped_reason.clone(),
    }
}
