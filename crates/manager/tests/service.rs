//! The secrets manager against a real core in this process (memory storage): people,
//! grants, secrets and a job's secrets end to end, through the same request pipeline
//! `/v1` uses.

use std::sync::Arc;

use serde_json::json;
use strongroom_core::api::InProcess;
use strongroom_core::{Core, CoreConfig, Seal};
use strongroom_jwt::DevIssuer;
use strongroom_manager::directory::AccessLevel;
use strongroom_manager::permissions::{Action, Actor, Principal};
use strongroom_manager::{CiConfig, Error, Limits, Manager, SecretInput};
use zeroize::Zeroizing;

const ISS: &str = "https://gitlab.example.com";
const AUD: &str = "https://strongroom.example.com";

async fn setup() -> (Manager<InProcess>, DevIssuer) {
    let (core, ci, issuer) = core_and_ci().await;
    (
        Manager::new(InProcess::system(core), ci, Limits::default()),
        issuer,
    )
}

async fn core_and_ci() -> (Arc<Core>, CiConfig, DevIssuer) {
    let core = Core::new(
        Arc::new(strongroom_storage::MemoryStorage::new()),
        CoreConfig::default(),
        Seal::Shamir,
    );
    let (shares, _) = core.initialize(1, 1, Some("root".into())).await.unwrap();
    for share in shares {
        core.submit_unseal_share(share).await.unwrap();
    }
    let issuer = DevIssuer::generate().unwrap();
    let ci = CiConfig {
        issuer: ISS.into(),
        public_keys: vec![issuer.public_pem()],
        audiences: vec![AUD.into()],
        ..Default::default()
    };
    (core, ci, issuer)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn job(
    issuer: &DevIssuer,
    project: &str,
    git_ref: &str,
    env: Option<&str>,
    protected: bool,
) -> String {
    let t = now();
    let mut c = json!({
        "iss": ISS, "aud": AUD, "sub": format!("project_path:{project}:ref_type:branch:ref:{git_ref}"),
        "iat": t, "nbf": t - 5, "exp": t + 300,
        "project_path": project, "project_id": "42", "ref": git_ref, "ref_type": "branch",
        "ref_protected": protected.to_string(),
    });
    if let Some(e) = env {
        c["environment"] = json!(e);
    }
    issuer.sign(&c).unwrap()
}

fn value(s: &str) -> Option<Zeroizing<String>> {
    Some(Zeroizing::new(s.to_owned()))
}

#[tokio::test]
async fn people_grants_secrets_and_jobs_end_to_end() {
    let (m, issuer) = setup().await;
    let root = m.authenticate("root").await.unwrap();
    assert_eq!(root, Actor::Root);
    assert!(matches!(
        m.authenticate("nope").await,
        Err(Error::Unauthenticated(_))
    ));

    let alice = m.user_create(root, "alice", "Alice", false).await.unwrap();
    let bob = m.user_create(root, "bob", "", false).await.unwrap();
    assert!(matches!(
        m.user_create(Actor::User(alice.id), "eve", "", true).await,
        Err(Error::Forbidden)
    ));
    let pat = m.pat_create(root, "alice", "laptop", None).await.unwrap();
    let alice_actor = m.authenticate(&pat).await.unwrap();
    assert_eq!(alice_actor, Actor::User(alice.id));

    let grp = m.group_create(root, "grp", "", None).await.unwrap();
    m.group_create(root, "sub", "", Some("grp")).await.unwrap();
    m.project_create(root, "app", "grp/sub", "", None)
        .await
        .unwrap();
    m.member_set(root, "grp", "alice", Some(AccessLevel::Maintainer))
        .await
        .unwrap();
    m.member_set(root, "grp/sub/app", "bob", Some(AccessLevel::Developer))
        .await
        .unwrap();

    // Maintainers may not initialize; owners (and admins) may.
    assert!(matches!(
        m.initialize(alice_actor, "grp/sub/app").await,
        Err(Error::Forbidden)
    ));
    let sm = m.initialize(root, "grp/sub/app").await.unwrap();
    assert_eq!(
        sm.namespace,
        format!(
            "sm-p{}",
            m.directory()
                .await
                .unwrap()
                .project_by_path("grp/sub/app")
                .unwrap()
                .id
        )
    );
    m.initialize(root, "grp").await.unwrap();

    // A Maintainer writes scoped secrets; a Developer is refused.
    let scoped = |env: &str, branch: &str, v: &str| SecretInput {
        value: value(v),
        environment: Some(env.into()),
        branch: Some(branch.into()),
        ..Default::default()
    };
    m.secret_create(
        alice_actor,
        "grp/sub/app",
        "DB_PASSWORD",
        scoped("production", "main", "p1"),
    )
    .await
    .unwrap();
    m.secret_create(
        alice_actor,
        "grp/sub/app",
        "REVIEW_TOKEN",
        scoped("review/*", "*", "r1"),
    )
    .await
    .unwrap();
    m.secret_create(alice_actor, "grp/sub/app", "ANY", scoped("*", "*", "a1"))
        .await
        .unwrap();
    let group_secret = SecretInput {
        value: value("g1"),
        environment: Some("*".into()),
        protected: Some(true),
        ..Default::default()
    };
    m.secret_create(root, "grp", "SHARED", group_secret.clone())
        .await
        .unwrap();
    m.secret_create(
        root,
        "grp",
        "ANY",
        SecretInput {
            protected: Some(false),
            ..group_secret
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        m.secret_create(
            Actor::User(bob.id),
            "grp/sub/app",
            "X",
            scoped("*", "*", "x")
        )
        .await,
        Err(Error::Forbidden)
    ));
    assert!(matches!(
        m.secret_create(
            alice_actor,
            "grp/sub/app",
            "bad-name",
            scoped("*", "*", "x")
        )
        .await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        m.secret_create(alice_actor, "grp/sub/app", "ANY", scoped("*", "*", "x"))
            .await,
        Err(Error::Conflict(_))
    ));

    // Values are readable only with READ_VALUE: not by default, even for an Owner.
    assert!(matches!(
        m.secret_get(root, "grp/sub/app", "DB_PASSWORD", true, None)
            .await,
        Err(Error::Forbidden)
    ));
    let meta = m
        .secret_get(alice_actor, "grp/sub/app", "DB_PASSWORD", false, None)
        .await
        .unwrap();
    assert!(meta.value.is_none());
    assert!(matches!(
        m.secret_get(
            Actor::User(bob.id),
            "grp/sub/app",
            "DB_PASSWORD",
            false,
            None
        )
        .await,
        Err(Error::Forbidden)
    ));
    m.permission_set(
        root,
        "grp/sub/app",
        Principal::User(bob.id),
        vec![Action::ReadValue],
        None,
    )
    .await
    .unwrap();
    let v = m
        .secret_get(
            Actor::User(bob.id),
            "grp/sub/app",
            "DB_PASSWORD",
            true,
            None,
        )
        .await
        .unwrap();
    assert_eq!(v.value.as_deref().map(String::as_str), Some("p1"));
    m.permission_set(root, "grp/sub/app", Principal::User(bob.id), vec![], None)
        .await
        .unwrap();
    assert!(matches!(
        m.secret_get(
            Actor::User(bob.id),
            "grp/sub/app",
            "DB_PASSWORD",
            true,
            None
        )
        .await,
        Err(Error::Forbidden)
    ));

    // Versions, a stale metadataCas, rollback.
    let upd = m
        .secret_update(
            alice_actor,
            "grp/sub/app",
            "DB_PASSWORD",
            SecretInput {
                value: value("p2"),
                ..Default::default()
            },
            Some(meta.metadata_version),
        )
        .await
        .unwrap();
    assert_eq!(upd.version, 2);
    assert!(matches!(
        m.secret_update(
            alice_actor,
            "grp/sub/app",
            "DB_PASSWORD",
            SecretInput {
                value: value("p3"),
                ..Default::default()
            },
            Some(meta.metadata_version)
        )
        .await,
        Err(Error::Conflict(_))
    ));
    m.permission_set(
        root,
        "grp/sub/app",
        Principal::Role(AccessLevel::Maintainer),
        vec![Action::ReadValue],
        None,
    )
    .await
    .unwrap();
    let old = m
        .secret_get(alice_actor, "grp/sub/app", "DB_PASSWORD", true, Some(1))
        .await
        .unwrap();
    assert_eq!(old.value.as_deref().map(String::as_str), Some("p1"));
    let rb = m
        .secret_rollback(alice_actor, "grp/sub/app", "DB_PASSWORD", 1)
        .await
        .unwrap();
    assert_eq!(rb.version, 3);

    // Jobs: exactly what their scope allows, project over group, sorted, one round trip.
    let names = |r: &strongroom_manager::CiSecrets| {
        r.secrets
            .iter()
            .map(|s| format!("{}={}@{}", s.name, s.value.as_str(), s.source))
            .collect::<Vec<_>>()
    };
    let prod = m
        .ci_secrets(
            &job(&issuer, "grp/sub/app", "main", Some("production"), true),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        names(&prod),
        [
            "ANY=a1@grp/sub/app",
            "DB_PASSWORD=p1@grp/sub/app",
            "SHARED=g1@grp"
        ]
    );
    let review = m
        .ci_secrets(
            &job(&issuer, "grp/sub/app", "feat", Some("review/feat"), false),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        names(&review),
        ["ANY=a1@grp/sub/app", "REVIEW_TOKEN=r1@grp/sub/app"]
    );
    let asked = vec![
        "DB_PASSWORD".to_owned(),
        "NOPE".to_owned(),
        "ANY".to_owned(),
    ];
    let r = m
        .ci_secrets(
            &job(&issuer, "grp/sub/app", "feat", None, false),
            Some(&asked),
        )
        .await
        .unwrap();
    assert_eq!(names(&r), ["ANY=a1@grp/sub/app"]);
    assert_eq!(r.missing, ["DB_PASSWORD", "NOPE"]);
    let other = m
        .ci_secrets(
            &job(&issuer, "other/app", "main", Some("production"), true),
            None,
        )
        .await
        .unwrap();
    assert!(other.secrets.is_empty());
    let forged = DevIssuer::generate().unwrap();
    assert!(matches!(
        m.ci_secrets(&job(&forged, "grp/sub/app", "main", None, true), None)
            .await,
        Err(Error::Unauthenticated(_))
    ));

    // Deprovisioning destroys the secrets; the job gets only the group's.
    m.deprovision(root, "grp/sub/app").await.unwrap();
    let after = m
        .ci_secrets(
            &job(&issuer, "grp/sub/app", "main", Some("production"), true),
            None,
        )
        .await
        .unwrap();
    assert_eq!(names(&after), ["ANY=g1@grp", "SHARED=g1@grp"]);
    let _ = grp;
}

/// Two managers over one store stand for two nodes: what one changes, the other sees on
/// its next request, and restarting (a new manager) loads everything back.
#[tokio::test]
async fn a_change_on_one_node_is_seen_by_the_next_request_on_another() {
    let (core, ci, _) = core_and_ci().await;
    let a = Manager::new(
        InProcess::system(core.clone()),
        ci.clone(),
        Limits::default(),
    );
    let b = Manager::new(
        InProcess::system(core.clone()),
        ci.clone(),
        Limits::default(),
    );
    a.user_create(Actor::Root, "alice", "", false)
        .await
        .unwrap();
    assert!(b.directory().await.unwrap().user_by_name("alice").is_some());
    b.group_create(Actor::Root, "grp", "", None).await.unwrap();
    b.project_create(Actor::Root, "app", "grp", "", None)
        .await
        .unwrap();
    a.member_set(Actor::Root, "grp/app", "alice", Some(AccessLevel::Owner))
        .await
        .unwrap();
    let pat = b.pat_create(Actor::Root, "alice", "t", None).await.unwrap();
    let alice = a.authenticate(&pat).await.unwrap();
    b.initialize(alice, "grp/app").await.unwrap();
    assert_eq!(
        a.secrets_manager("grp/app")
            .await
            .unwrap()
            .1
            .unwrap()
            .status
            .name(),
        "ACTIVE"
    );
    // Ids stay unique across nodes.
    let u1 = a.user_create(Actor::Root, "u1", "", false).await.unwrap();
    let u2 = b.user_create(Actor::Root, "u2", "", false).await.unwrap();
    assert_ne!(u1.id, u2.id);
    let restarted = Manager::new(InProcess::system(core), ci, Limits::default());
    let d = restarted.directory().await.unwrap();
    assert_eq!(d.users().count(), 3);
    assert_eq!(
        d.effective_level(
            alice_id(&d),
            strongroom_manager::directory::Node::Project(d.project_by_path("grp/app").unwrap().id)
        ),
        Some(AccessLevel::Owner)
    );
}

fn alice_id(d: &strongroom_manager::directory::Directory) -> u64 {
    d.user_by_name("alice").unwrap().id
}

#[derive(Default)]
struct Capture(std::sync::Mutex<Vec<String>>);

impl strongroom_manager::audit::AuditSink for Capture {
    fn record(&self, e: &strongroom_manager::audit::AuditEvent) -> strongroom_manager::Result<()> {
        self.0
            .lock()
            .unwrap()
            .push(serde_json::to_string(e).unwrap());
        Ok(())
    }
}

/// Every read of a value (by a person or a job), create, update, delete and permission
/// change is one event with GitLab's name; no event carries a value.
#[tokio::test]
async fn every_access_is_one_audit_event_and_none_carries_a_value() {
    let (core, ci, issuer) = core_and_ci().await;
    let sink = Arc::new(Capture::default());
    let m = Manager::new(InProcess::system(core), ci, Limits::default()).with_audit(sink.clone());
    let root = Actor::Root;
    m.user_create(root, "alice", "", false).await.unwrap();
    m.group_create(root, "grp", "", None).await.unwrap();
    m.project_create(root, "app", "grp", "", None)
        .await
        .unwrap();
    m.member_set(root, "grp/app", "alice", Some(AccessLevel::Maintainer))
        .await
        .unwrap();
    let alice = Actor::User(
        m.directory()
            .await
            .unwrap()
            .user_by_name("alice")
            .unwrap()
            .id,
    );
    m.initialize(root, "grp/app").await.unwrap();
    let input = SecretInput {
        value: value("s3cr3t-value"),
        environment: Some("*".into()),
        branch: Some("*".into()),
        ..Default::default()
    };
    m.secret_create(alice, "grp/app", "TOKEN", input)
        .await
        .unwrap();
    m.secret_update(
        alice,
        "grp/app",
        "TOKEN",
        SecretInput {
            value: value("s3cr3t-value-2"),
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    m.permission_set(
        root,
        "grp/app",
        Principal::Role(AccessLevel::Maintainer),
        vec![Action::ReadValue],
        None,
    )
    .await
    .unwrap();
    m.secret_get(alice, "grp/app", "TOKEN", true, None)
        .await
        .unwrap();
    m.ci_secrets(&job(&issuer, "grp/app", "main", None, false), None)
        .await
        .unwrap();
    m.secret_delete(root, "grp/app", "TOKEN").await.unwrap();
    let events = sink.0.lock().unwrap().clone();
    let names: Vec<String> = events
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(e).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "secrets_manager_initialize_project_secrets_manager",
            "secrets_manager_create_project_secret",
            "secrets_manager_update_project_secret",
            "secrets_manager_update_project_secrets_permission",
            "secrets_manager_read_project_secret",
            "secrets_manager_read_project_secret",
            "secrets_manager_delete_project_secret",
        ]
    );
    assert!(
        events[5].contains("\"type\":\"job\"") && events[5].contains("grp/app"),
        "{}",
        events[5]
    );
    assert!(events.iter().all(|e| !e.contains("s3cr3t")), "{events:?}");
}
