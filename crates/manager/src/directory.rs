//! The directory: users, groups nested to any depth, projects in a group, and memberships
//! with GitLab's access levels, inherited down the tree.
//!
//! This module is the in-memory model and its rules (names, paths, cycles, effective
//! levels); `store` persists it through the core. Every query here is pure.
//!
//! Invariant: a group's or project's full path is its parent's full path, `/`, and its own
//! path; full paths are unique across groups and projects; a membership names an existing
//! user and an existing group or project.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// GitLab's access levels (`AccessLevelEnum`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AccessLevel {
    Guest = 10,
    Planner = 15,
    Reporter = 20,
    Developer = 30,
    Maintainer = 40,
    Owner = 50,
}

impl AccessLevel {
    pub const ALL: [AccessLevel; 6] = [
        AccessLevel::Guest,
        AccessLevel::Planner,
        AccessLevel::Reporter,
        AccessLevel::Developer,
        AccessLevel::Maintainer,
        AccessLevel::Owner,
    ];

    pub fn value(self) -> u32 {
        self as u32
    }

    pub fn from_value(v: u32) -> Option<AccessLevel> {
        AccessLevel::ALL.into_iter().find(|l| l.value() == v)
    }

    /// The GraphQL enum name (`DEVELOPER`).
    pub fn name(self) -> &'static str {
        match self {
            AccessLevel::Guest => "GUEST",
            AccessLevel::Planner => "PLANNER",
            AccessLevel::Reporter => "REPORTER",
            AccessLevel::Developer => "DEVELOPER",
            AccessLevel::Maintainer => "MAINTAINER",
            AccessLevel::Owner => "OWNER",
        }
    }

    pub fn from_name(n: &str) -> Option<AccessLevel> {
        AccessLevel::ALL.into_iter().find(|l| l.name() == n)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub username: String,
    pub name: String,
    pub admin: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: u64,
    pub path: String,
    pub name: String,
    pub parent: Option<u64>,
    pub full_path: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: u64,
    pub path: String,
    pub name: String,
    pub group: u64,
    pub full_path: String,
    /// GitLab's `project_id`: when set, a job must carry it as well as the path.
    pub ci_project_id: Option<String>,
}

/// Something members belong to and secrets managers are attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Node {
    Group(u64),
    Project(u64),
}

impl Node {
    /// The storage key fragment: `g12`, `p7`.
    pub fn key(self) -> String {
        match self {
            Node::Group(id) => format!("g{id}"),
            Node::Project(id) => format!("p{id}"),
        }
    }
}

/// The whole directory, in memory.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    pub(crate) users: BTreeMap<u64, User>,
    pub(crate) groups: BTreeMap<u64, Group>,
    pub(crate) projects: BTreeMap<u64, Project>,
    /// Node → user → direct level.
    pub(crate) members: HashMap<Node, BTreeMap<u64, AccessLevel>>,
    by_username: HashMap<String, u64>,
    by_path: HashMap<String, Node>,
}

const MAX_PATH_SEGMENT: usize = 255;
const MAX_DEPTH: usize = 20;

/// GitLab's path rule, simplified: letters, digits, `_`, `-`, `.`; not starting with `-`
/// or `.`, not ending in `.`, at most 255 characters.
pub fn check_path_segment(kind: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= MAX_PATH_SEGMENT
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !s.starts_with(['-', '.'])
        && !s.ends_with('.')
        && !s.contains("..");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{kind} {s:?} is not a valid path: use letters, digits, '_', '-' and '.', at most {MAX_PATH_SEGMENT} characters, not starting with '-' or '.'"
        )))
    }
}

fn check_username(s: &str) -> Result<()> {
    check_path_segment("username", s)
}

impl Directory {
    pub fn user(&self, id: u64) -> Option<&User> {
        self.users.get(&id)
    }

    pub fn user_by_name(&self, username: &str) -> Option<&User> {
        self.by_username
            .get(username)
            .and_then(|id| self.users.get(id))
    }

    pub fn group(&self, id: u64) -> Option<&Group> {
        self.groups.get(&id)
    }

    pub fn project(&self, id: u64) -> Option<&Project> {
        self.projects.get(&id)
    }

