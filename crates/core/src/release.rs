//! Which pipeline jobs a scoped secret is released to: the secret's scope, kept as its
//! kv-v2 custom metadata, against the job's claims.
//!
//! Invariant: this is the one function that matches a secret's scope to a job. The kv-v2
//! engine calls it on every read in a mount with `release = "pipeline-scope"` (GitLab
//! Runner's flows on `/v1`), and the secrets manager calls it for `POST /api/ci/secrets`,
//! so the two paths cannot disagree.
//!
//! Scope keys (custom metadata): `environment` (glob on the job's `environment`; a job
//! without one matches only `*`), `branch` (project secrets: glob on `ref` when `ref_type`
//! is `branch`; tag pipelines match only `*`), `protected` (group secrets: `"true"` needs
//! `ref_protected` = `"true"`), `expires_at` (Unix seconds; not released from then on).
//! A secret without an environment, or with a value that does not parse, is released to
//! no one.

use std::collections::BTreeMap;

use strongroom_jwt::glob_match;

/// The job claims the scope is matched against (GitLab's names; strings as GitLab sends).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobClaims<'a> {
    pub environment: &'a str,
    pub git_ref: &'a str,
    /// `branch` or `tag`.
    pub ref_type: &'a str,
    pub ref_protected: &'a str,
}

impl<'a> JobClaims<'a> {
    /// From a pipeline token's metadata (the jwt role's claim mappings keep GitLab's names).
    pub fn from_metadata(m: &'a BTreeMap<String, String>) -> JobClaims<'a> {
        let get = |k: &str| m.get(k).map(String::as_str).unwrap_or_default();
        JobClaims {
            environment: get("environment"),
            git_ref: get("ref"),
            ref_type: get("ref_type"),
            ref_protected: get("ref_protected"),
        }
    }
}

fn matches(pattern: &str, value: &str) -> bool {
    pattern == "*" || (!value.is_empty() && glob_match(pattern, value))
}

/// Is a secret with `scope` released to `job` at `now` (Unix seconds)?
pub fn released(scope: &BTreeMap<String, String>, job: &JobClaims<'_>, now: i64) -> bool {
    let Some(environment) = scope.get("environment") else {
        return false;
    };
    if let Some(t) = scope.get("expires_at") {
        match t.parse::<i64>() {
            Ok(t) if now < t => {}
            _ => return false,
        }
    }
    if !matches(environment, job.environment) {
        return false;
    }
    if let Some(branch) = scope.get("branch") {
        let job_branch = if job.ref_type == "branch" {
            job.git_ref
        } else {
            ""
        };
        if !matches(branch, job_branch) {
            return false;
        }
    }
    match scope.get("protected").map(String::as_str) {
        None | Some("false") => true,
        Some("true") => job.ref_protected == "true",
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn scopes_match_as_documented() {
        let job = JobClaims {
            environment: "review/feat-1",
            git_ref: "feat-1",
            ref_type: "branch",
            ref_protected: "false",
        };
        let tag = JobClaims {
            ref_type: "tag",
            git_ref: "v1",
            ..job
        };
        let no_env = JobClaims {
            environment: "",
            ..job
        };
        assert!(released(
            &scope(&[("environment", "review/*"), ("branch", "*")]),
            &job,
            0
        ));
        assert!(released(
            &scope(&[("environment", "*"), ("branch", "feat-*")]),
            &job,
            0
        ));
        assert!(!released(
            &scope(&[("environment", "*"), ("branch", "feat-*")]),
            &tag,
            0
        ));
        assert!(released(
            &scope(&[("environment", "*"), ("branch", "*")]),
            &tag,
            0
        ));
        assert!(!released(&scope(&[("environment", "production")]), &job, 0));
        assert!(!released(
            &scope(&[("environment", "review/*")]),
            &no_env,
            0
        ));
        assert!(released(&scope(&[("environment", "*")]), &no_env, 0));
        assert!(!released(
            &scope(&[("environment", "*"), ("protected", "true")]),
            &job,
            0
        ));
        assert!(
            !released(&scope(&[("branch", "*")]), &job, 0),
            "no environment: no one"
        );
        assert!(!released(
            &scope(&[("environment", "*"), ("expires_at", "10")]),
            &job,
            10
        ));
        assert!(released(
            &scope(&[("environment", "*"), ("expires_at", "10")]),
            &job,
            9
        ));
        assert!(!released(
            &scope(&[("environment", "*"), ("expires_at", "x")]),
            &job,
            0
        ));
        assert!(!released(
            &scope(&[("environment", "*"), ("protected", "yes")]),
            &job,
            0
        ));
    }
}
