//! Queries, mutations and their types.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{
    ComplexObject, Context, Enum, Error as GqlError, InputObject, Object, Result, SimpleObject, ID,
};
use strongroom_manager::directory::AccessLevel;
use strongroom_manager::permissions::{Action, Actor, Grant, Principal};
use strongroom_manager::scope::{self, RotationStatus};
use strongroom_manager::{Error, ManagerStatus, SecretInput, SecretView};
use zeroize::Zeroizing;

use crate::ManagerRef;

const FORBIDDEN: &str = "The resource that you are attempting to access does not exist or you don't have permission to perform this action";

fn manager<'a>(ctx: &Context<'a>) -> &'a ManagerRef {
    ctx.data_unchecked::<ManagerRef>()
}

fn actor(ctx: &Context<'_>) -> Actor {
    *ctx.data_unchecked::<Actor>()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// A domain error as a top-level GraphQL error (queries; refusals in mutations).
fn top(e: Error) -> GqlError {
    match e {
        Error::Forbidden | Error::NotFound(_) => GqlError::new(FORBIDDEN),
        Error::Invalid(m) | Error::Conflict(m) | Error::Unauthenticated(m) => GqlError::new(m),
        Error::Core(strongroom_core::CoreError::Sealed) => GqlError::new("Vault is sealed"),
        Error::Core(_) => GqlError::new("internal error"),
    }
}

/// A mutation's outcome: the value, or the input problems for the payload's `errors`.
/// Refusals and missing targets are one top-level error, "does not exist or you don't
/// have permission", so no caller can probe which paths, users or secrets exist.
fn payload<T>(r: strongroom_manager::Result<T>) -> Result<(Option<T>, Vec<String>)> {
    match r {
        Ok(v) => Ok((Some(v), Vec::new())),
        Err(Error::Invalid(m) | Error::Conflict(m)) => Ok((None, vec![m])),
        Err(e) => Err(top(e)),
    }
}

fn gid(kind: &str, id: u64) -> ID {
    ID(format!("gid://strongroom/{kind}/{id}"))
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn parse_time(field: &str, s: &str) -> strongroom_manager::Result<i64> {
    let bad = || {
        Error::invalid(format!(
            "{field} must be an ISO 8601 time (2027-01-31T00:00:00Z) or date (2027-01-31)"
        ))
    };
    if let Ok(d) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(d.unix_timestamp());
    }
    // A date alone means its start, UTC.
    let mut parts = s.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let y: i32 = y.parse().map_err(|_| bad())?;
    let m: u8 = m.parse().map_err(|_| bad())?;
    let d: u8 = d.parse().map_err(|_| bad())?;
    let month = time::Month::try_from(m).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(y, month, d).map_err(|_| bad())?;
    Ok(date.midnight().assume_utc().unix_timestamp())
}

// ---------------------------------------------------------------- enums

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(name = "AccessLevelEnum")]
pub enum AccessLevelEnum {
    Guest,
    Planner,
    Reporter,
    Developer,
    Maintainer,
    Owner,
}

