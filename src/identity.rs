//! Identity at the till: canonical phones and virtual card numbers. Pure.
//!
//! A phone is kept as its digits with the country code (`8613800000001`) and shown with
//! a `+`. What a cashier types is read like this (interface.md "Identity at the till"):
//! separators (spaces, dashes, dots, brackets) are dropped; a leading `+` or `00` means
//! the number already has its country code; so does one that starts with the default
//! country code and is long enough to hold a national number after it (9 digits or
//! more: no national number starts with its own country code); anything else is a
//! national number, whose one trunk `0` is dropped before the country code goes in front.

use crate::error::{Error, Result};

/// Digits of a canonical phone: E.164 allows at most 15; fewer than 7 is no phone.
const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 7..=15;
/// Digits a national number has at least, for a number starting with the country code
/// to be read as one that carries it.
const NATIONAL_MIN: usize = 9;

/// The canonical form of a phone as typed, with `country_code` (digits) for national
/// numbers.
pub fn canonical_phone(raw: &str, country_code: &str) -> Result<String> {
    let bad = |why: &str| Error::invalid(format!("bad phone number {raw:?}: {why}"));
    let kept: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let (international, digits) = match kept.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => match kept.strip_prefix("00") {
            Some(rest) => (true, rest),
            None => (false, kept.as_str()),
        },
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("only digits, spaces, dashes and a leading + are allowed"));
    }
    let canonical =
        if international || (digits.starts_with(country_code) && digits.len() >= country_code.len() + NATIONAL_MIN) {
            digits.to_string()
        } else {
            let national = digits.strip_prefix('0').unwrap_or(digits);
            format!("{country_code}{national}")
        };
    if !PHONE_DIGITS.contains(&canonical.len()) {
        return Err(bad(&format!(
            "{} digits with the country code; a phone has {} to {}",
            canonical.len(),
            PHONE_DIGITS.start(),
            PHONE_DIGITS.end()
        )));
    }
    Ok(canonical)
}

/// A country code as the config gives it: 1 to 3 digits, a leading `+` allowed.
pub fn check_country_code(cc: &str) -> std::result::Result<String, String> {
    let digits = cc.trim().trim_start_matches('+');
    if (1..=3).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0') {
        Ok(digits.to_string())
    } else {
        Err(format!("{cc:?} is not a country code (1 to 3 digits, e.g. \"86\")"))
    }
}

/// How the Member shape shows a canonical phone.
pub fn display_phone(canonical: &str) -> String {
    if canonical.is_empty() || canonical.starts_with('+') {
        canonical.to_string()
    } else {
        format!("+{canonical}")
    }
}

/// Digits of a virtual card: 11 drawn, then a Luhn check digit.
pub const VIRTUAL_CARD_DIGITS: usize = 12;

/// The Luhn check digit of `digits` (the digit to append).
pub fn luhn_digit(digits: &str) -> u8 {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// A number passes the Luhn check.
pub fn luhn_ok(number: &str) -> bool {
    match number.len().checked_sub(1) {
        Some(n) if n > 0 && number.bytes().all(|b| b.is_ascii_digit()) => {
            luhn_digit(&number[..n]) == number.as_bytes()[n] - b'0'
        }
        _ => false,
    }
}

/// A virtual card number from a random draw: `9`, ten digits of `seed`, the check digit.
/// The leading 9 keeps virtual cards apart from the reader's card numbers, which are hex
/// of 8 or 10 characters.
pub fn virtual_card(seed: u64) -> String {
    let body = format!("9{:010}", seed % 10_000_000_000);
    let check = luhn_digit(&body);
    format!("{body}{check}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_one_phone_is_one_phone() {
        for raw in [
            "+86 138-0000-0001",
            "0086 13800000001",
            "86 13800000001",
            "13800000001",
            "138 0000 0001",
            "(+86) 138.0000.0001",
        ] {
            assert_eq!(canonical_phone(raw, "86").unwrap(), "8613800000001", "{raw}");
        }
        // A national number with its trunk 0, and another country's number.
        assert_eq!(canonical_phone("010-6552-9988", "86").unwrap(), "861065529988");
        assert_eq!(canonical_phone("+44 20 7946 0018", "86").unwrap(), "442079460018");
        assert_eq!(canonical_phone("020 7946 0018", "44").unwrap(), "442079460018");
        assert_eq!(display_phone("8613800000001"), "+8613800000001");
    }

    #[test]
    fn what_is_no_phone_is_refused() {
        for raw in ["", "+", "12ab345678", "123", "+1234567890123456", "86-1 38x"] {
            let e = canonical_phone(raw, "86").unwrap_err();
            assert_eq!(e.code, crate::error::Code::InvalidInput, "{raw}");
        }
        assert!(check_country_code("+86").is_ok());
        assert!(check_country_code("086").is_err());
        assert!(check_country_code("8a").is_err());
    }

    #[test]
    fn virtual_cards_carry_a_luhn_check_digit() {
        assert_eq!(luhn_digit("7992739871"), 3);
        assert!(luhn_ok("79927398713"));
        assert!(!luhn_ok("79927398710"));
        for seed in [0, 1, 42, u64::MAX] {
            let card = virtual_card(seed);
            assert_eq!(card.len(), VIRTUAL_CARD_DIGITS);
            assert!(luhn_ok(&card), "{card}");
            assert!(crate::model::canonical_card(&card).is_ok());
        }
    }
}
