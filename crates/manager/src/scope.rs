//! Which pipeline jobs a secret is released to.
//!
//! Invariant: [`released`] is the only function that answers "may this job have this
//! secret"; `POST /api/ci/secrets`, the runner flows on `/v1` and anything else that hands
//! a value to a job call it with the secret's stored scope.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strongroom_core::release::JobClaims;

use crate::directory::{Directory, Node};

/// What a secret carries besides its value: the scope and the lifecycle, kept with the
/// secret (in its kv metadata) so every path reads the same data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretMeta {
    /// Glob on the job's `environment`; `*` = any, including none.
    pub environment: String,
    /// Project secrets: glob on the job's branch (`ref` when `ref_type` is `branch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Group secrets: released only to pipelines on protected refs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<bool>,
    #[serde(default)]
    pub description: String,
    /// Unix seconds after which the secret is not released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_interval_days: Option<u32>,
    /// Unix seconds of the last value change (rotation is counted from it).
    #[serde(default)]
    pub value_changed_at: i64,
    #[serde(default)]
    pub created_at: i64,
}

/// The claims of a job's CI ID token that decide what it gets (GitLab's names; values are
/// strings as GitLab sends them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Job {
    pub project_path: String,
    pub project_id: String,
    pub git_ref: String,
    /// `branch` or `tag`.
    pub ref_type: String,
    /// `"true"` on a protected ref.
    pub ref_protected: String,
    /// Empty when the job has no environment.
    pub environment: String,
}

/// Is the secret with the stored `scope` (its kv custom metadata), owned by `owner` (a
/// project or a group), released to `job`, whose project is `job_project`, at `now`?
/// Ownership is decided here, from the directory; the scope itself by
/// [`strongroom_core::release::released`], the function the kv engine calls on `/v1`.
/// Callers have already checked that the owner's secrets manager is active.
pub fn released(
    dir: &Directory,
    owner: Node,
    scope: &BTreeMap<String, String>,
    job: &Job,
    job_project: u64,
    now: i64,
) -> bool {
    let owned = match owner {
        Node::Project(id) => id == job_project,
        Node::Group(gid) => dir.is_within(Node::Project(job_project), gid),
    };
    let claims = JobClaims {
        environment: &job.environment,
        git_ref: &job.git_ref,
        ref_type: &job.ref_type,
        ref_protected: &job.ref_protected,
    };
    owned && strongroom_core::release::released(scope, &claims, now)
}

/// The project a job belongs to: the one at its `project_path`, and when the project pins
/// GitLab's `project_id`, only if the job carries the same one.
pub fn job_project(dir: &Directory, job: &Job) -> Option<u64> {
    let p = dir.project_by_path(&job.project_path)?;
    match &p.ci_project_id {
        Some(id) if *id != job.project_id => None,
        _ => Some(p.id),
    }
}

/// `SecretRotationStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationStatus {
    Ok,
    /// Within 7 days of the reminder.
    Approaching,
    Overdue,
}

/// A secret's rotation state: due `rotation_interval_days` after its value last changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationInfo {
    pub interval_days: u32,
    pub next_reminder_at: i64,
    pub status: RotationStatus,
}

pub fn rotation(meta: &SecretMeta, now: i64) -> Option<RotationInfo> {
    let days = meta.rotation_interval_days?;
    let next = meta.value_changed_at + i64::from(days) * 86_400;
    let status = if now >= next {
        RotationStatus::Overdue
    } else if now >= next - 7 * 86_400 {
        RotationStatus::Approaching
    } else {
        RotationStatus::Ok
    };
    Some(RotationInfo {
        interval_days: days,
        next_reminder_at: next,
        status,
    })
}
