//! The HTTP API (axum): the operations under `/api/v1`, bearer-token auth, JSON errors naming
//! the field, a request-size limit, `/health`, `/metrics` and an OpenAPI document at
//! `/api/v1/openapi.json`.
//!
//! The OpenAPI document is generated with `utoipa` from the handlers' annotations and the
//! request/response types, so it cannot drift from the types the handlers use.

use std::{sync::Arc, time::Instant};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use omjob_api::grammar::{DNS_LABEL_MAX, DNS_LABEL_PATTERN, is_dns_label};
use serde::{Deserialize, Serialize};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{
    PipelineClient,
    client::{Deployed, Outcome, RunStarted, ServiceStatus},
    config::ApiToken,
    diagnostics::Diagnostics,
    error::{Error, FieldError},
    metrics::{self, Metrics},
    pipeline::{self, Overrides, PipelineDefinition, PipelineType},
    runs::{Run, RunState},
};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The operations.
    pub client: Arc<PipelineClient>,
    /// Accepted bearer tokens; empty means every `/api/v1` request is refused.
    pub tokens: Arc<Vec<ApiToken>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// An error answer: what failed, the fields at fault, and what to check.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The message.
    pub error: String,
    /// Fields at fault (input errors).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
    /// What to check (Kubernetes errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// An [`Error`] or another failure, as an HTTP response.
#[derive(Debug)]
pub struct ApiError(StatusCode, ErrorBody, Option<ErrorCategory>);

/// The [`Error::category`] of a failed operation, carried in the response's extensions from the
/// handler to the metrics middleware.
#[derive(Clone, Copy, Debug)]
struct ErrorCategory(&'static str);

impl ApiError {
    fn new(status: StatusCode, field: Option<&str>, message: impl Into<String>) -> Self {
        let message = message.into();
        Self(
            status,
            ErrorBody {
                fields: field
                    .map(|f| vec![FieldError::new(f, message.clone())])
                    .unwrap_or_default(),
                error: message,
                hint: None,
            },
            None,
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Partial(_) | Error::Build { .. } | Error::Render { .. } | Error::Spool(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Error::Connect(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Kube { .. } | Error::RolledBack { .. } => match e.api_code() {
                Some(409) => StatusCode::CONFLICT,
                Some(422) => StatusCode::UNPROCESSABLE_ENTITY,
                // The cluster, not the caller, failed.
                _ => StatusCode::BAD_GATEWAY,
            },
        };
        let fields = match &e {
            Error::Invalid(list) => list.clone(),
            _ => Vec::new(),
        };
        Self(
            status,
            ErrorBody {
                error: e.to_string(),
                fields,
                hint: e.hint().map(str::to_owned),
            },
            Some(ErrorCategory(e.category())),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(self.1)).into_response();
        if let Some(category) = self.2 {
            response.extensions_mut().insert(category);
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn check_name(name: &str) -> ApiResult<()> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Some("name"),
            format!(
                "'{name}' is not a DNS label (lower-case letters, digits and '-', at most 63 characters)"
            ),
        ))
    }
}

fn body_or_error(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|r| {
        let status = r.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is larger than the limit (maxBodyBytes)".to_owned()
        } else {
            r.body_text()
        };
        ApiError::new(status, Some("body"), message)
    })
}

/// Create or update a pipeline.
#[utoipa::path(put, path = "/api/v1/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name (a DNS label)")),
    request_body(content = PipelineDefinition, description = "JSON, or YAML with Content-Type application/yaml"),
    responses((status = 200, body = Deployed), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, body = ErrorBody)),
    security(("bearer" = [])))]
async fn deploy(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Deployed>> {
    check_name(&name)?;
    let body = body_or_error(body)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let def = pipeline::parse_definition(&body, content_type)?;
    Ok(Json(s.client.deploy(def, Some(&name)).await?))
}

/// A deployed pipeline's definition (credential names only, never values).
#[utoipa::path(get, path = "/api/v1/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path)), responses((status = 200, body = PipelineDefinition), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_pipeline(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<PipelineDefinition>> {
    check_name(&name)?;
    Ok(Json(s.client.get(&name).await?))
}

/// Delete everything the pipeline owns, its runs included.
#[utoipa::path(delete, path = "/api/v1/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path)), responses((status = 200, body = Outcome), (status = 500, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_pipeline(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Outcome>> {
    check_name(&name)?;
    Ok(Json(s.client.delete(&name).await?))
}

/// Start a run now.
#[utoipa::path(post, path = "/api/v1/pipelines/{name}/runs", tag = "runs",
    params(("name" = String, Path)), responses((status = 201, body = RunStarted), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn start_run(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<RunStarted>)> {
    check_name(&name)?;
    Ok((StatusCode::CREATED, Json(s.client.run(&name).await?)))
}

/// Every run still in the cluster, newest first.
#[utoipa::path(get, path = "/api/v1/pipelines/{name}/runs", tag = "runs",
    params(("name" = String, Path)), responses((status = 200, body = Vec<Run>)), security(("bearer" = [])))]
async fn list_runs(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Vec<Run>>> {
    check_name(&name)?;
    Ok(Json(s.client.runs(&name).await?))
}

/// One run by run id or resource name; a failed run carries diagnostics.
#[utoipa::path(get, path = "/api/v1/pipelines/{name}/runs/{run}", tag = "runs",
    params(("name" = String, Path), ("run" = String, Path, description = "Run id or Job/OMJob name")),
    responses((status = 200, body = Run), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_run(
    State(s): State<AppState>,
    Path((name, run)): Path<(String, String)>,
) -> ApiResult<Json<Run>> {
    check_name(&name)?;
    Ok(Json(s.client.run_detail(&name, &run).await?))
}

/// `after` of the logs endpoint.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LogsQuery {
    /// Page index (0 when left out).
    pub after: Option<String>,
}

/// A page of the newest run's main log: `{<taskKey>: chunk, "total": "n", "after": "i+1"}`.
#[utoipa::path(get, path = "/api/v1/pipelines/{name}/logs", tag = "runs",
    params(("name" = String, Path), LogsQuery),
    responses((status = 200, description = "A page", body = Object),
              (status = 400, description = "Invalid `after`, answered as the reference does", body = Object)),
    security(("bearer" = [])))]
