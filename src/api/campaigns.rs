//! Campaigns in the POS API: coupons bought with points, group buys (interface.md 0.2
//! "Points outside a sale", "Group buys").

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{Busy, KeyHeader, MemberParam};
use super::{blocking, reply, Asked, Shared};
use crate::service::openapi::ErrorDoc;
use crate::views::campaign::{DealView, GroupView};
use crate::views::history::MemberCouponView;
use crate::views::schema;

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(group))
        .routes(routes!(deal))
        .routes(routes!(join))
}

/// A deal id of the ruleset in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct DealParam {
    #[param(required = true)]
    deal: String,
}

/// A group id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct GroupParam {
    #[param(required = true)]
    group_id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeBody {
    /// A coupon type of the ruleset with `exchange_points`.
    #[serde(rename = "type")]
    pub type_id: String,
    /// The member's PIN, where the rules ask for one to spend points.
    #[serde(default)]
    #[schema(schema_with = schema::pin, required = false)]
    pub pin: Option<String>,
}

/// `POST /v1/members/{id}/coupons`: a coupon bought with the type's `exchange_points`.
#[utoipa::path(post, path = "/v1/members/{id}/coupons", operation_id = "exchange_coupon",
    description = "Buys a coupon with the type's `exchange_points` (kind `redeem` in the ledger, `issued_by: exchange`), with a redemption's PIN and offline-cap checks.",
    params(MemberParam, KeyHeader),
    request_body = ExchangeBody,
    responses(
        (status = 200, description = "The coupon.", body = MemberCouponView),
        (status = 400, description = "`invalid_input`: the body, the key.", body = ErrorDoc),
        (status = 404, description = "`unknown_member`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
        (status = 422, description = "`coupon_invalid` (no such type), `coupon_not_exchangeable`, `insufficient_points`, `member_inactive`, `pin_required`, `pin_invalid` (a wrong PIN is recorded), `pin_locked`, `offline_cap_exceeded`.", body = ErrorDoc),
        Busy,
    ))]
pub async fn exchange(State(st): State<Shared>, Path(id): Path<String>, a: Asked<ExchangeBody>) -> Response {
    reply(blocking(&st, move |e| {
        e.exchange_coupon(
            &id,
            &a.body.type_id,
            a.body.pin.as_deref(),
            a.key.as_deref(),
            e.at(None).by(a.actor),
        )
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    #[schema(schema_with = schema::card)]
    pub card: String,
    /// The group to join; without it a new group is opened.
    #[serde(default)]
    pub group_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/group-buys/{deal}/join", operation_id = "join_group",
    description = "A member (by card) joins a group of the deal, or opens one without `group_id`. On a terminal of a chain the join waits for the hub's word on formation.",
    params(DealParam, KeyHeader),
    request_body = JoinBody,
    responses(
        (status = 200, description = "The group.", body = GroupView),
        (status = 400, description = "`invalid_input` (the body, the key), `invalid_card`.", body = ErrorDoc),
        (status = 404, description = "`unknown_card`.", body = ErrorDoc),
        (status = 409, description = "`idempotency_conflict`.", body = ErrorDoc),
        (status = 422, description = "`deal_inactive` (no such deal, or not now), `group_closed` (no such group, or no longer open), `group_full`, `already_joined`, `card_blocked`, `member_inactive`.", body = ErrorDoc),
        Busy,
    ))]
async fn join(State(st): State<Shared>, Path(deal): Path<String>, a: Asked<JoinBody>) -> Response {
    reply(blocking(&st, move |e| {
        e.join_group(
            &deal,
            &a.body.card,
            a.body.group_id.as_deref(),
            a.key.as_deref(),
            e.at(None).by(a.actor),
        )
    }))
}

#[utoipa::path(get, path = "/v1/group-buys/{deal}", operation_id = "deal_groups",
    description = "A deal of the ruleset and its groups.",
    params(DealParam),
    responses(
        (status = 200, description = "The deal.", body = DealView),
        (status = 404, description = "`not_found`: no such deal.", body = ErrorDoc),
    ))]
async fn deal(State(st): State<Shared>, Path(deal): Path<String>) -> Response {
    reply(blocking(&st, move |e| {
        let groups = e.deal_groups(&deal)?;
        Ok(DealView { deal, groups })
    }))
}

#[utoipa::path(get, path = "/v1/group-buys/groups/{group_id}", operation_id = "get_group",
    description = "One group.",
    params(GroupParam),
    responses(
        (status = 200, description = "The group.", body = GroupView),
        (status = 404, description = "`not_found`: no such group.", body = ErrorDoc),
    ))]
async fn group(State(st): State<Shared>, Path(group_id): Path<String>) -> Response {
    reply(blocking(&st, move |e| e.group(&group_id)))
}
