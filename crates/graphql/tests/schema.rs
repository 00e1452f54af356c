//! The schema is checked in as `crates/graphql/schema.graphql`: a change to the API shows
//! in review. This fails when the two drift; `STRONGROOM_UPDATE_SCHEMA=1` rewrites the file.

#[test]
fn the_checked_in_schema_is_the_served_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let sdl = strongroom_graphql::sdl();
    if std::env::var_os("STRONGROOM_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &sdl).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == sdl,
        "crates/graphql/schema.graphql is not the schema served; regenerate it with \
         STRONGROOM_UPDATE_SCHEMA=1 cargo test -p strongroom-graphql --test schema"
    );
    for name in [
        "projectSecretsManager",
        "projectSecrets",
        "projectSecret",
        "projectSecretsNeedingRotation",
        "projectSecretsPermissions",
        "groupSecretsManager",
        "groupSecrets",
        "groupSecret",
        "groupSecretsNeedingRotation",
        "groupSecretsPermissions",
        "projectSecretsManagerInitialize",
        "projectSecretsManagerDeprovision",
        "projectSecretCreate",
        "projectSecretUpdate",
        "projectSecretDelete",
        "projectSecretsPermissionUpdate",
        "projectSecretsPermissionDelete",
        "groupSecretCreate",
        "groupSecretUpdate",
        "groupSecretDelete",
        "enum PrincipalType",
        "enum SecretsManagementAction",
        "enum AccessLevelEnum",
        "metadataCas",
        "namespacePath",
    ] {
        assert!(sdl.contains(name), "the schema lacks {name}");
    }
}