    /// A group or project by its full path.
    pub fn node_by_path(&self, full_path: &str) -> Option<Node> {
        self.by_path.get(full_path).copied()
    }

    pub fn group_by_path(&self, full_path: &str) -> Option<&Group> {
        match self.node_by_path(full_path)? {
            Node::Group(id) => self.groups.get(&id),
            Node::Project(_) => None,
        }
    }

    pub fn project_by_path(&self, full_path: &str) -> Option<&Project> {
        match self.node_by_path(full_path)? {
            Node::Project(id) => self.projects.get(&id),
            Node::Group(_) => None,
        }
    }

    pub fn full_path(&self, node: Node) -> Option<&str> {
        match node {
            Node::Group(id) => self.groups.get(&id).map(|g| g.full_path.as_str()),
            Node::Project(id) => self.projects.get(&id).map(|p| p.full_path.as_str()),
        }
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// The groups above `node`, nearest first (a project's own group comes first).
    pub fn ancestors(&self, node: Node) -> Vec<u64> {
        let mut out = Vec::new();
        let mut next = match node {
            Node::Group(id) => self.groups.get(&id).and_then(|g| g.parent),
            Node::Project(id) => self.projects.get(&id).map(|p| p.group),
        };
        while let Some(id) = next {
            // A cycle cannot be built through this module; the bound is defence in depth.
            if out.contains(&id) || out.len() > MAX_DEPTH {
                break;
            }
            out.push(id);
            next = self.groups.get(&id).and_then(|g| g.parent);
        }
        out
    }

    /// Whether `node` is `group` or lies in its subtree.
    pub fn is_within(&self, node: Node, group: u64) -> bool {
        node == Node::Group(group) || self.ancestors(node).contains(&group)
    }

    /// A user's direct level on a node.
    pub fn direct_level(&self, user: u64, node: Node) -> Option<AccessLevel> {
        self.members.get(&node)?.get(&user).copied()
    }

    /// A user's effective level on a node: the highest of the direct level and the levels
    /// inherited from every ancestor group.
    pub fn effective_level(&self, user: u64, node: Node) -> Option<AccessLevel> {
        std::iter::once(node)
            .chain(self.ancestors(node).into_iter().map(Node::Group))
            .filter_map(|n| self.direct_level(user, n))
            .max()
    }

    /// The direct members of a node.
    pub fn direct_members(&self, node: Node) -> impl Iterator<Item = (u64, AccessLevel)> + '_ {
        self.members
            .get(&node)
            .into_iter()
            .flat_map(|m| m.iter().map(|(u, l)| (*u, *l)))
    }

    // ---- changes: each checks its rules and leaves the directory unchanged on error ----

    /// Whether `u` may be added: a valid, free username and a name of at most 255
    /// characters.
    pub fn check_new_user(&self, u: &User) -> Result<()> {
        check_username(&u.username)?;
        if u.name.chars().count() > 255 {
            return Err(Error::invalid("name is longer than 255 characters"));
        }
        if self.by_username.contains_key(&u.username) {
            return Err(Error::conflict(format!(
                "username {:?} is taken",
                u.username
            )));
        }
        Ok(())
    }

    pub fn insert_user(&mut self, u: User) -> Result<()> {
        self.check_new_user(&u)?;
        self.by_username.insert(u.username.clone(), u.id);
        self.users.insert(u.id, u);
        Ok(())
    }

    /// Build a group record (not inserted): checks the path and the parent.
    pub fn new_group(
        &self,
        id: u64,
        path: &str,
        name: &str,
        parent_path: Option<&str>,
    ) -> Result<Group> {
        check_path_segment("group path", path)?;
        let (parent, full_path) = match parent_path.filter(|p| !p.is_empty()) {
            None => (None, path.to_owned()),
            Some(pp) => {
                let g = self
                    .group_by_path(pp)
                    .ok_or_else(|| Error::not_found(format!("group {pp:?} does not exist")))?;
                if self.ancestors(Node::Group(g.id)).len() + 2 > MAX_DEPTH {
                    return Err(Error::invalid(format!(
                        "groups nest at most {MAX_DEPTH} deep"
                    )));
                }
                (Some(g.id), format!("{}/{path}", g.full_path))
            }
        };
        if self.by_path.contains_key(&full_path) {
            return Err(Error::conflict(format!("{full_path:?} is taken")));
        }
        Ok(Group {
            id,
            path: path.to_owned(),
            name: if name.is_empty() { path } else { name }.to_owned(),
            parent,
            full_path,
        })
    }

