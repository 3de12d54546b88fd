//! The HTTP JSON control API over a [`Daemon`]: acquire, reset and release sandboxes, open and
//! close runs, list templates and the pool, stop the daemon. `API.md` and `openapi.json` (served
//! at `/openapi.json`) document it; every error is `{"error": {"code", "message"}}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dbsandbox_proxy::validate_key;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::daemon::{owner_process, Daemon, IsolationName, Refusal, RunRequest, Scope, ScopeRef};
use crate::registry::{KeyStats, TableRows};

/// The OpenAPI document, checked in beside the crate and served as is.
pub const OPENAPI: &str = include_str!("../openapi.json");

type Shared = State<Arc<Daemon>>;

/// An error response: status plus `{"error": {"code", "message"}}`.
pub struct ApiError(Refusal);

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError(r)
    }
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError(Refusal::new(400, "bad_request", message))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"error": {"code": self.0.code, "message": self.0.message}});
        (status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Parses an optional JSON body: empty means every field takes its default.
fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &Bytes) -> ApiResult<T> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => return Ok(T::default()),
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "request body: expected a JSON object",
            ))
        }
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/templates", get(templates))
        .route("/v1/pool", get(pool))
        .route("/v1/databases", get(databases))
        .route("/v1/refresh", post(refresh))
        .route("/v1/shutdown", post(shutdown))
        .route("/v1/sandboxes", post(acquire).get(list_sandboxes))
        .route(
            "/v1/sandboxes/{key}",
            get(one_sandbox).delete(release_sandbox),
        )
        .route("/v1/sandboxes/{key}/reset", post(reset_sandbox))
        .route("/v1/sandboxes/{key}/snapshot", post(snapshot_sandbox))
        .route("/v1/runs", post(open_run).get(list_runs))
        .route("/v1/runs/{id}", get(one_run).delete(close_run))
        .fallback(|| async {
            ApiError(Refusal::new(
                404,
                "not_found",
                "no such route (see /openapi.json)",
            ))
        })
        .method_not_allowed_fallback(|| async {
            ApiError(Refusal::new(
                405,
                "method_not_allowed",
                "this route does not take that method (see /openapi.json)",
            ))
        })
        .layer(axum::middleware::from_fn_with_state(daemon.clone(), guard))
        .with_state(daemon)
}

/// Checks the token (when the daemon has one) and restarts the idle clock.
async fn guard(State(daemon): Shared, request: Request, next: Next) -> Response {
    daemon.touch();
    let open = matches!(request.uri().path(), "/v1/health" | "/openapi.json");
    if let (Some(token), false) = (&daemon.config.token, open) {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return ApiError(Refusal::new(
                401,
                "unauthorized",
                "this daemon needs `Authorization: Bearer <token>`: the token is in its record \
                 (<cache>/daemons/<project>.json, readable by its owner only), in \
                 `dbsandbox serve --detach` output and in $DBSANDBOX_TOKEN under `dbsandbox run`",
            ))
            .into_response();
        }
    }
    as_json_error(next.run(request).await).await
}

