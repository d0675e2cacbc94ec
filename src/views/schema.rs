//! Field schemas for `GET /v1/openapi.json` that say what the code checks or writes,
//! where a type alone says less (a card number's pattern, a quantity's bounds).

use utoipa::openapi::schema::{
    Array, ArrayBuilder, KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type,
};

use crate::model::{MAX_POINTS_INPUT, MAX_QTY, MAX_UNIT_PRICE};

/// What `model::canonical_card` takes: 4 to 32 letters or digits, with spaces, colons
/// and dashes anywhere.
pub const CARD_PATTERN: &str = "^[ :-]*([0-9A-Za-z][ :-]*){4,32}$";
/// What `model::validate_pin` takes.
pub const PIN_PATTERN: &str = "^[0-9]{4,8}$";
/// Text without control characters (`char::is_control`: U+0000-001F, U+007F-009F),
/// written without `\p{..}` classes, which not every regex engine knows.
pub const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// A tag: no control characters, no `;` (the CSV's tag separator).
pub const TAG_PATTERN: &str = "^[^;\\u0000-\\u001f\\u007f-\\u009f]*$";
/// What `model::check_staff_id` takes.
pub const STAFF_ID_PATTERN: &str = "^[0-9A-Za-z._-]{1,32}$";

fn string(nullable: bool) -> ObjectBuilder {
    let ty = match nullable {
        true => SchemaType::from_iter([Type::String, Type::Null]),
        false => SchemaType::Type(Type::String),
    };
    ObjectBuilder::new().schema_type(ty)
}

pub fn card() -> Object {
    string(false).pattern(Some(CARD_PATTERN)).build()
}

/// A card that may be left out or null (an enrolment without one gets a virtual card).
pub fn card_or_null() -> Object {
    string(true).pattern(Some(CARD_PATTERN)).build()
}

/// An optional PIN (null is taken as none).
pub fn pin() -> Object {
    string(true).pattern(Some(PIN_PATTERN)).build()
}

/// A PIN that must be given.
pub fn required_pin() -> Object {
    string(false).pattern(Some(PIN_PATTERN)).build()
}

pub fn staff_id() -> Object {
    string(false).pattern(Some(STAFF_ID_PATTERN)).build()
}

/// A `MM-DD` birthday, or null (which clears it where a field may).
pub fn birthday() -> Object {
    string(true)
        .pattern(Some("^[0-9]{2}-[0-9]{2}$"))
        .examples(["03-14"])
        .build()
}

/// Text `model::check_text` takes: 1 to `max` characters (counted after trimming where
/// the code trims, so the bound is not declared there), no control characters.
pub fn text(max: Option<usize>) -> Object {
    string(false)
        .min_length(Some(1))
        .max_length(max)
        .pattern(Some(NO_CONTROL))
        .build()
}

/// Tags of a member (`model::check_tags`): at most 20, each 1 to 32 characters after
/// trimming, without `;` or control characters.
pub fn tags(nullable: bool) -> Array {
    let ty = match nullable {
        true => SchemaType::from_iter([Type::Array, Type::Null]),
        false => SchemaType::Type(Type::Array),
    };
    let tag = string(false).min_length(Some(1)).pattern(Some(TAG_PATTERN));
    ArrayBuilder::new()
        .schema_type(ty)
        .items(tag)
        .max_items(Some(20))
        .build()
}

fn int64(min: i64, max: i64, nullable: bool) -> Object {
    let ty = match nullable {
        true => SchemaType::from_iter([Type::Integer, Type::Null]),
        false => SchemaType::Type(Type::Integer),
    };
    ObjectBuilder::new()
        .schema_type(ty)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min))
        .maximum(Some(max))
        .build()
}

/// A quantity of a line (`Line::validate`, refund lines).
pub fn qty() -> Object {
    int64(1, MAX_QTY, false)
}

/// A unit price in minor units (`Line::validate`).
pub fn unit_price() -> Object {
    int64(0, MAX_UNIT_PRICE, false)
}

/// Points asked for in a sale (null is none).
pub fn redeem_points() -> Object {
    int64(0, MAX_POINTS_INPUT, true)
}

/// A page's size (`limit`): 1 to `max`.
pub fn limit(max: usize) -> Object {
    int64(1, max as i64, true)
}

/// A string that is one of `values`: what the code writes or takes.
pub fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .build()
}
