//! Refusals and faults, each with the stable machine-readable code of interface.md.
//!
//! Every fallible operation of the library returns [`Error`]: a [`Code`] that scripts and
//! the POS match on, plus a message for people. The CLI maps it to an exit status and
//! the HTTP API to a status code; nothing above this module invents codes.

use std::fmt;

/// The stable error codes. Renaming one breaks integrations: add, never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    InvalidInput,
    InvalidCard,
    UnknownCard,
    CardBlocked,
    MemberExists,
    PhoneTaken,
    InsufficientPoints,
    BelowMinRedeem,
    RedeemExceedsShare,
    PinRequired,
    PinInvalid,
    PinLocked,
    OfflineCapExceeded,
    CouponInvalid,
    CouponUsed,
    CouponExpired,
    CouponMinSpend,
    RewardOutOfStock,
    IdempotencyConflict,
    RefundExceeds,
    Unauthorized,
    StoreBusy,
    Internal,
    /// Hub: no member with that id.
    UnknownMember,
    /// Hub: a terminal sent a record whose identity the hub holds with other content.
    SyncConflict,
    UnknownTransaction,
    /// No such route.
    NotFound,
    MethodNotAllowed,
    /// The caller's role may not do this.
    Forbidden,
    MemberInactive,
    ActivityLimit,
    CouponNotExchangeable,
    GroupFull,
    GroupClosed,
    DealInactive,
    AlreadyJoined,
    /// Too many wrong passwords for a staff id.
    StaffLocked,
}

impl Code {
    pub const ALL: [Code; 37] = [
        Code::InvalidInput,
        Code::InvalidCard,
        Code::UnknownCard,
        Code::CardBlocked,
        Code::MemberExists,
        Code::PhoneTaken,
        Code::InsufficientPoints,
        Code::BelowMinRedeem,
        Code::RedeemExceedsShare,
        Code::PinRequired,
        Code::PinInvalid,
        Code::PinLocked,
        Code::OfflineCapExceeded,
        Code::CouponInvalid,
        Code::CouponUsed,
        Code::CouponExpired,
        Code::CouponMinSpend,
        Code::RewardOutOfStock,
        Code::IdempotencyConflict,
        Code::RefundExceeds,
        Code::Unauthorized,
        Code::StoreBusy,
        Code::Internal,
        Code::UnknownMember,
        Code::SyncConflict,
        Code::UnknownTransaction,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::Forbidden,
        Code::MemberInactive,
        Code::ActivityLimit,
        Code::CouponNotExchangeable,
        Code::GroupFull,
        Code::GroupClosed,
        Code::DealInactive,
        Code::AlreadyJoined,
        Code::StaffLocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidInput => "invalid_input",
            Code::InvalidCard => "invalid_card",
            Code::UnknownCard => "unknown_card",
            Code::CardBlocked => "card_blocked",
            Code::MemberExists => "member_exists",
            Code::PhoneTaken => "phone_taken",
            Code::InsufficientPoints => "insufficient_points",
            Code::BelowMinRedeem => "below_min_redeem",
            Code::RedeemExceedsShare => "redeem_exceeds_share",
            Code::PinRequired => "pin_required",
            Code::PinInvalid => "pin_invalid",
            Code::PinLocked => "pin_locked",
            Code::OfflineCapExceeded => "offline_cap_exceeded",
            Code::CouponInvalid => "coupon_invalid",
            Code::CouponUsed => "coupon_used",
            Code::CouponExpired => "coupon_expired",
            Code::CouponMinSpend => "coupon_min_spend",
            Code::RewardOutOfStock => "reward_out_of_stock",
            Code::IdempotencyConflict => "idempotency_conflict",
            Code::RefundExceeds => "refund_exceeds",
            Code::Unauthorized => "unauthorized",
            Code::StoreBusy => "store_busy",
            Code::Internal => "internal",
            Code::UnknownMember => "unknown_member",
            Code::SyncConflict => "sync_conflict",
            Code::UnknownTransaction => "unknown_transaction",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::Forbidden => "forbidden",
            Code::MemberInactive => "member_inactive",
            Code::ActivityLimit => "activity_limit",
            Code::CouponNotExchangeable => "coupon_not_exchangeable",
            Code::GroupFull => "group_full",
            Code::GroupClosed => "group_closed",
            Code::DealInactive => "deal_inactive",
            Code::AlreadyJoined => "already_joined",
            Code::StaffLocked => "staff_locked",
        }
    }

    /// The HTTP status interface.md gives for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidInput | Code::InvalidCard => 400,
            Code::Unauthorized => 401,
            Code::Forbidden => 403,
            Code::StaffLocked => 423,
            Code::UnknownCard | Code::UnknownMember | Code::UnknownTransaction | Code::NotFound => 404,
            Code::MethodNotAllowed => 405,
            Code::IdempotencyConflict | Code::MemberExists | Code::PhoneTaken | Code::SyncConflict => 409,
            Code::StoreBusy => 503,
            Code::Internal => 500,
            _ => 422,
        }
    }

    /// True for faults of the machine rather than refusals of the request.
    pub fn is_fault(self) -> bool {
        matches!(self, Code::Internal | Code::StoreBusy)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal or fault: a stable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub message: String,
    /// Refusals of a file (a member import): each bad row's line and why.
    pub rows: Vec<(u64, String)>,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            rows: vec![],
        }
    }

    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(Code::InvalidInput, message)
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(Code::Internal, message)
    }

    /// The error document of interface.md (with `rows` where a file had bad rows).
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({"code": self.code.as_str(), "message": self.message});
        if !self.rows.is_empty() {
            error["rows"] = self
                .rows
                .iter()
                .map(|(line, reason)| serde_json::json!({"line": line, "reason": reason}))
                .collect();
        }
        serde_json::json!({ "error": error })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Error {
        Error::internal(format!("state store: {e}"))
    }
}

impl From<crate::journal::JournalError> for Error {
    fn from(e: crate::journal::JournalError) -> Error {
        Error::internal(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for returning a refusal: `refuse!(Code::UnknownCard, "no card {c}")`.
#[macro_export]
macro_rules! refuse {
    ($code:expr, $($arg:tt)*) => {
        return Err($crate::error::Error::new($code, format!($($arg)*)))
    };
}