/// axum's own rejections (a malformed path or query) are plain text: restate them in the API's
/// error shape, so that every error a client sees is JSON.
async fn as_json_error(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let code = if status.is_server_error() {
        "internal"
    } else {
        "bad_request"
    };
    let message = if text.is_empty() {
        status.to_string()
    } else {
        text
    };
    ApiError(Refusal::new(status.as_u16(), code, message)).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn health() -> Json<Value> {
    Json(json!({
        "status": "ok",
        "pid": std::process::id(),
        "version": env!("CARGO_PKG_VERSION"),
        "api_version": crate::API_VERSION,
    }))
}

async fn status(State(daemon): Shared) -> Json<Value> {
    let template = daemon.template();
    Json(json!({
        "daemon": {
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": daemon.started.elapsed().as_secs_f64(),
            "idle_timeout_seconds": daemon.config.idle_timeout.map(|d| d.as_secs()),
            "proxy": daemon.api_scope.proxy_addr.to_string(),
            "project": daemon.config.schema.project_root,
            "runs": daemon.runs().len(),
            "sandboxes": daemon.api_scope.registry.len(),
            "recoveries": daemon.recoveries(),
            "tls": daemon.proxy_tls.is_some(),
            "tls_ca_cert": tls_ca_cert(&daemon),
        },
        "server": {
            "description": daemon.server_description(),
            "version_num": daemon.endpoint.version_num,
            // With the admin password: tools like #[sqlx::test] create their own databases there.
            // The API is as sensitive as the server's secret (see the README's security model).
            "url": daemon.endpoint.url(&daemon.endpoint.admin_database),
            "sandbox_role": match &daemon.endpoint.sandbox {
                Some(roles) => format!("a role per clone, member of {}", roles.owner),
                None => daemon.endpoint.user.clone(),
            },
        },
        "template": template,
        "pool": pool_json(&daemon),
    }))
}

/// The generated CA clients may verify the proxies against, if any.
fn tls_ca_cert(daemon: &Daemon) -> Option<String> {
    let ca = daemon.proxy_tls.as_ref()?.ca_cert.as_ref()?;
    Some(ca.display().to_string())
}

fn pool_json(daemon: &Daemon) -> Value {
    let stats = daemon.pool_stats();
    let pool = daemon.pool();
    json!({
        "template": daemon.template().name,
        "target_size": pool.config().size,
        "ready": stats.ready,
        "leased": stats.leased,
        "created": stats.created,
        "adopted": stats.adopted,
        "dropped": stats.dropped,
        "misses": stats.misses,
        "strategy": pool.config().strategy,
    })
}

async fn pool(State(daemon): Shared) -> Json<Value> {
    Json(pool_json(&daemon))
}

/// What `gc` must never drop: the daemon's templates and every clone its pools hold or make.
async fn databases(State(daemon): Shared) -> Json<Value> {
    Json(json!({ "databases": daemon.databases_in_use() }))
}

async fn templates(State(daemon): Shared) -> ApiResult<Json<Value>> {
    let internal = |e: String| ApiError(Refusal::new(503, "unavailable", e));
    let admin = daemon
        .endpoint
        .admin()
        .await
        .map_err(|e| internal(format!("connecting to the server: {e}")))?;
    let databases = dbsandbox_pool::list(&admin)
        .await
        .map_err(|e| internal(e.to_string()))?;
    let current = daemon.template().name;
    let templates: Vec<Value> = databases
        .iter()
        .filter(|d| d.marker.kind == dbsandbox_pool::DbKind::Template)
        .map(|d| {
            json!({
                "name": d.name,
                "fingerprint": d.marker.fingerprint,
                "project": d.marker.project,
                "state": d.marker.state,
                "current": d.name == current,
                "size_bytes": d.size_bytes,
            })
        })
        .collect();
    Ok(Json(json!({ "templates": templates })))
}

async fn refresh(State(daemon): Shared) -> ApiResult<Json<Value>> {
    let template = daemon
        .refresh()
        .await
        .map_err(|e| ApiError(Refusal::new(503, "unavailable", format!("{e:#}"))))?;
    Ok(Json(serde_json::to_value(template).unwrap_or(Value::Null)))
}

async fn shutdown(State(daemon): Shared) -> (StatusCode, Json<Value>) {
    daemon.request_shutdown();
    (StatusCode::ACCEPTED, Json(json!({"stopping": true})))
}

/// A sandbox as the API shows it.
#[derive(Serialize)]
struct SandboxView {
    key: String,
    isolation: IsolationName,
    url: String,
    database: Option<String>,
    run: Option<String>,
    owner_pid: Option<u32>,
    stats: Value,
    tables: Option<Vec<TableRows>>,
}

fn sandbox_view(scope: &Scope, key: &str, stats: &KeyStats) -> SandboxView {
    let sandbox = stats.sandbox.clone().unwrap_or_default();
    SandboxView {
        key: key.to_string(),
        isolation: scope.registry.isolation_of(key).into(),
        url: scope.url(key),
        database: stats.clone.clone(),
        run: (scope.id != "api").then(|| scope.id.clone()),
        owner_pid: scope.registry.owner_of(key).map(|o| o.pid),
        stats: json!({
            "connections_open": stats.connections_open,
            "connections_total": stats.connections_total,
            "clones_used": stats.clones_used,
            "statements": sandbox.statements,
            "commits_absorbed": sandbox.commits_absorbed,
            "errors_recovered": sandbox.errors_recovered,
            "resets": sandbox.resets,
            "broken": sandbox.broken,
        }),
        tables: None,
    }
}

async fn full_view(scope: &Scope, key: &str) -> ApiResult<SandboxView> {
    let stats = scope
        .registry
        .key_stats(key)
        .ok_or_else(|| Refusal::new(404, "not_found", format!("no sandbox with key {key}")))?;
    let mut view = sandbox_view(scope, key, &stats);
    view.tables = match scope.registry.written_tables(key).await {
        Ok(tables) => Some(tables.unwrap_or_default()),
        Err(e) => {
            tracing::warn!(key, "listing written tables: {e}");
            None
        }
    };
    Ok(view)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AcquireRequest {
    key: Option<String>,
    isolation: Option<IsolationName>,
    owner_pid: Option<u32>,
    run: Option<String>,
}

async fn acquire(State(daemon): Shared, raw: Bytes) -> ApiResult<(StatusCode, Json<SandboxView>)> {
    let request: AcquireRequest = body(&raw)?;
    let key = match request.key {
        Some(key) => {
            validate_key(&key)
                .map_err(|e| ApiError(Refusal::new(400, "invalid_key", e.message)))?;
            key
        }
        None => daemon.fresh_key(),
    };
    let owner = match request.owner_pid {
        Some(pid) => Some(owner_process(pid).map_err(ApiError::bad_request)?),
        None => None,
    };
    let scope = daemon.scope(request.run.as_deref())?;
    let isolation = request.isolation.unwrap_or(IsolationName::Rollback);
    if daemon.find_key(&key, None).is_ok() && request.run.is_none() {
        return Err(key_in_use(&key));
    }
    scope
        .registry
        .acquire(&key, isolation.into(), owner)
        .await
        .map_err(|e| match e {
            crate::registry::AcquireError::InUse => key_in_use(&key),
            crate::registry::AcquireError::Pool(message) => {
                ApiError(Refusal::new(503, "unavailable", message))
            }
        })?;
    let stats = scope.registry.key_stats(&key).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(sandbox_view(&scope, &key, &stats)),
    ))
}

