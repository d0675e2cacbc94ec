//! Campaigns in the POS API: coupons bought with points, group buys (interface.md 0.2
//! "Points outside a sale", "Group buys").

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::{blocking, reply, Asked, Shared};
use crate::views::campaign::DealView;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/group-buys/groups/{group_id}", get(group))
        .route("/v1/group-buys/{deal}", get(deal))
        .route("/v1/group-buys/{deal}/join", post(join))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeBody {
    #[serde(rename = "type")]
    pub type_id: String,
    #[serde(default)]
    pub pin: Option<String>,
}

/// `POST /v1/members/{id}/coupons`: a coupon bought with the type's `exchange_points`.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    pub card: String,
    #[serde(default)]
    pub group_id: Option<String>,
}

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

async fn deal(State(st): State<Shared>, Path(deal): Path<String>) -> Response {
    reply(blocking(&st, move |e| {
        let groups = e.deal_groups(&deal)?;
        Ok(DealView { deal, groups })
    }))
}

async fn group(State(st): State<Shared>, Path(group_id): Path<String>) -> Response {
    reply(blocking(&st, move |e| e.group(&group_id)))
}
