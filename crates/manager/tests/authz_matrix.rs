//! The authorization matrix: every access level (and none) × every grant (principal,
//! action, live or expired) × every operation, decided by `permissions::decide` and
//! compared with a table written here from the product's rules, not from the code:
//!
//! - Owners read metadata, write and delete, view and manage permissions, and initialize
//!   or deprovision the secrets manager; Maintainers read metadata, write and view
//!   permissions; everyone else holds nothing until granted. No one reads values by default.
//! - A grant applies while it is not expired: to a USER who is a member of at least
//!   Reporter; to a ROLE, to members whose effective level is exactly that level; to a
//!   GROUP, to its direct and inherited members. READ_VALUE implies READ.
//! - Instance admins act as Owners.
//!
//! The table is printed (`cargo test -p strongroom-manager --test authz_matrix -- --nocapture`).

use strongroom_manager::directory::{AccessLevel, Directory, Node, User};
use strongroom_manager::permissions::{decide, Action, Actor, Grant, Operation, Principal};

const NOW: i64 = 1_800_000_000;
const ME: u64 = 1;
const OTHER: u64 = 2;
const ADMIN: u64 = 3;
const TOP: u64 = 10;
const SUB: u64 = 11;
const UNRELATED: u64 = 12;
const PROJECT: u64 = 20;

/// `me` is a member of the top group at `level` (inherited by the subgroup and the
/// project), or of nothing.
fn directory(level: Option<AccessLevel>) -> Directory {
    let mut d = Directory::default();
    for (id, name, admin) in [
        (ME, "me", false),
        (OTHER, "other", false),
        (ADMIN, "admin", true),
    ] {
        d.insert_user(User {
            id,
            username: name.into(),
            name: name.into(),
            admin,
        })
        .unwrap();
    }
    let g = d.new_group(TOP, "top", "", None).unwrap();
    d.insert_group(g);
    let g = d.new_group(SUB, "sub", "", Some("top")).unwrap();
    d.insert_group(g);
    let g = d.new_group(UNRELATED, "elsewhere", "", None).unwrap();
    d.insert_group(g);
    let p = d.new_project(PROJECT, "app", "", "top/sub", None).unwrap();
    d.insert_project(p);
    d.set_member(Node::Group(TOP), OTHER, Some(AccessLevel::Owner));
    d.set_member(Node::Group(TOP), ME, level);
    d
}

/// The principals a grant may name, relative to `me` at `level`.
fn principals(level: Option<AccessLevel>) -> Vec<(String, Principal)> {
    let other_level = match level {
        Some(AccessLevel::Developer) => AccessLevel::Reporter,
        _ => AccessLevel::Developer,
    };
    let mut v = vec![
        ("USER me".to_owned(), Principal::User(ME)),
        ("USER other".to_owned(), Principal::User(OTHER)),
        (
            format!("ROLE {}", other_level.value()),
            Principal::Role(other_level),
        ),
        ("GROUP top".to_owned(), Principal::Group(TOP)),
        ("GROUP elsewhere".to_owned(), Principal::Group(UNRELATED)),
    ];
    if let Some(l) = level {
        v.push((format!("ROLE {} (mine)", l.value()), Principal::Role(l)));
    }
    v
}

/// The rules, restated.
fn expected(level: Option<AccessLevel>, admin: bool, grant: Option<&Grant>, op: Operation) -> bool {
    let as_owner = admin || level == Some(AccessLevel::Owner);
    let mut held: Vec<Action> = if as_owner {
        vec![Action::Read, Action::Write, Action::Delete]
    } else if level == Some(AccessLevel::Maintainer) {
        vec![Action::Read, Action::Write]
    } else {
        vec![]
    };
    if let Some(g) = grant {
        let live = g.expired_at.is_none_or(|t| NOW < t);
        let applies = match g.principal {
            Principal::User(u) => u == ME && level.is_some_and(|l| l.value() >= 20),
            Principal::Role(r) => level == Some(r),
            Principal::Group(gid) => gid == TOP && level.is_some(),
        };
        if live && applies && !admin {
            held.extend(&g.actions);
        }
    }
    if held.contains(&Action::ReadValue) {
        held.push(Action::Read);
    }
    match op {
        Operation::ReadMetadata => held.contains(&Action::Read),
        Operation::ReadValue => held.contains(&Action::ReadValue),
        Operation::Create | Operation::Update | Operation::Rollback => {
            held.contains(&Action::Write)
        }
        Operation::Delete => held.contains(&Action::Delete),
        Operation::ViewPermissions => as_owner || level == Some(AccessLevel::Maintainer),
        Operation::ManagePermissions | Operation::ManageSecretsManager => as_owner,
    }
}

fn op_name(op: Operation) -> &'static str {
    match op {
        Operation::ReadMetadata => "read",
        Operation::ReadValue => "value",
        Operation::Create => "create",
        Operation::Update => "update",
        Operation::Rollback => "rollback",
        Operation::Delete => "delete",
        Operation::ViewPermissions => "view-perms",
        Operation::ManagePermissions => "manage-perms",
        Operation::ManageSecretsManager => "manage-sm",
    }
}

#[test]
fn every_level_grant_and_operation_decides_as_the_rules_say() {
    let mut levels: Vec<Option<AccessLevel>> = vec![None];
    levels.extend(AccessLevel::ALL.map(Some));
    let mut cases = 0;
    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for (who, admin) in [("member", false), ("admin", true)] {
        for level in &levels {
            let dir = directory(*level);
            let actor = Actor::User(if admin { ADMIN } else { ME });
            let mut grants: Vec<(String, Option<Grant>)> = vec![("no grant".into(), None)];
            for (pname, principal) in principals(*level) {
                for action in Action::ALL {
                    for (state, expired_at) in [
                        ("live", None),
                        ("live until later", Some(NOW + 60)),
                        ("expired", Some(NOW - 1)),
                    ] {
                        grants.push((
                            format!("{pname} {} {state}", action.name()),
                            Some(Grant {
                                principal,
                                actions: vec![action],
                                expired_at,
                            }),
                        ));
                    }
                }
            }
            for (gname, grant) in &grants {
                let list: Vec<Grant> = grant.iter().cloned().collect();
                let mut allowed = Vec::new();
                for op in Operation::ALL {
                    for node in [Node::Project(PROJECT), Node::Group(SUB)] {
                        let got = decide(&dir, &list, actor, node, op, NOW);
                        let want = expected(*level, admin, grant.as_ref(), op);
                        cases += 1;
                        if got != want {
                            wrong.push(format!(
                                "{who} {level:?} with {gname}: {} on {node:?}: got {got}, want {want}",
                                op_name(op)
                            ));
                        }
                        if got && node == Node::Project(PROJECT) {
                            allowed.push(op_name(op));
                        }
                    }
                }
                let level_name = level.map(|l| l.name()).unwrap_or("NONE");
                table.push(format!(
                    "{who:6} {level_name:10} {gname:42} -> {}",
                    allowed.join(" ")
                ));
            }
        }
    }
    println!("{}", table.join("\n"));
    println!("{cases} cases");
    assert!(
        wrong.is_empty(),
        "{} of {cases} cases differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(cases >= 2000, "only {cases} cases");
    // Root (the root token) acts as an admin.
    let dir = directory(None);
    assert!(decide(
        &dir,
        &[],
        Actor::Root,
        Node::Project(PROJECT),
        Operation::ManageSecretsManager,
        NOW
    ));
    assert!(!decide(
        &dir,
        &[],
        Actor::Root,
        Node::Project(PROJECT),
        Operation::ReadValue,
        NOW
    ));
}