async fn logs(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    check_name(&name)?;
    let (key, page) = s.client.logs(&name, q.after.as_deref()).await?;
    let status = match page {
        crate::logs::Page::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    Ok((status, Json(page.to_json(&key))).into_response())
}

/// Stop the pipeline's active runs and their pods.
#[utoipa::path(post, path = "/api/v1/pipelines/{name}/kill", tag = "runs",
    params(("name" = String, Path)), responses((status = 200, body = Outcome), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn kill(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Outcome>> {
    check_name(&name)?;
    Ok(Json(s.client.kill(&name).await?))
}

/// Resume the schedule.
#[utoipa::path(post, path = "/api/v1/pipelines/{name}/enable", tag = "pipelines",
    params(("name" = String, Path)), responses((status = 200, body = Outcome), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn enable(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Outcome>> {
    check_name(&name)?;
    Ok(Json(s.client.set_enabled(&name, true).await?))
}

/// Suspend the schedule.
#[utoipa::path(post, path = "/api/v1/pipelines/{name}/disable", tag = "pipelines",
    params(("name" = String, Path)), responses((status = 200, body = Outcome), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn disable(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Outcome>> {
    check_name(&name)?;
    Ok(Json(s.client.set_enabled(&name, false).await?))
}

/// Can the service reach Kubernetes, which version, which permissions are missing.
#[utoipa::path(get, path = "/api/v1/status", tag = "service",
    responses((status = 200, body = ServiceStatus), (status = 503, body = ServiceStatus)), security(("bearer" = [])))]
async fn status(State(s): State<AppState>) -> Response {
    let st = s.client.status().await;
    let code = if st.reachable && st.missing_permissions.is_empty() && st.problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(st)).into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        s.metrics.encode(),
    )
        .into_response()
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Refuses `/api/v1` requests without an accepted `Authorization: Bearer` token.
async fn authenticate(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(t) if s.tokens.iter().any(|k| k.matches(t.trim())) => next.run(req).await,
        _ => {
            let mut r = ApiError::new(
                StatusCode::UNAUTHORIZED,
                None,
                "missing or invalid bearer token (Authorization: Bearer <token>, see apiTokens)",
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            r
        }
    }
}

async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    s.metrics.observe(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    if let Some(ErrorCategory(category)) = response.extensions().get::<ErrorCategory>() {
        s.metrics.observe_error(&route, category);
    }
    response
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Pipeline service", description = "Deploy, run, watch and debug OpenMetadata ingestion pipelines on Kubernetes."),
    paths(deploy, get_pipeline, delete_pipeline, start_run, list_runs, get_run, logs, kill, enable, disable, status),
    components(schemas(PipelineDefinition, PipelineType, Overrides, Deployed, RunStarted, Run, RunState, Diagnostics,
                       Outcome, ServiceStatus, ErrorBody, FieldError)),
    modifiers(&BearerAuth, &CommonAnswers)
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// What every operation may answer besides its own results, added to each so that the document
/// lists every status a client can see: 401 on every secured route (the auth layer answers it
/// before any handler runs), 400 where the `{name}` path segment is not a DNS label, and 500/502
/// where a Kubernetes call can fail. The `{name}` parameter is given its DNS-label grammar, so
/// that a generated client (or a fuzzer) knows which names are valid.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            ContentBuilder, Ref, ResponseBuilder,
            schema::{ObjectBuilder, Type},
        };
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        let name_schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(DNS_LABEL_MAX))
            .pattern(Some(DNS_LABEL_PATTERN))
            .build();
        for (path, item) in &mut openapi.paths.paths {
            let ops = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
            ];
            for op in ops.into_iter().flatten() {
                let answers = &mut op.responses.responses;
                if op.security.is_some() {
                    answers
                        .entry("401".into())
                        .or_insert_with(|| error("Missing or invalid bearer token").into());
                }
                if path.contains("{name}") {
                    answers.entry("400".into()).or_insert_with(|| {
                        error("Invalid input, naming the field (`name`: not a DNS label)").into()
                    });
                    answers.entry("500".into()).or_insert_with(|| {
                        error("The service failed part way (what was done is named)").into()
                    });
                    answers.entry("502".into()).or_insert_with(|| {
                        error("The Kubernetes API server failed or refused the call").into()
                    });
                }
                for param in op.parameters.iter_mut().flatten() {
                    if param.name == "name" {
                        param.schema = Some(name_schema.clone().into());
                    }
                }
            }
        }
    }
}

/// The router: `/health`, `/metrics` and `/api/v1/openapi.json` are open; the rest needs a token.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let api = Router::new()
        .route(
            "/pipelines/{name}",
            put(deploy).get(get_pipeline).delete(delete_pipeline),
        )
        .route("/pipelines/{name}/runs", post(start_run).get(list_runs))
        .route("/pipelines/{name}/runs/{run}", get(get_run))
        .route("/pipelines/{name}/logs", get(logs))
        .route("/pipelines/{name}/kill", post(kill))
        .route("/pipelines/{name}/enable", post(enable))
        .route("/pipelines/{name}/disable", post(disable))
        .route("/status", get(status))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/openapi.json", get(openapi_json))
        .nest("/api/v1", api)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
///
/// # Errors
/// When serving fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
