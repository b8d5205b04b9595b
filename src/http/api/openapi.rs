//! The OpenAPI 3 document of everything [`super::routes`] serves, at
//! `GET /api/openapi.json` (no token needed). Each operation is described
//! by `#[utoipa::path]` on its handler and the `ToSchema` types it reads
//! and answers with, so it changes with the code; the errors every
//! operation can meet (401, 405, 414, 429, 431, 503, and 404/413/415 where
//! they apply) are added once here by [`CommonErrors`]. The test
//! `openapi::the_document_lists_exactly_the_served_routes` holds the
//! document to [`super::ROUTES`].

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::http::error::ErrorBody;
use crate::http::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "verdict",
        description = "Scores items with the task's live model and queues the uncertain ones \
            for human review. Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}` \
            with a stable `code`. Under /api/v1 send `Authorization: Bearer <token>` \
            (`verdict token create --name NAME`)."
    ),
    paths(
        super::healthz,
        super::readyz,
        super::metrics::metrics,
        document,
        super::list_tasks,
        super::monitoring::alerts,
        super::monitoring::task_monitoring,
        super::advisor::advisor,
        super::deployment::get,
        super::deployment::put,
        super::deployment::rollback,
        super::deployment::promote,
        super::deployment::withdraw,
        super::submit_items,
        super::get_item,
        super::jobs::create,
        super::jobs::get,
        super::jobs::results,
        super::export::labels,
        super::export::snapshot_create,
        super::export::snapshot_list,
        super::export::snapshot_get,
        super::export::snapshot_file,
    ),
    components(schemas(ErrorBody)),
    modifiers(&CommonErrors),
    tags(
        (name = "health", description = "Liveness, readiness and Prometheus metrics"),
        (name = "tasks", description = "Tasks and their settings"),
        (name = "items", description = "Scoring items and reading their verdicts"),
        (name = "jobs", description = "Batch scoring of a CSV or JSONL file"),
        (name = "labels", description = "Label export and dataset snapshots"),
        (name = "monitoring", description = "Monitoring, alerts and the automation advisor"),
        (name = "deployment", description = "Shadow and canary candidates, promotion, rollback"),
    )
)]
pub struct ApiDoc;

/// This document (OpenAPI 3.1), with the `task` parameters limited to the
/// tasks this server has (any other name is a 404 `unknown_task`).
#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "the OpenAPI document", body = serde_json::Value)))]
pub async fn document(state: web::Data<AppState>) -> HttpResponse {
    let names: Vec<String> = state.tasks.all().map(|t| t.name().to_string()).collect();
    let mut doc = ApiDoc::openapi();
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            for p in op.parameters.iter_mut().flatten() {
                if p.name == "task" {
                    p.schema = Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(names.iter().cloned()))
                            .into(),
                    );
                }
            }
        }
    }
    HttpResponse::Ok().json(doc)
}

/// The `{task}` of a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documentation only
pub struct TaskParam {
    /// The task's name (`GET /api/v1/tasks` lists them).
    task: String,
}

/// An item to score: its id (the key that makes a retry safe) and its
/// features by name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documentation only: `body::submissions` reads the body
pub struct ItemInput {
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,128}$", min_length = 1, max_length = 128)]
    id: String,
    /// Feature name to value: the live model's features (`features` in
    /// `GET /api/v1/tasks`); others, or a missing one, are a 400.
    input: BTreeMap<String, f64>,
}

/// Several items scored in one request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documentation only
pub struct BatchInput {
    #[schema(min_items = 1, max_items = 1000)]
    items: Vec<ItemInput>,
}

/// One item, or a batch.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only
pub enum Submission {
    One(ItemInput),
    Batch(BatchInput),
}

/// A batch's results, or one known item's stored result.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only
pub(super) enum Scored {
    Batch(super::Batch),
    One(Box<crate::items::ItemDoc>),
}

/// The errors any operation can meet, added to each where the operation
/// does not say otherwise, and the bearer scheme on /api/v1.
struct CommonErrors;

const BEARER: &str = "bearer";

impl Modify for CommonErrors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (name, description, header) in [
            ("BadRequest", "the request could not be read as sent", None),
            (
                "Unauthorized",
                "unauthorized: no valid API token (`Authorization: Bearer <token>`)",
                Some(("WWW-Authenticate", "`Bearer`", Type::String)),
            ),
            ("NotFound", "unknown_task, or not_found", None),
            (
                "MethodNotAllowed",
                "method_not_allowed: the path takes other methods",
                Some(("Allow", "the methods the path takes", Type::String)),
            ),
            ("PayloadTooLarge", "payload_too_large", None),
            ("UriTooLong", "uri_too_long", None),
            (
                "UnsupportedMediaType",
                "unsupported_media_type: send the body with the type documented",
                None,
            ),
            (
                "RateLimited",
                "rate_limited: too many requests from this client; try again after Retry-After",
                Some(("Retry-After", "seconds to wait", Type::Integer)),
            ),
            ("HeaderTooLarge", "header_too_large", None),
            (
                "Unavailable",
                "unavailable: the database is busy or unreachable; try again",
                None,
            ),
        ] {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .build();
            let mut response = ResponseBuilder::new()
                .description(description)
                .content("application/json", content);
            if let Some((name, description, ty)) = header {
                response = response.header(
                    name,
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(ty))
                        .description(Some(description))
                        .build(),
                );
            }
            components
                .responses
                .insert(name.to_string(), RefOr::T(response.build()));
        }

        for (path, item) in doc.paths.paths.iter_mut() {
            let api = path.starts_with("/api/v1/");
            for op in operations(item) {
                let mut add = |status: &str, name: &str| {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                };
                add("405", "MethodNotAllowed");
                add("414", "UriTooLong");
                add("431", "HeaderTooLarge");
                if api || path == "/metrics" {
                    add("401", "Unauthorized");
                    add("503", "Unavailable");
                }
                if api {
                    add("429", "RateLimited");
                }
                if path.contains('{') {
                    add("404", "NotFound");
                }
                if op.request_body.is_some() {
                    add("400", "BadRequest");
                    add("413", "PayloadTooLarge");
                    add("415", "UnsupportedMediaType");
                }
                if api {
                    op.security =
                        Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
                } else if path == "/metrics" {
                    // A token only when `[monitoring] metrics_token` is set.
                    op.security = Some(vec![
                        SecurityRequirement::default(),
                        SecurityRequirement::new(BEARER, Vec::<String>::new()),
                    ]);
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}
