//! The one interface every secrets manager access goes through on its way to the audit
//! log, with GitLab's event names. Values never enter an event.
//!
//! Invariant: a value is returned (to a person or a job) only after its read was recorded;
//! a change is recorded once it is made. A sink that fails makes the read fail (closed).

use serde::Serialize;

use crate::directory::Node;
use crate::Result;

/// Who acted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuditActor {
    User {
        id: u64,
    },
    /// The root token.
    Root,
    /// A pipeline job, by its claims.
    Job {
        project_path: String,
        #[serde(rename = "ref")]
        git_ref: String,
    },
}

/// One event. `name` is GitLab's (`secrets_manager_read_project_secret`, …).
#[derive(Clone, Debug, Serialize)]
pub struct AuditEvent {
    pub name: String,
    pub actor: AuditActor,
    /// The project's or group's full path.
    pub target: String,
    /// The secret's name, when one is concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// More about the event (a version, a principal, the actions granted), never a value.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// Where events go. The audit issue brings durable devices; this crate needs only this.
pub trait AuditSink: Send + Sync {
    fn record(&self, event: &AuditEvent) -> Result<()>;
}

/// Events to the server's log (target `audit`), one JSON object each.
pub struct LogSink;

impl AuditSink for LogSink {
    fn record(&self, event: &AuditEvent) -> Result<()> {
        // Built only when the log keeps it.
        if tracing::enabled!(target: "audit", tracing::Level::INFO) {
            let line = serde_json::to_string(event).unwrap_or_default();
            tracing::info!(target: "audit", "{line}");
        }
        Ok(())
    }
}

/// The event name for `verb` (`read`, `create`, `update`, `delete`, …) on an owner's
/// secret: `secrets_manager_<verb>_project_secret` or `…_group_secret`.
pub fn secret_event(verb: &str, owner: Node) -> String {
    format!("secrets_manager_{verb}_{}_secret", kind(owner))
}

/// `secrets_manager_<verb>_project_…` for the manager itself and its permissions.
pub fn manager_event(verb: &str, owner: Node, what: &str) -> String {
    format!("secrets_manager_{verb}_{}_{what}", kind(owner))
}

fn kind(owner: Node) -> &'static str {
    match owner {
        Node::Project(_) => "project",
        Node::Group(_) => "group",
    }
}