impl From<AccessLevelEnum> for AccessLevel {
    fn from(l: AccessLevelEnum) -> AccessLevel {
        match l {
            AccessLevelEnum::Guest => AccessLevel::Guest,
            AccessLevelEnum::Planner => AccessLevel::Planner,
            AccessLevelEnum::Reporter => AccessLevel::Reporter,
            AccessLevelEnum::Developer => AccessLevel::Developer,
            AccessLevelEnum::Maintainer => AccessLevel::Maintainer,
            AccessLevelEnum::Owner => AccessLevel::Owner,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PrincipalType {
    User,
    Role,
    Group,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SecretsManagementAction {
    Read,
    ReadValue,
    Write,
    Delete,
}

impl From<SecretsManagementAction> for Action {
    fn from(a: SecretsManagementAction) -> Action {
        match a {
            SecretsManagementAction::Read => Action::Read,
            SecretsManagementAction::ReadValue => Action::ReadValue,
            SecretsManagementAction::Write => Action::Write,
            SecretsManagementAction::Delete => Action::Delete,
        }
    }
}

impl From<Action> for SecretsManagementAction {
    fn from(a: Action) -> SecretsManagementAction {
        match a {
            Action::Read => SecretsManagementAction::Read,
            Action::ReadValue => SecretsManagementAction::ReadValue,
            Action::Write => SecretsManagementAction::Write,
            Action::Delete => SecretsManagementAction::Delete,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SecretsManagerStatus {
    Provisioning,
    Active,
    Deprovisioning,
}

impl From<ManagerStatus> for SecretsManagerStatus {
    fn from(s: ManagerStatus) -> Self {
        match s {
            ManagerStatus::Provisioning => SecretsManagerStatus::Provisioning,
            ManagerStatus::Active => SecretsManagerStatus::Active,
            ManagerStatus::Deprovisioning => SecretsManagerStatus::Deprovisioning,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SecretRotationStatus {
    Ok,
    Approaching,
    Overdue,
}

// ---------------------------------------------------------------- objects

#[derive(SimpleObject, Clone)]
pub struct UserType {
    pub id: ID,
    pub username: String,
    pub name: String,
    pub admin: bool,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Group")]
pub struct GroupType {
    pub id: ID,
    pub path: String,
    pub name: String,
    pub full_path: String,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Project")]
pub struct ProjectType {
    pub id: ID,
    pub path: String,
    pub name: String,
    pub full_path: String,
    /// GitLab's project id a job's token must carry, when pinned.
    pub ci_project_id: Option<String>,
}

#[derive(SimpleObject, Clone)]
pub struct SecretRotationInfo {
    pub rotation_interval_days: i32,
    pub status: SecretRotationStatus,
    pub next_reminder_at: String,
}

#[derive(SimpleObject, Clone)]
pub struct SecretVersion {
    pub version: i64,
    pub created_at: String,
    pub deleted: bool,
}

/// A secret, project or group. The value is resolved only when asked for, and only for
/// a caller holding READ_VALUE.
#[derive(SimpleObject, Clone)]
#[graphql(complex, name = "ProjectSecret")]
pub struct ProjectSecret {
    pub name: String,
    pub description: String,
    pub environment: String,
    pub branch: String,
    /// Current value version.
    pub version: i64,
    /// Pass back as `metadataCas` when updating.
    pub metadata_version: i64,
    pub expires_at: Option<String>,
    pub rotation_info: Option<SecretRotationInfo>,
    pub project: ProjectType,
    #[graphql(skip)]
    pub path: String,
}

#[derive(SimpleObject, Clone)]
#[graphql(complex, name = "GroupSecret")]
pub struct GroupSecret {
    pub name: String,
    pub description: String,
    pub environment: String,
    pub protected: bool,
    pub version: i64,
    pub metadata_version: i64,
    pub expires_at: Option<String>,
    pub rotation_info: Option<SecretRotationInfo>,
    pub group: GroupType,
    #[graphql(skip)]
    pub path: String,
}

async fn value_of(
    ctx: &Context<'_>,
    path: &str,
    name: &str,
    version: Option<i64>,
) -> Result<String> {
    let v = version
        .map(|v| u64::try_from(v).map_err(|_| GqlError::new("version must be positive")))
        .transpose()?;
    let s = manager(ctx)
        .secret_get(actor(ctx), path, name, true, v)
        .await
        .map_err(top)?;
    Ok(s.value.map(|v| v.to_string()).unwrap_or_default())
}

async fn versions_of(ctx: &Context<'_>, path: &str, name: &str) -> Result<Vec<SecretVersion>> {
    Ok(manager(ctx)
        .secret_versions(actor(ctx), path, name)
        .await
        .map_err(top)?
        .into_iter()
        .map(|(v, created, deleted)| SecretVersion {
            version: v as i64,
            created_at: created,
            deleted,
        })
        .collect())
}

#[ComplexObject]
impl ProjectSecret {
    /// The value (ours; GitLab never shows values). Needs READ_VALUE.
    async fn value(&self, ctx: &Context<'_>, version: Option<i64>) -> Result<String> {
        value_of(ctx, &self.path, &self.name, version).await
    }
    async fn versions(&self, ctx: &Context<'_>) -> Result<Vec<SecretVersion>> {
        versions_of(ctx, &self.path, &self.name).await
    }
}

#[ComplexObject]
impl GroupSecret {
    /// The value (ours; GitLab never shows values). Needs READ_VALUE.
    async fn value(&self, ctx: &Context<'_>, version: Option<i64>) -> Result<String> {
        value_of(ctx, &self.path, &self.name, version).await
    }
    async fn versions(&self, ctx: &Context<'_>) -> Result<Vec<SecretVersion>> {
        versions_of(ctx, &self.path, &self.name).await
    }
}

fn rotation_info(v: &SecretView) -> Option<SecretRotationInfo> {
    scope::rotation(&v.meta, now()).map(|r| SecretRotationInfo {
        rotation_interval_days: r.interval_days as i32,
        status: match r.status {
            RotationStatus::Ok => SecretRotationStatus::Ok,
            RotationStatus::Approaching => SecretRotationStatus::Approaching,
            RotationStatus::Overdue => SecretRotationStatus::Overdue,
        },
        next_reminder_at: rfc3339(r.next_reminder_at),
    })
}

async fn project_of(ctx: &Context<'_>, path: &str) -> Result<ProjectType> {
    let dir = manager(ctx).directory().await.map_err(top)?;
    let p = dir
        .project_by_path(path)
        .ok_or_else(|| GqlError::new(FORBIDDEN))?;
    Ok(project_type(p))
}

async fn group_of(ctx: &Context<'_>, path: &str) -> Result<GroupType> {
    let dir = manager(ctx).directory().await.map_err(top)?;
    let g = dir
        .group_by_path(path)
        .ok_or_else(|| GqlError::new(FORBIDDEN))?;
    Ok(group_type(g))
}

fn project_type(p: &strongroom_manager::directory::Project) -> ProjectType {
    ProjectType {
        id: gid("Project", p.id),
        path: p.path.clone(),
        name: p.name.clone(),
        full_path: p.full_path.clone(),
        ci_project_id: p.ci_project_id.clone(),
    }
}

fn group_type(g: &strongroom_manager::directory::Group) -> GroupType {
    GroupType {
        id: gid("Group", g.id),
        path: g.path.clone(),
        name: g.name.clone(),
        full_path: g.full_path.clone(),
    }
}

fn project_secret(v: SecretView, project: &ProjectType) -> ProjectSecret {
    ProjectSecret {
        rotation_info: rotation_info(&v),
        name: v.name,
        description: v.meta.description,
        environment: v.meta.environment,
        branch: v.meta.branch.unwrap_or_else(|| "*".into()),
        version: v.version as i64,
        metadata_version: v.metadata_version as i64,
        expires_at: v.meta.expires_at.map(rfc3339),
        path: project.full_path.clone(),
        project: project.clone(),
    }
}

fn group_secret(v: SecretView, group: &GroupType) -> GroupSecret {
    GroupSecret {
        rotation_info: rotation_info(&v),
        name: v.name,
        description: v.meta.description,
        environment: v.meta.environment,
        protected: v.meta.protected.unwrap_or(false),
        version: v.version as i64,
        metadata_version: v.metadata_version as i64,
        expires_at: v.meta.expires_at.map(rfc3339),
        path: group.full_path.clone(),
        group: group.clone(),
    }
}

#[derive(SimpleObject, Clone)]
pub struct ProjectSecretsManager {
    pub status: SecretsManagerStatus,
    pub namespace_path: String,
    pub project: ProjectType,
}

#[derive(SimpleObject, Clone)]
pub struct GroupSecretsManager {
    pub status: SecretsManagerStatus,
    pub namespace_path: String,
    pub group: GroupType,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Principal")]
pub struct PrincipalObject {
    pub id: i64,
    #[graphql(name = "type")]
    pub kind: PrincipalType,
}

#[derive(SimpleObject, Clone)]
pub struct SecretPermission {
    pub principal: PrincipalObject,
    pub actions: Vec<SecretsManagementAction>,
    pub expired_at: Option<String>,
}

fn permission(g: Grant) -> SecretPermission {
    let (id, kind) = match g.principal {
        Principal::User(u) => (u as i64, PrincipalType::User),
        Principal::Role(l) => (i64::from(l.value()), PrincipalType::Role),
        Principal::Group(gid) => (gid as i64, PrincipalType::Group),
    };
    SecretPermission {
        principal: PrincipalObject { id, kind },
        actions: g.actions.into_iter().map(Into::into).collect(),
        expired_at: g.expired_at.map(rfc3339),
    }
}

#[derive(SimpleObject)]
pub struct CountFields {
    /// The total, across pages.
    pub count: i64,
}

/// A Relay connection over a list held in memory (at most a secrets manager's limit).
fn connection<T: async_graphql::OutputType>(
    items: Vec<T>,
    after: Option<String>,
    first: Option<i32>,
) -> Result<Connection<String, T, CountFields, EmptyFields>> {
    let total = items.len();
    let start = match after {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| GqlError::new("after: not a cursor from this connection"))?
            .saturating_add(1),
    };
    let first = match first {
        None => 100,
        Some(f) if (0..=100).contains(&f) => f as usize,
        Some(_) => return Err(GqlError::new("first must be between 0 and 100")),
    };
    let end = start.saturating_add(first).min(total);
    let mut c = Connection::with_additional_fields(
        start > 0 && total > 0,
        end < total,
        CountFields {
            count: total as i64,
        },
    );
    for (i, item) in items.into_iter().enumerate().take(end).skip(start) {
        c.edges.push(Edge::new(i.to_string(), item));
    }
    Ok(c)
}

// ---------------------------------------------------------------- queries

pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The user the token belongs to (null for the root token).
    async fn current_user(&self, ctx: &Context<'_>) -> Result<Option<UserType>> {
        let Actor::User(u) = actor(ctx) else {
            return Ok(None);
        };
        let dir = manager(ctx).directory().await.map_err(top)?;
        Ok(dir.user(u).map(|u| UserType {
            id: gid("User", u.id),
            username: u.username.clone(),
            name: u.name.clone(),
            admin: u.admin,
        }))
    }

    async fn group(&self, ctx: &Context<'_>, full_path: String) -> Result<Option<GroupType>> {
        let dir = manager(ctx).directory().await.map_err(top)?;
        Ok(dir.group_by_path(&full_path).map(group_type))
    }

    async fn project(&self, ctx: &Context<'_>, full_path: String) -> Result<Option<ProjectType>> {
        let dir = manager(ctx).directory().await.map_err(top)?;
        Ok(dir.project_by_path(&full_path).map(project_type))
    }

    async fn project_secrets_manager(
        &self,
        ctx: &Context<'_>,
        project_path: String,
    ) -> Result<Option<ProjectSecretsManager>> {
        let project = project_of(ctx, &project_path).await?;
        let (_, sm) = manager(ctx)
            .secrets_manager(&project_path)
            .await
            .map_err(top)?;
        Ok(sm.map(|sm| ProjectSecretsManager {
            status: sm.status.into(),
            namespace_path: sm.namespace,
            project,
        }))
    }

    async fn group_secrets_manager(
        &self,
        ctx: &Context<'_>,
        group_path: String,
    ) -> Result<Option<GroupSecretsManager>> {
        let group = group_of(ctx, &group_path).await?;
        let (_, sm) = manager(ctx)
            .secrets_manager(&group_path)
            .await
            .map_err(top)?;
        Ok(sm.map(|sm| GroupSecretsManager {
            status: sm.status.into(),
            namespace_path: sm.namespace,
            group,
        }))
    }

    async fn project_secrets(
        &self,
        ctx: &Context<'_>,
        project_path: String,
        after: Option<String>,
        first: Option<i32>,
    ) -> Result<Connection<String, ProjectSecret, CountFields, EmptyFields>> {
        let project = project_of(ctx, &project_path).await?;
        let list = manager(ctx)
            .secret_list(actor(ctx), &project_path)
            .await
            .map_err(top)?;
        connection(
            list.into_iter()
                .map(|v| project_secret(v, &project))
                .collect(),
            after,
            first,
        )
    }

    async fn group_secrets(
        &self,
        ctx: &Context<'_>,
        group_path: String,
        after: Option<String>,
        first: Option<i32>,
    ) -> Result<Connection<String, GroupSecret, CountFields, EmptyFields>> {
        let group = group_of(ctx, &group_path).await?;
        let list = manager(ctx)
            .secret_list(actor(ctx), &group_path)
            .await
            .map_err(top)?;
        connection(
            list.into_iter().map(|v| group_secret(v, &group)).collect(),
            after,
            first,
        )
    }

    async fn project_secret(
        &self,
        ctx: &Context<'_>,
        project_path: String,
        name: String,
    ) -> Result<Option<ProjectSecret>> {
        let project = project_of(ctx, &project_path).await?;
        match manager(ctx)
            .secret_get(actor(ctx), &project_path, &name, false, None)
            .await
        {
            Ok(v) => Ok(Some(project_secret(v, &project))),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(top(e)),
        }
    }

    async fn group_secret(
        &self,
        ctx: &Context<'_>,
        group_path: String,
        name: String,
    ) -> Result<Option<GroupSecret>> {
        let group = group_of(ctx, &group_path).await?;
        match manager(ctx)
            .secret_get(actor(ctx), &group_path, &name, false, None)
            .await
        {
            Ok(v) => Ok(Some(group_secret(v, &group))),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(top(e)),
        }
    }

    /// Secrets whose rotation is approaching or overdue.
    async fn project_secrets_needing_rotation(
        &self,
        ctx: &Context<'_>,
        project_path: String,
        after: Option<String>,
        first: Option<i32>,
    ) -> Result<Connection<String, ProjectSecret, CountFields, EmptyFields>> {
        let project = project_of(ctx, &project_path).await?;
        let list = manager(ctx)
            .secret_list(actor(ctx), &project_path)
            .await
            .map_err(top)?;
        let due = list
            .into_iter()
            .map(|v| project_secret(v, &project))
            .filter(|s| {
                s.rotation_info
                    .as_ref()
                    .is_some_and(|r| r.status != SecretRotationStatus::Ok)
            })
            .collect();
        connection(due, after, first)
    }

    async fn group_secrets_needing_rotation(
        &self,
        ctx: &Context<'_>,
        group_path: String,
        after: Option<String>,
        first: Option<i32>,
    ) -> Result<Connection<String, GroupSecret, CountFields, EmptyFields>> {
        let group = group_of(ctx, &group_path).await?;
        let list = manager(ctx)
            .secret_list(actor(ctx), &group_path)
            .await
            .map_err(top)?;
        let due = list
            .into_iter()
            .map(|v| group_secret(v, &group))
            .filter(|s| {
                s.rotation_info
                    .as_ref()
                    .is_some_and(|r| r.status != SecretRotationStatus::Ok)
            })
            .collect();
        connection(due, after, first)
    }

    async fn project_secrets_permissions(
        &self,
        ctx: &Context<'_>,
        project_path: String,
        after: Option<String>,
        first: Option<i32>,
    ) -> Result<Connection<String, SecretPermission, CountFields, EmptyFields>> {
        let grants = manager(ctx)
            .permissions(actor(ctx), &project_path)
            .await
            .map_err(top)?;
        connection(grants.into_iter().map(permission).collect(), after, first)
    }

    async fn group_secrets_permissions(
        &self,
        ctx: &Context<'_>,
        group_path: String,
        after: Option<String>,
        first: Option<i32>,
    ) -> Result<Connection<String, SecretPermission, CountFields, EmptyFields>> {
        let grants = manager(ctx)
            .permissions(actor(ctx), &group_path)
            .await
            .map_err(top)?;
        connection(grants.into_iter().map(permission).collect(), after, first)
    }
}

// ---------------------------------------------------------------- mutation inputs

#[derive(InputObject)]
pub struct UserCreateInput {
    pub username: String,
    pub name: Option<String>,
    pub admin: Option<bool>,
}

#[derive(InputObject)]
pub struct PersonalAccessTokenCreateInput {
    pub username: String,
    pub name: String,
    pub expires_at: Option<String>,
}

#[derive(InputObject)]
pub struct PersonalAccessTokenRevokeInput {
    pub username: String,
    /// Every live token of the user with this name is revoked.
    pub name: String,
}

#[derive(InputObject)]
pub struct GroupCreateInput {
    pub path: String,
    pub name: Option<String>,
    pub parent_path: Option<String>,
}

#[derive(InputObject)]
pub struct ProjectCreateInput {
    pub path: String,
    pub namespace_path: String,
    pub name: Option<String>,
    pub ci_project_id: Option<String>,
}

#[derive(InputObject)]
pub struct MemberInput {
    /// A group's or project's full path.
    pub path: String,
    pub username: String,
    pub access_level: AccessLevelEnum,
}

#[derive(InputObject)]
pub struct MemberRemoveInput {
    pub path: String,
    pub username: String,
}

#[derive(InputObject)]
pub struct ProjectSecretsManagerInput {
    pub project_path: String,
}

#[derive(InputObject)]
pub struct GroupSecretsManagerInput {
    pub group_path: String,
}

#[derive(InputObject)]
pub struct ProjectSecretCreateInput {
    pub project_path: String,
    pub name: String,
    /// The value.
    pub secret: String,
    pub environment: String,
    pub branch: String,
    pub description: Option<String>,
    pub rotation_interval_days: Option<i32>,
    pub expires_at: Option<String>,
}

#[derive(InputObject)]
pub struct ProjectSecretUpdateInput {
    pub project_path: String,
    pub name: String,
    pub secret: Option<String>,
    pub environment: Option<String>,
    pub branch: Option<String>,
    pub description: Option<String>,
    pub rotation_interval_days: Option<i32>,
    pub expires_at: Option<String>,
    /// The `metadataVersion` read: a stale one is refused.
    pub metadata_cas: Option<i64>,
}

#[derive(InputObject)]
pub struct GroupSecretCreateInput {
    pub group_path: String,
    pub name: String,
    pub secret: String,
    pub environment: String,
    pub protected: bool,
    pub description: Option<String>,
    pub rotation_interval_days: Option<i32>,
    pub expires_at: Option<String>,
}

#[derive(InputObject)]
pub struct GroupSecretUpdateInput {
    pub group_path: String,
    pub name: String,
    pub secret: Option<String>,
    pub environment: Option<String>,
    pub protected: Option<bool>,
    pub description: Option<String>,
    pub rotation_interval_days: Option<i32>,
    pub expires_at: Option<String>,
    pub metadata_cas: Option<i64>,
}

#[derive(InputObject)]
pub struct ProjectSecretNameInput {
    pub project_path: String,
    pub name: String,
}

#[derive(InputObject)]
pub struct GroupSecretNameInput {
    pub group_path: String,
    pub name: String,
}

#[derive(InputObject)]
pub struct ProjectSecretRollbackInput {
    pub project_path: String,
    pub name: String,
    pub version: i64,
}

#[derive(InputObject)]
pub struct GroupSecretRollbackInput {
    pub group_path: String,
    pub name: String,
    pub version: i64,
}

#[derive(InputObject)]
pub struct PrincipalInput {
    pub id: i64,
    #[graphql(name = "type")]
    pub kind: PrincipalType,
}

#[derive(InputObject)]
pub struct ProjectSecretsPermissionUpdateInput {
    pub project_path: String,
    pub principal: PrincipalInput,
    pub actions: Vec<SecretsManagementAction>,
    pub expired_at: Option<String>,
}

#[derive(InputObject)]
pub struct GroupSecretsPermissionUpdateInput {
    pub group_path: String,
    pub principal: PrincipalInput,
    pub actions: Vec<SecretsManagementAction>,
    pub expired_at: Option<String>,
}

#[derive(InputObject)]
pub struct ProjectSecretsPermissionDeleteInput {
    pub project_path: String,
    pub principal: PrincipalInput,
}

#[derive(InputObject)]
pub struct GroupSecretsPermissionDeleteInput {
    pub group_path: String,
    pub principal: PrincipalInput,
}

// ---------------------------------------------------------------- payloads

#[derive(SimpleObject, Default)]
pub struct UserCreatePayload {
    pub user: Option<UserType>,
    pub errors: Vec<String>,
}

#[derive(SimpleObject, Default)]
pub struct PersonalAccessTokenCreatePayload {
    /// Shown once: only its hash is kept.
    pub token: Option<String>,
    pub errors: Vec<String>,
}

#[derive(SimpleObject, Default)]
pub struct PersonalAccessTokenRevokePayload {
    pub revoked: i32,
    pub errors: Vec<String>,
}

#[derive(SimpleObject, Default)]
pub struct GroupCreatePayload {
    pub group: Option<GroupType>,
    pub errors: Vec<String>,
}

#[derive(SimpleObject, Default)]
pub struct ProjectCreatePayload {
    pub project: Option<ProjectType>,
    pub errors: Vec<String>,
}

#[derive(SimpleObject, Default)]
pub struct MemberPayload {
    pub errors: Vec<String>,
}

#[derive(SimpleObject, Default)]
pub struct ProjectSecretsManagerPayload {
    pub project_secrets_manager: Option<ProjectSecretsManager>,
    pub errors: Vec<String>,
}

#[derive(SimpleObject, Default)]
pub struct GroupSecretsManagerPayload {
    pub group_secrets_manager: Option<GroupSecretsManager>,
    pub errors: Vec<String>,
}

#[derive(SimpleObject, Default)]
pub struct ProjectSecretPayload {
    pub project_secret: Option<ProjectSecret>,
    pub errors: Vec<String>,
}

#[derive(SimpleObject, Default)]
pub struct GroupSecretPayload {
    pub group_secret: Option<GroupSecret>,
    pub errors: Vec<String>,
}

#[derive(SimpleObject, Default)]
pub struct SecretPermissionPayload {
    pub secrets_permission: Option<SecretPermission>,
    pub errors: Vec<String>,
}

#[derive(SimpleObject, Default)]
pub struct DeletePayload {
    pub errors: Vec<String>,
}

// ---------------------------------------------------------------- mutations

fn opt_time(field: &str, s: Option<String>) -> strongroom_manager::Result<Option<i64>> {
    s.filter(|s| !s.is_empty())
        .map(|s| parse_time(field, &s))
        .transpose()
}

fn rotation_days(d: Option<i32>) -> strongroom_manager::Result<Option<Option<u32>>> {
    match d {
        None => Ok(None),
        Some(0) => Ok(Some(None)),
        Some(d) => u32::try_from(d)
            .map(|d| Some(Some(d)))
            .map_err(|_| Error::invalid("rotationIntervalDays must be at least 7")),
    }
}

fn principal(p: &PrincipalInput) -> strongroom_manager::Result<Principal> {
    let id = u64::try_from(p.id).map_err(|_| Error::invalid("principal id must be positive"))?;
    Ok(match p.kind {
        PrincipalType::User => Principal::User(id),
        PrincipalType::Group => Principal::Group(id),
        PrincipalType::Role => Principal::Role(
            u32::try_from(id)
                .ok()
                .and_then(AccessLevel::from_value)
                .ok_or_else(|| {
                    Error::invalid(
                        "a ROLE principal's id is an access level: 10, 15, 20, 30, 40 or 50",
                    )
                })?,
        ),
    })
}

fn cas(v: Option<i64>) -> strongroom_manager::Result<Option<u64>> {
    v.map(|c| u64::try_from(c).map_err(|_| Error::invalid("metadataCas must not be negative")))
        .transpose()
}

pub struct MutationRoot;

#[Object]
impl MutationRoot {
    async fn user_create(
        &self,
        ctx: &Context<'_>,
        input: UserCreateInput,
    ) -> Result<UserCreatePayload> {
        let r = manager(ctx)
            .user_create(
                actor(ctx),
                &input.username,
                input.name.as_deref().unwrap_or(""),
                input.admin.unwrap_or(false),
            )
            .await;
        let (u, errors) = payload(r)?;
        Ok(UserCreatePayload {
            user: u.map(|u| UserType {
                id: gid("User", u.id),
                username: u.username,
                name: u.name,
                admin: u.admin,
            }),
            errors,
        })
    }

    async fn personal_access_token_create(
        &self,
        ctx: &Context<'_>,
        input: PersonalAccessTokenCreateInput,
    ) -> Result<PersonalAccessTokenCreatePayload> {
        let r = async {
            let exp = opt_time("expiresAt", input.expires_at)?;
            manager(ctx)
                .pat_create(actor(ctx), &input.username, &input.name, exp)
                .await
        }
        .await;
        let (t, errors) = payload(r)?;
        Ok(PersonalAccessTokenCreatePayload {
            token: t.map(|t: Zeroizing<String>| t.to_string()),
            errors,
        })
    }

    async fn personal_access_token_revoke(
        &self,
        ctx: &Context<'_>,
        input: PersonalAccessTokenRevokeInput,
    ) -> Result<PersonalAccessTokenRevokePayload> {
        let r = manager(ctx)
            .pat_revoke(actor(ctx), &input.username, &input.name)
            .await;
        let (n, errors) = payload(r)?;
        Ok(PersonalAccessTokenRevokePayload {
            revoked: n.unwrap_or(0) as i32,
            errors,
        })
    }

    async fn group_create(
        &self,
        ctx: &Context<'_>,
        input: GroupCreateInput,
    ) -> Result<GroupCreatePayload> {
        let r = manager(ctx)
            .group_create(
                actor(ctx),
                &input.path,
                input.name.as_deref().unwrap_or(""),
                input.parent_path.as_deref(),
            )
            .await;
        let (g, errors) = payload(r)?;
        Ok(GroupCreatePayload {
            group: g.as_ref().map(group_type),
            errors,
        })
    }

    async fn project_create(
        &self,
        ctx: &Context<'_>,
        input: ProjectCreateInput,
    ) -> Result<ProjectCreatePayload> {
        let r = manager(ctx)
            .project_create(
                actor(ctx),
                &input.path,
                &input.namespace_path,
                input.name.as_deref().unwrap_or(""),
                input.ci_project_id,
            )
            .await;
        let (p, errors) = payload(r)?;
        Ok(ProjectCreatePayload {
            project: p.as_ref().map(project_type),
            errors,
        })
    }

    async fn member_add(&self, ctx: &Context<'_>, input: MemberInput) -> Result<MemberPayload> {
        let r = manager(ctx)
            .member_set(
                actor(ctx),
                &input.path,
                &input.username,
                Some(input.access_level.into()),
            )
            .await;
        Ok(MemberPayload {
            errors: payload(r)?.1,
        })
    }

    async fn member_update(&self, ctx: &Context<'_>, input: MemberInput) -> Result<MemberPayload> {
        let r = manager(ctx)
            .member_set(
                actor(ctx),
                &input.path,
                &input.username,
                Some(input.access_level.into()),
            )
            .await;
        Ok(MemberPayload {
            errors: payload(r)?.1,
        })
    }

    async fn member_remove(
        &self,
        ctx: &Context<'_>,
        input: MemberRemoveInput,
    ) -> Result<MemberPayload> {
        let r = manager(ctx)
            .member_set(actor(ctx), &input.path, &input.username, None)
            .await;
        Ok(MemberPayload {
            errors: payload(r)?.1,
        })
    }

    async fn project_secrets_manager_initialize(
        &self,
        ctx: &Context<'_>,
        input: ProjectSecretsManagerInput,
    ) -> Result<ProjectSecretsManagerPayload> {
        let project = project_of(ctx, &input.project_path).await?;
        let (sm, errors) = payload(
            manager(ctx)
                .initialize(actor(ctx), &input.project_path)
                .await,
        )?;
        Ok(ProjectSecretsManagerPayload {
            project_secrets_manager: sm.map(|sm| ProjectSecretsManager {
                status: sm.status.into(),
                namespace_path: sm.namespace,
                project,
            }),
            errors,
        })
    }

    async fn project_secrets_manager_deprovision(
        &self,
        ctx: &Context<'_>,
        input: ProjectSecretsManagerInput,
    ) -> Result<ProjectSecretsManagerPayload> {
        let project = project_of(ctx, &input.project_path).await?;
        let namespace_path = manager(ctx)
            .secrets_manager(&input.project_path)
            .await
            .map_err(top)?
            .1
            .map(|sm| sm.namespace)
            .unwrap_or_default();
        let (done, errors) = payload(
            manager(ctx)
                .deprovision(actor(ctx), &input.project_path)
                .await,
        )?;
        Ok(ProjectSecretsManagerPayload {
            project_secrets_manager: done.map(|()| ProjectSecretsManager {
                status: SecretsManagerStatus::Deprovisioning,
                namespace_path,
                project,
            }),
            errors,
        })
    }

    async fn group_secrets_manager_initialize(
        &self,
        ctx: &Context<'_>,
        input: GroupSecretsManagerInput,
    ) -> Result<GroupSecretsManagerPayload> {
        let group = group_of(ctx, &input.group_path).await?;
        let (sm, errors) = payload(manager(ctx).initialize(actor(ctx), &input.group_path).await)?;
        Ok(GroupSecretsManagerPayload {
            group_secrets_manager: sm.map(|sm| GroupSecretsManager {
                status: sm.status.into(),
                namespace_path: sm.namespace,
                group,
            }),
            errors,
        })
    }

    async fn group_secrets_manager_deprovision(
        &self,
        ctx: &Context<'_>,
        input: GroupSecretsManagerInput,
    ) -> Result<GroupSecretsManagerPayload> {
        let group = group_of(ctx, &input.group_path).await?;
        let namespace_path = manager(ctx)
            .secrets_manager(&input.group_path)
            .await
            .map_err(top)?
            .1
            .map(|sm| sm.namespace)
            .unwrap_or_default();
        let (done, errors) = payload(
            manager(ctx)
                .deprovision(actor(ctx), &input.group_path)
                .await,
        )?;
        Ok(GroupSecretsManagerPayload {
            group_secrets_manager: done.map(|()| GroupSecretsManager {
                status: SecretsManagerStatus::Deprovisioning,
                namespace_path,
                group,
            }),
            errors,
        })
    }

    async fn project_secret_create(
        &self,
        ctx: &Context<'_>,
        input: ProjectSecretCreateInput,
    ) -> Result<ProjectSecretPayload> {
        let project = project_of(ctx, &input.project_path).await?;
        let r = async {
            let si = SecretInput {
                value: Some(Zeroizing::new(input.secret)),
                environment: Some(input.environment),
                branch: Some(input.branch),
                protected: None,
                description: input.description,
                expires_at: opt_time("expiresAt", input.expires_at)?.map(Some),
                rotation_interval_days: rotation_days(input.rotation_interval_days)?,
            };
            manager(ctx)
                .secret_create(actor(ctx), &input.project_path, &input.name, si)
                .await
        }
        .await;
        let (v, errors) = payload(r)?;
        Ok(ProjectSecretPayload {
            project_secret: v.map(|v| project_secret(v, &project)),
            errors,
        })
    }

    async fn project_secret_update(
        &self,
        ctx: &Context<'_>,
        input: ProjectSecretUpdateInput,
    ) -> Result<ProjectSecretPayload> {
        let project = project_of(ctx, &input.project_path).await?;
        let r = async {
            let si = SecretInput {
                value: input.secret.map(Zeroizing::new),
                environment: input.environment,
                branch: input.branch,
                protected: None,
                description: input.description,
                expires_at: match input.expires_at {
                    None => None,
                    Some(s) => Some(opt_time("expiresAt", Some(s))?),
                },
                rotation_interval_days: rotation_days(input.rotation_interval_days)?,
            };
            manager(ctx)
                .secret_update(
                    actor(ctx),
                    &input.project_path,
                    &input.name,
                    si,
                    cas(input.metadata_cas)?,
                )
                .await
        }
        .await;
        let (v, errors) = payload(r)?;
        Ok(ProjectSecretPayload {
            project_secret: v.map(|v| project_secret(v, &project)),
            errors,
        })
    }

    async fn project_secret_delete(
        &self,
        ctx: &Context<'_>,
        input: ProjectSecretNameInput,
    ) -> Result<DeletePayload> {
        let r = manager(ctx)
            .secret_delete(actor(ctx), &input.project_path, &input.name)
            .await;
        Ok(DeletePayload {
            errors: payload(r)?.1,
        })
    }

    /// Ours: write an old version's value as the new current version.
    async fn project_secret_rollback(
        &self,
        ctx: &Context<'_>,
        input: ProjectSecretRollbackInput,
    ) -> Result<ProjectSecretPayload> {
        let project = project_of(ctx, &input.project_path).await?;
        let r = async {
            let v = u64::try_from(input.version)
                .map_err(|_| Error::invalid("version must be positive"))?;
            manager(ctx)
                .secret_rollback(actor(ctx), &input.project_path, &input.name, v)
                .await
        }
        .await;
        let (v, errors) = payload(r)?;
        Ok(ProjectSecretPayload {
            project_secret: v.map(|v| project_secret(v, &project)),
            errors,
        })
    }

    async fn group_secret_create(
        &self,
        ctx: &Context<'_>,
        input: GroupSecretCreateInput,
    ) -> Result<GroupSecretPayload> {
        let group = group_of(ctx, &input.group_path).await?;
        let r = async {
            let si = SecretInput {
                value: Some(Zeroizing::new(input.secret)),
                environment: Some(input.environment),
                branch: None,
                protected: Some(input.protected),
                description: input.description,
                expires_at: opt_time("expiresAt", input.expires_at)?.map(Some),
                rotation_interval_days: rotation_days(input.rotation_interval_days)?,
            };
            manager(ctx)
                .secret_create(actor(ctx), &input.group_path, &input.name, si)
                .await
        }
        .await;
        let (v, errors) = payload(r)?;
        Ok(GroupSecretPayload {
            group_secret: v.map(|v| group_secret(v, &group)),
            errors,
        })
    }

    async fn group_secret_update(
        &self,
        ctx: &Context<'_>,
        input: GroupSecretUpdateInput,
    ) -> Result<GroupSecretPayload> {
        let group = group_of(ctx, &input.group_path).await?;
        let r = async {
            let si = SecretInput {
                value: input.secret.map(Zeroizing::new),
                environment: input.environment,
                branch: None,
                protected: input.protected,
                description: input.description,
                expires_at: match input.expires_at {
                    None => None,
                    Some(s) => Some(opt_time("expiresAt", Some(s))?),
                },
                rotation_interval_days: rotation_days(input.rotation_interval_days)?,
            };
            manager(ctx)
                .secret_update(
                    actor(ctx),
                    &input.group_path,
                    &input.name,
                    si,
                    cas(input.metadata_cas)?,
                )
                .await
        }
        .await;
        let (v, errors) = payload(r)?;
        Ok(GroupSecretPayload {
            group_secret: v.map(|v| group_secret(v, &group)),
            errors,
        })
    }

    async fn group_secret_delete(
        &self,
        ctx: &Context<'_>,
        input: GroupSecretNameInput,
    ) -> Result<DeletePayload> {
        let r = manager(ctx)
            .secret_delete(actor(ctx), &input.group_path, &input.name)
            .await;
        Ok(DeletePayload {
            errors: payload(r)?.1,
        })
    }

    async fn group_secret_rollback(
        &self,
        ctx: &Context<'_>,
        input: GroupSecretRollbackInput,
    ) -> Result<GroupSecretPayload> {
        let group = group_of(ctx, &input.group_path).await?;
        let r = async {
            let v = u64::try_from(input.version)
                .map_err(|_| Error::invalid("version must be positive"))?;
            manager(ctx)
                .secret_rollback(actor(ctx), &input.group_path, &input.name, v)
                .await
        }
        .await;
        let (v, errors) = payload(r)?;
        Ok(GroupSecretPayload {
            group_secret: v.map(|v| group_secret(v, &group)),
            errors,
        })
    }

    async fn project_secrets_permission_update(
        &self,
        ctx: &Context<'_>,
        input: ProjectSecretsPermissionUpdateInput,
    ) -> Result<SecretPermissionPayload> {
        permission_update(
            ctx,
            &input.project_path,
            &input.principal,
            input.actions,
            input.expired_at,
        )
        .await
    }

    async fn group_secrets_permission_update(
        &self,
        ctx: &Context<'_>,
        input: GroupSecretsPermissionUpdateInput,
    ) -> Result<SecretPermissionPayload> {
        permission_update(
            ctx,
            &input.group_path,
            &input.principal,
            input.actions,
            input.expired_at,
        )
        .await
    }

    async fn project_secrets_permission_delete(
        &self,
        ctx: &Context<'_>,
        input: ProjectSecretsPermissionDeleteInput,
    ) -> Result<DeletePayload> {
        permission_delete(ctx, &input.project_path, &input.principal).await
    }

    async fn group_secrets_permission_delete(
        &self,
        ctx: &Context<'_>,
        input: GroupSecretsPermissionDeleteInput,
    ) -> Result<DeletePayload> {
        permission_delete(ctx, &input.group_path, &input.principal).await
    }
}

async fn permission_update(
    ctx: &Context<'_>,
    path: &str,
    p: &PrincipalInput,
    actions: Vec<SecretsManagementAction>,
    expired_at: Option<String>,
) -> Result<SecretPermissionPayload> {
    let r = async {
        if actions.is_empty() {
            return Err(Error::invalid(
                "actions must name at least one action; use ...PermissionDelete to remove a grant",
            ));
        }
        let principal = principal(p)?;
        let exp = opt_time("expiredAt", expired_at)?;
        let grants = manager(ctx)
            .permission_set(
                actor(ctx),
                path,
                principal,
                actions.into_iter().map(Into::into).collect(),
                exp,
            )
            .await?;
        Ok(grants.into_iter().find(|g| g.principal == principal))
    }
    .await;
    let (g, errors) = payload(r)?;
    Ok(SecretPermissionPayload {
        secrets_permission: g.flatten().map(permission),
        errors,
    })
}

async fn permission_delete(
    ctx: &Context<'_>,
    path: &str,
    p: &PrincipalInput,
) -> Result<DeletePayload> {
    let r = async {
        let principal = principal(p)?;
        manager(ctx)
            .permission_set(actor(ctx), path, principal, Vec::new(), None)
            .await
    }
    .await;
    Ok(DeletePayload {
        errors: payload(r)?.1,
    })
}
