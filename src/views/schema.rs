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
/// What `str::trim` takes away (Unicode White_Space): fields the code trims may have
/// it, control characters among it, at either end.
const WS: &str = "[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*";
/// A character `char::is_control` refuses (U+0000-001F, U+007F-009F), written without
/// `\p{..}` classes, which not every regex engine knows.
const CONTROL: &str = "\\u0000-\\u001f\\u007f-\\u009f";
/// What `model::check_staff_id` takes.
pub const STAFF_ID_PATTERN: &str = "^[0-9A-Za-z._-]{1,32}$";

fn string(nullable: bool) -> ObjectBuilder {
    let ty = match nullable {
        true => SchemaType::from_iter([Type::String, Type::Null]),
        false => SchemaType::Type(Type::String),
    };
    ObjectBuilder::new().schema_type(ty)
}

/// Text the code trims and then checks with `model::check_text`: 1 character or more
/// after trimming, none of them a control character (`also` lists more refused ones).
/// The upper bound counts after trimming, so it is not declared.
fn trimmed_text(nullable: bool, also: &str) -> Object {
    string(nullable)
        .min_length(Some(1))
        .pattern(Some(format!("^{WS}[^{also}{CONTROL}]*{WS}$")))
        .build()
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

/// A `MM-DD` birthday (trimmed), or null (none, or on an edit: cleared).
pub fn birthday() -> Object {
    string(true)
        .pattern(Some(format!("^{WS}[0-9]{{2}}-[0-9]{{2}}{WS}$")))
        .examples(["03-14"])
        .build()
}

/// A member's or staff member's name: at most 100 characters after trimming.
pub fn name() -> Object {
    trimmed_text(false, "")
}

/// A name on an edit: null or absent leaves it.
pub fn name_or_null() -> Object {
    trimmed_text(true, "")
}

/// Any spelling of a phone number (digits, spaces, dashes, dots, brackets, a leading
/// `+` or `00`), made canonical with the config's country code.
pub fn phone() -> Object {
    string(false).examples(["+86 138-0000-0001"]).build()
}

/// A phone on an edit: null or absent leaves it.
pub fn phone_or_null() -> Object {
    string(true).build()
}

/// Text such as an adjustment's reason (1 to 200 characters after trimming).
pub fn reason() -> Object {
    trimmed_text(false, "")
}

fn tags_of(nullable: bool) -> Array {
    let ty = match nullable {
        true => SchemaType::from_iter([Type::Array, Type::Null]),
        false => SchemaType::Type(Type::Array),
    };
    // Each 1 to 32 characters after trimming, without `;` (the CSV's tag separator).
    ArrayBuilder::new()
        .schema_type(ty)
        .items(trimmed_text(false, ";"))
        .max_items(Some(20))
        .build()
}

/// A member's tags (`model::check_tags`): at most 20.
pub fn tags() -> Array {
    tags_of(false)
}

/// Tags on an edit: null or absent leaves them.
pub fn tags_or_null() -> Array {
    tags_of(true)
}

pub fn int64(min: i64, max: i64, nullable: bool) -> Object {
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

/// A string that is one of `values`: what the code writes or takes.
pub fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .build()
}
