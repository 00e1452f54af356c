//! The secrets manager's GraphQL API at `/api/graphql`, with GitLab's names and
//! conventions: `input:` objects, payloads with `errors: [String!]!`, Relay connections
//! (`nodes`, `edges`, `pageInfo`, `count`), global IDs `gid://strongroom/<Type>/<id>`.
//!
//! Architecture invariant: resolvers translate; every decision is the domain's
//! (`strongroom_manager`). A refused action is a top-level error that does not say whether
//! the target exists; invalid input is a payload's `errors`.

#![forbid(unsafe_code)]

mod types;

use std::sync::Arc;

use async_graphql::{EmptySubscription, Schema};
use strongroom_core::api::InProcess;
use strongroom_manager::permissions::Actor;
use strongroom_manager::Manager;

pub use types::{MutationRoot, QueryRoot};

pub type ManagerRef = Arc<Manager<InProcess>>;
pub type ApiSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Deepest query accepted, and the most fields one request may resolve.
pub const MAX_DEPTH: usize = 12;
pub const MAX_COMPLEXITY: usize = 1_000;

/// The schema, with its limits on.
pub fn schema(manager: ManagerRef) -> ApiSchema {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .data(manager)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(32)
        .finish()
}

/// Run one request as `actor`.
pub async fn execute(
    schema: &ApiSchema,
    request: async_graphql::Request,
    actor: Actor,
) -> async_graphql::Response {
    schema.execute(request.data(actor)).await
}

/// The schema's SDL, as checked in at `crates/graphql/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .finish()
        .sdl()
}

/// GraphiQL, served on `GET /api/graphql`. It loads GraphiQL from its CDN in the browser;
/// the server sends only this page.
pub const GRAPHIQL: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Strongroom GraphQL</title>
<style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
<link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css">
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script crossorigin src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
<script crossorigin src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
<script crossorigin src="https://unpkg.com/graphiql@3/graphiql.min.js"></script>
<script>
  const token = window.localStorage.getItem("strongroom-token") || "";
  const fetcher = GraphiQL.createFetcher({
    url: "/api/graphql",
    headers: token ? { Authorization: "Bearer " + token } : {},
  });
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: true })
  );
</script>
</body>
</html>
"#;