fn key_in_use(key: &str) -> ApiError {
    ApiError(Refusal::new(
        409,
        "key_in_use",
        format!("sandbox key {key} is already held; release it first or choose another key"),
    ))
}

async fn list_sandboxes(State(daemon): Shared) -> Json<Value> {
    let mut views = Vec::new();
    let runs = daemon.runs();
    let scopes = std::iter::once(&daemon.api_scope).chain(runs.iter().map(|s| s.as_ref()));
    for scope in scopes {
        for (key, stats) in scope.registry.snapshot() {
            views.push(sandbox_view(scope, &key, &stats));
        }
    }
    Json(json!({ "sandboxes": views }))
}

#[derive(Deserialize, Default)]
struct RunParam {
    run: Option<String>,
}

/// The scope holding a valid `key` (the `run` parameter narrows the search).
fn scope_of_key<'a>(daemon: &'a Daemon, key: &str, query: &RunParam) -> ApiResult<ScopeRef<'a>> {
    validate_key(key).map_err(|e| ApiError(Refusal::new(400, "invalid_key", e.message)))?;
    Ok(daemon.find_key(key, query.run.as_deref())?)
}

async fn one_sandbox(
    State(daemon): Shared,
    Path(key): Path<String>,
    Query(query): Query<RunParam>,
) -> ApiResult<Json<SandboxView>> {
    let scope = scope_of_key(&daemon, &key, &query)?;
    Ok(Json(full_view(&scope, &key).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    /// A named reset point to go back to instead of the template's state.
    to: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SnapshotRequest {
    name: Option<String>,
}

async fn reset_sandbox(
    State(daemon): Shared,
    Path(key): Path<String>,
    Query(query): Query<RunParam>,
    raw: Bytes,
) -> ApiResult<Json<SandboxView>> {
    let request: ResetRequest = body(&raw)?;
    let scope = scope_of_key(&daemon, &key, &query)?;
    let done = match &request.to {
        Some(point) => scope
            .registry
            .reset_to(&key, point)
            .await
            .map_err(point_refusal)?,
        None => scope
            .registry
            .reset(&key)
            .await
            .map_err(|e| ApiError(Refusal::new(503, "unavailable", e)))?,
    };
    if !done {
        return Err(Refusal::new(404, "not_found", format!("no sandbox with key {key}")).into());
    }
    let stats = scope.registry.key_stats(&key).unwrap_or_default();
    Ok(Json(sandbox_view(&scope, &key, &stats)))
}

async fn snapshot_sandbox(
    State(daemon): Shared,
    Path(key): Path<String>,
    Query(query): Query<RunParam>,
    raw: Bytes,
) -> ApiResult<Json<SandboxView>> {
    let request: SnapshotRequest = body(&raw)?;
    let Some(point) = request.name else {
        return Err(ApiError::bad_request(
            "request body: a snapshot needs {\"name\": \"…\"}, the reset point's name",
        ));
    };
    let scope = scope_of_key(&daemon, &key, &query)?;
    if !scope
        .registry
        .take_point(&key, &point)
        .await
        .map_err(point_refusal)?
    {
        return Err(Refusal::new(404, "not_found", format!("no sandbox with key {key}")).into());
    }
    let stats = scope.registry.key_stats(&key).unwrap_or_default();
    Ok(Json(sandbox_view(&scope, &key, &stats)))
}

fn point_refusal(e: crate::registry::PointError) -> ApiError {
    use crate::registry::PointError;
    ApiError(match e {
        PointError::Conflict(message) => Refusal::new(409, "point_conflict", message),
        PointError::Missing(message) => Refusal::new(404, "not_found", message),
        PointError::Unavailable(message) => Refusal::new(503, "unavailable", message),
    })
}

async fn release_sandbox(
    State(daemon): Shared,
    Path(key): Path<String>,
    Query(query): Query<RunParam>,
) -> ApiResult<Json<Value>> {
    let scope = scope_of_key(&daemon, &key, &query)?;
    if !scope.registry.release(&key) {
        return Err(Refusal::new(404, "not_found", format!("no sandbox with key {key}")).into());
    }
    Ok(Json(json!({"key": key, "released": true})))
}

fn run_view(daemon: &Daemon, scope: &Scope) -> Value {
    let keys: BTreeMap<String, KeyStats> = scope.registry.served();
    json!({
        "id": scope.id,
        "proxy": scope.proxy_addr.to_string(),
        "database_url": scope.url("default"),
        "tls_ca_cert": tls_ca_cert(daemon),
        "owner_pid": scope.owner.map(|o| o.pid),
        "lease_seconds": scope.lease.map(|l| l.as_secs()),
        "connections_total": scope.connections_total(),
        "keys": keys,
    })
}

async fn open_run(State(daemon): Shared, raw: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let request: RunRequest = body(&raw)?;
    let scope = daemon.open_run(request).await?;
    Ok((StatusCode::CREATED, Json(run_view(&daemon, &scope))))
}

async fn list_runs(State(daemon): Shared) -> Json<Value> {
    let runs: Vec<Value> = daemon.runs().iter().map(|s| run_view(&daemon, s)).collect();
    Json(json!({ "runs": runs }))
}

async fn one_run(State(daemon): Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let scope = daemon.scope(Some(&id))?;
    Ok(Json(run_view(&daemon, &scope)))
}

async fn close_run(State(daemon): Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let scope = daemon.scope(Some(&id))?;
    let view = run_view(&daemon, &scope);
    drop(scope);
    daemon.close_run(&id).await?;
    Ok(Json(view))
}