    pub fn new_project(
        &self,
        id: u64,
        path: &str,
        name: &str,
        namespace_path: &str,
        ci_project_id: Option<String>,
    ) -> Result<Project> {
        check_path_segment("project path", path)?;
        let g = self
            .group_by_path(namespace_path)
            .ok_or_else(|| Error::not_found(format!("group {namespace_path:?} does not exist")))?;
        let full_path = format!("{}/{path}", g.full_path);
        if self.by_path.contains_key(&full_path) {
            return Err(Error::conflict(format!("{full_path:?} is taken")));
        }
        if let Some(c) = &ci_project_id {
            if c.is_empty() || c.len() > 64 || !c.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::invalid(
                    "ciProjectId must be GitLab's numeric project id",
                ));
            }
        }
        Ok(Project {
            id,
            path: path.to_owned(),
            name: if name.is_empty() { path } else { name }.to_owned(),
            group: g.id,
            full_path,
            ci_project_id,
        })
    }

    pub fn insert_group(&mut self, g: Group) {
        self.by_path.insert(g.full_path.clone(), Node::Group(g.id));
        self.groups.insert(g.id, g);
    }

    pub fn insert_project(&mut self, p: Project) {
        self.by_path
            .insert(p.full_path.clone(), Node::Project(p.id));
        self.projects.insert(p.id, p);
    }

    pub fn set_member(&mut self, node: Node, user: u64, level: Option<AccessLevel>) {
        match level {
            Some(l) => {
                self.members.entry(node).or_default().insert(user, l);
            }
            None => {
                if let Some(m) = self.members.get_mut(&node) {
                    m.remove(&user);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Directory {
        let mut d = Directory::default();
        for (id, name) in [(1, "alice"), (2, "bob"), (3, "carol")] {
            d.insert_user(User {
                id,
                username: name.into(),
                name: name.into(),
                admin: false,
            })
            .unwrap();
        }
        let g = d.new_group(10, "grp", "", None).unwrap();
        d.insert_group(g);
        let g = d.new_group(11, "sub", "", Some("grp")).unwrap();
        d.insert_group(g);
        let p = d.new_project(20, "app", "", "grp/sub", None).unwrap();
        d.insert_project(p);
        d
    }

    #[test]
    fn levels_are_inherited_down_the_tree_and_the_highest_wins() {
        let mut d = sample();
        let p = Node::Project(20);
        d.set_member(Node::Group(10), 1, Some(AccessLevel::Developer));
        d.set_member(p, 1, Some(AccessLevel::Reporter));
        d.set_member(Node::Group(11), 2, Some(AccessLevel::Owner));
        assert_eq!(d.effective_level(1, p), Some(AccessLevel::Developer));
        assert_eq!(d.effective_level(2, p), Some(AccessLevel::Owner));
        assert_eq!(d.effective_level(2, Node::Group(10)), None);
        assert_eq!(d.effective_level(3, p), None);
        assert_eq!(d.ancestors(p), vec![11, 10]);
        assert!(d.is_within(p, 10) && d.is_within(Node::Group(11), 10));
        assert!(!d.is_within(Node::Group(10), 11));
    }

    #[test]
    fn paths_are_checked_and_unique() {
        let d = sample();
        assert_eq!(d.project_by_path("grp/sub/app").unwrap().id, 20);
        for bad in ["", "-x", ".x", "x.", "a/b", "a..b", "sp ace", "é"] {
            assert!(d.new_group(99, bad, "", None).is_err(), "{bad:?}");
        }
        assert!(d.new_group(99, "sub", "", Some("grp")).is_err());
        assert!(d.new_project(99, "app", "", "grp/sub", None).is_err());
        assert!(d.new_project(99, "x", "", "nope", None).is_err());
        assert!(d
            .new_project(99, "x", "", "grp", Some("12a".into()))
            .is_err());
    }
}
