//! What the terminal's and the hub's `GET /v1/openapi.json` share: the error document's
//! schema, the answers every route gives (the bearer scheme's 401, 413 on a body, 500 on
//! a fault), and each refusal's codes made machine-readable.
//!
//! A refusal is written in a handler's `#[utoipa::path]` as `body = ErrorDoc` with its
//! codes in backticks in the description (`` `phone_taken`: … ``); [`finish`] narrows
//! that answer's `error.code` to exactly those codes, so a client (and the API fuzzer)
//! can tell a code the operation does not give from one it does.

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder};

use crate::error::{Code, Error};

/// The error document of interface.md, as `Error::to_json` writes it (a unit test holds
/// the two together): `{"error": {"code", "message", "rows"?}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorDoc {
    pub error: ErrorBody,
}

fn code_schema() -> utoipa::openapi::schema::Object {
    crate::views::schema::string_enum(Code::ALL.map(Code::as_str))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The stable code scripts match on.
    #[schema(schema_with = code_schema)]
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// A refused file's bad rows (a member import), each with its line; absent otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub rows: Vec<BadRow>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BadRow {
    /// The line in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

impl From<Error> for ErrorDoc {
    fn from(e: Error) -> ErrorDoc {
        ErrorDoc {
            error: ErrorBody {
                code: e.code.as_str(),
                message: e.message,
                rows: e
                    .rows
                    .into_iter()
                    .map(|(line, reason)| BadRow { line, reason })
                    .collect(),
            },
        }
    }
}

/// Every operation of a path.
pub fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// The error document as an answer (its codes are narrowed by [`finish`]).
pub fn refusal(description: &str) -> RefOr<utoipa::openapi::Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(<ErrorDoc as utoipa::ToSchema>::name())))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build()
        .into()
}

/// Adds a refusal to an operation unless its attribute already describes that status.
pub fn answers(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| refusal(description));
}

/// Marks every operation of `doc` as behind the bearer scheme `scheme`, with its 401.
pub fn guarded(doc: &mut OpenApi, scheme: &str, unauthorized: &str) {
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            op.security = Some(vec![SecurityRequirement::new(scheme, Vec::<String>::new())]);
            answers(op, "401", unauthorized);
        }
    }
}

/// The codes a refusal's description names in backticks, in the order given.
pub fn codes_named(description: &str) -> Vec<Code> {
    let mut out = Vec::new();
    for word in description.split('`').skip(1).step_by(2) {
        if let Some(c) = Code::ALL.iter().find(|c| c.as_str() == word) {
            if !out.contains(c) {
                out.push(*c);
            }
        }
    }
    out
}

/// The schema of an error document whose code is one of `codes`.
fn error_with(codes: &[Code]) -> Schema {
    let code = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(codes.iter().map(|c| c.as_str())));
    let narrowed = ObjectBuilder::new().schema_type(Type::Object).property(
        "error",
        ObjectBuilder::new().schema_type(Type::Object).property("code", code),
    );
    AllOfBuilder::new()
        .item(Ref::from_schema_name(<ErrorDoc as utoipa::ToSchema>::name()))
        .item(narrowed)
        .build()
        .into()
}

fn is_error_doc(schema: &Option<RefOr<Schema>>) -> bool {
    let name = <ErrorDoc as utoipa::ToSchema>::name();
    matches!(schema, Some(RefOr::Ref(r)) if r.ref_location == format!("#/components/schemas/{name}"))
}

/// Operations that never fail on the machine's account, so never answer 500.
pub struct Finish<'a> {
    pub no_fault: &'a [&'a str],
    /// The largest JSON body, for the 413's description.
    pub body_limit: &'a str,
}

/// What every operation shares: path parameters are required (OpenAPI says so, and a
/// route without one is another route); 413 on a body, 500 on a fault; each refusal's
/// codes narrowed to those its description names.
pub fn finish(doc: &mut OpenApi, f: &Finish) {
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            for p in op.parameters.iter_mut().flatten() {
                if p.parameter_in == ParameterIn::Path {
                    p.required = Required::True;
                }
            }
            if op.request_body.is_some() {
                answers(
                    op,
                    "413",
                    &format!("`invalid_input`: the body is over {}.", f.body_limit),
                );
            }
            if !op.operation_id.as_deref().is_some_and(|id| f.no_fault.contains(&id)) {
                answers(op, "500", "`internal`: a fault of the machine, not of the request.");
            }
            for answer in op.responses.responses.values_mut() {
                let RefOr::T(answer) = answer else { continue };
                let codes = codes_named(&answer.description);
                for content in answer.content.values_mut() {
                    if is_error_doc(&content.schema) && !codes.is_empty() {
                        content.schema = Some(RefOr::T(error_with(&codes)));
                    }
                }
            }
        }
    }
}

/// What is wrong with a finished description's refusals: one that names no code, or a
/// code under a status it is never answered with. Empty when all is well (unit tests
/// of both daemons hold it so).
pub fn problems(doc: &OpenApi) -> Vec<String> {
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let mut item = item.clone();
        for op in operations(&mut item) {
            let id = op.operation_id.clone().unwrap_or_else(|| path.clone());
            for (status, answer) in &op.responses.responses {
                let RefOr::T(answer) = answer else { continue };
                let errors = answer.content.values().any(|c| match &c.schema {
                    Some(RefOr::T(Schema::AllOf(_))) => true,
                    other => is_error_doc(other),
                });
                if !errors {
                    continue;
                }
                let codes = codes_named(&answer.description);
                if codes.is_empty() {
                    out.push(format!("{id} {status}: names no code"));
                }
                for c in codes {
                    let fits = c.http_status().to_string() == *status
                        || (c == Code::InvalidInput && ["408", "413"].contains(&status.as_str()));
                    if !fits {
                        out.push(format!("{id} {status}: {c} is answered with {}", c.http_status()));
                    }
                }
            }
        }
    }
    out
}

/// The answer of `GET /v1/openapi.json`: the description, serialized once per process
/// when the router was built (it depends on the code alone).
pub fn answer(built: Option<&Bytes>) -> Response {
    match built {
        Some(doc) => ([(header::CONTENT_TYPE, "application/json")], doc.clone()).into_response(),
        None => Error::internal("the description was not built").into_response(),
    }
}

/// The description as `answer` serves it.
pub fn serialized(doc: &OpenApi) -> Bytes {
    Bytes::from(serde_json::to_vec(doc).expect("a description serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_document_is_what_errors_write() {
        for code in Code::ALL {
            let e = Error::new(code, "why");
            assert_eq!(serde_json::to_value(ErrorDoc::from(e.clone())).unwrap(), e.to_json());
        }
        let mut e = Error::invalid("2 bad rows");
        e.rows = vec![(2, "bad phone".into()), (5, "card taken".into())];
        assert_eq!(serde_json::to_value(ErrorDoc::from(e.clone())).unwrap(), e.to_json());
    }

    #[test]
    fn codes_are_read_from_backticks_only() {
        let d = "`phone_taken`: the phone has a member; `idempotency_conflict`, not phone_taken or `replayed`.";
        assert_eq!(codes_named(d), [Code::PhoneTaken, Code::IdempotencyConflict]);
        assert!(codes_named("no codes here").is_empty());
    }
}
