//! Who may do what with a secrets manager's secrets: GitLab's defaults by access level,
//! plus grants to a user, a role (an exact access level) or a group's members.
//!
//! Invariant: [`decide`] is the only function that answers "may this person do this here";
//! GraphQL and every other path for people call it.

use serde::{Deserialize, Serialize};

use crate::directory::{AccessLevel, Directory, Node};

/// `SecretsManagementAction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    /// Metadata: names, scopes, descriptions, versions, rotation.
    Read,
    /// Values (ours: readable through the API only with this action).
    ReadValue,
    /// Create and update.
    Write,
    Delete,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Read,
        Action::ReadValue,
        Action::Write,
        Action::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Read => "READ",
            Action::ReadValue => "READ_VALUE",
            Action::Write => "WRITE",
            Action::Delete => "DELETE",
        }
    }

    pub fn from_name(n: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == n)
    }
}

/// `PrincipalType` with its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Principal {
    /// A user (who must be a member of at least Reporter for the grant to apply).
    User(u64),
    /// Members whose effective level is exactly this one (GitLab's `users/roles/<level>`).
    Role(AccessLevel),
    /// A group's direct and inherited members.
    Group(u64),
}

/// One grant on a secrets manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub principal: Principal,
    pub actions: Vec<Action>,
    /// Unix seconds after which the grant is void.
    pub expired_at: Option<i64>,
}

impl Grant {
    pub fn live(&self, now: i64) -> bool {
        self.expired_at.is_none_or(|t| now < t)
    }
}

/// What a person asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// List secrets, read a secret's metadata and versions.
    ReadMetadata,
    /// Read a secret's value (current or an old version).
    ReadValue,
    Create,
    Update,
    /// Roll back to an old version (a write).
    Rollback,
    Delete,
    /// List the grants.
    ViewPermissions,
    /// Add, change or remove grants.
    ManagePermissions,
    /// Initialize or deprovision the secrets manager.
    ManageSecretsManager,
}

impl Operation {
    pub const ALL: [Operation; 9] = [
        Operation::ReadMetadata,
        Operation::ReadValue,
        Operation::Create,
        Operation::Update,
        Operation::Rollback,
        Operation::Delete,
        Operation::ViewPermissions,
        Operation::ManagePermissions,
        Operation::ManageSecretsManager,
    ];

    /// The grantable action that allows this operation, if a grant can.
    pub fn action(self) -> Option<Action> {
        match self {
            Operation::ReadMetadata => Some(Action::Read),
            Operation::ReadValue => Some(Action::ReadValue),
            Operation::Create | Operation::Update | Operation::Rollback => Some(Action::Write),
            Operation::Delete => Some(Action::Delete),
            Operation::ViewPermissions
            | Operation::ManagePermissions
            | Operation::ManageSecretsManager => None,
        }
    }
}

/// The actions a level holds by default: Owners read, write, delete; Maintainers read and
/// write; no one reads values by default.
pub fn default_actions(level: AccessLevel) -> &'static [Action] {
    match level {
        AccessLevel::Owner => &[Action::Read, Action::Write, Action::Delete],
        AccessLevel::Maintainer => &[Action::Read, Action::Write],
        _ => &[],
    }
}

/// Who is asking: a user (or the instance's root token, an admin with no user record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    User(u64),
    /// The root token: an instance admin.
    Root,
}

/// The actions `actor` holds on the secrets manager of `node` at `now`, by default and by
/// grant. `READ_VALUE` implies `READ`: a value is never readable without its metadata.
pub fn actions(
    dir: &Directory,
    grants: &[Grant],
    actor: Actor,
    node: Node,
    now: i64,
) -> Vec<Action> {
    let (level, admin) = match actor {
        Actor::Root => (None, true),
        Actor::User(u) => (
            dir.effective_level(u, node),
            dir.user(u).is_some_and(|u| u.admin),
        ),
    };
    let mut out: Vec<Action> = if admin {
        default_actions(AccessLevel::Owner).to_vec()
    } else {
        level.map(default_actions).unwrap_or_default().to_vec()
    };
    if let Actor::User(u) = actor {
        for g in grants.iter().filter(|g| g.live(now)) {
            let applies = match g.principal {
                Principal::User(id) => id == u && level >= Some(AccessLevel::Reporter),
                Principal::Role(l) => level == Some(l),
                Principal::Group(gid) => dir.effective_level(u, Node::Group(gid)).is_some(),
            };
            if applies {
                out.extend(g.actions.iter().copied());
            }
        }
    }
    if out.contains(&Action::ReadValue) {
        out.push(Action::Read);
    }
    out.sort();
    out.dedup();
    out
}

/// May `actor` perform `op` on the secrets manager of `node` at `now`?
pub fn decide(
    dir: &Directory,
    grants: &[Grant],
    actor: Actor,
    node: Node,
    op: Operation,
    now: i64,
) -> bool {
    let level = match actor {
        Actor::Root => Some(AccessLevel::Owner),
        Actor::User(u) if dir.user(u).is_some_and(|u| u.admin) => Some(AccessLevel::Owner),
        Actor::User(u) => dir.effective_level(u, node),
    };
    match op.action() {
        Some(a) => actions(dir, grants, actor, node, now).contains(&a),
        None => match op {
            Operation::ViewPermissions => level >= Some(AccessLevel::Maintainer),
            _ => level == Some(AccessLevel::Owner),
        },
    }
}
