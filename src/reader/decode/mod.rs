//! Pure, allocation-free decoders for the card readers a terminal can have.
//!
//! Each decoder is a small state machine fed with what the device produced (UART bytes,
//! Wiegand bits, evdev key events) plus the arrival time as monotonic microseconds. They do
//! no I/O and read no clock, so the I/O layer owns timing and the tests can replay any
//! schedule exactly. Buffers are fixed-size: no input, however long or noisy, makes a
//! decoder grow or panic.
//!
//! - [`rdm6300`]: 125 kHz EM4100 reader on a 9600 8N1 UART.
//! - [`wiegand`]: 26- and 34-bit Wiegand on two GPIO lines.
//! - [`hid`]: USB keyboard-wedge readers that type the number then Enter.
//!
//! Every decoder yields a [`CardId`] in the canonical form `[0-9A-Z]{4,32}`.

pub mod hid;
pub mod rdm6300;
pub mod wiegand;

use core::fmt;
use core::str::FromStr;

/// Shortest canonical card id.
pub const CARD_ID_MIN_LEN: usize = 4;
/// Longest canonical card id.
pub const CARD_ID_MAX_LEN: usize = 32;

/// A card id in canonical form: 4 to 32 characters from `0-9` and `A-Z`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CardId(heapless::String<CARD_ID_MAX_LEN>);

/// Why a string is not a card id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardIdError {
    #[error("a card id has 4 to 32 characters, this one has {0}")]
    Length(usize),
    #[error("a card id has only the characters 0-9 and A-Z, found {0:?}")]
    Char(char),
}

impl CardId {
    /// Parses a card id. ASCII lower-case letters are upper-cased (people and some readers
    /// type them that way); anything else outside `[0-9A-Z]` is refused.
    pub fn parse(s: &str) -> Result<Self, CardIdError> {
        // Count chars, not bytes, so a multi-byte character reports a sensible length.
        let len = s.chars().count();
        if !(CARD_ID_MIN_LEN..=CARD_ID_MAX_LEN).contains(&len) {
            return Err(CardIdError::Length(len));
        }
        let mut out = heapless::String::new();
        for c in s.chars() {
            let c = c.to_ascii_uppercase();
            if !(c.is_ascii_digit() || c.is_ascii_uppercase()) {
                return Err(CardIdError::Char(c));
            }
            // Cannot fail: the length was checked above and every char is one byte.
            out.push(c).map_err(|()| CardIdError::Length(len))?;
        }
        Ok(CardId(out))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Builds an id from formatted text the decoders know to be canonical. Going through
    /// `parse` keeps the invariant in one place; `None` would mean a decoder bug, and a
    /// missed read is safer than a panic beside the till.
    fn format(args: fmt::Arguments<'_>) -> Option<CardId> {
        let mut s: heapless::String<CARD_ID_MAX_LEN> = heapless::String::new();
        fmt::Write::write_fmt(&mut s, args).ok()?;
        CardId::parse(&s).ok()
    }
}

impl fmt::Display for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for CardId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for CardId {
    type Err = CardIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CardId::parse(s)
    }
}

impl TryFrom<&str> for CardId {
    type Error = CardIdError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        CardId::parse(s)
    }
}

/// The shared test vectors (`tests/fixtures/readers.json`), loaded by each decoder's tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Readers {
        pub rdm6300: Vec<RdmGood>,
        pub rdm6300_bad: Vec<RdmBad>,
        pub wiegand26: Vec<Wiegand26>,
        pub wiegand34: Vec<Wiegand34>,
        pub wiegand_bad: Vec<WiegandBad>,
    }

    #[derive(Deserialize)]
    pub struct RdmGood {
        pub frame_hex: String,
        pub card: String,
        pub em4100_decimal: String,
    }

    #[derive(Deserialize)]
    pub struct RdmBad {
        pub frame_hex: String,
        pub why: String,
    }

    #[derive(Deserialize)]
    pub struct Wiegand26 {
        pub bits: String,
        pub facility: u8,
        pub number: u16,
        pub card: String,
    }

    #[derive(Deserialize)]
    pub struct Wiegand34 {
        pub bits: String,
        pub card: String,
    }

    #[derive(Deserialize)]
    pub struct WiegandBad {
        pub bits: String,
        pub why: String,
    }

    pub fn load() -> Readers {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/readers.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let readers: Readers = serde_json::from_str(&text).expect("readers.json parses");
        // An emptied fixture file must not turn the vector tests into silent passes.
        assert!(!readers.rdm6300.is_empty() && !readers.rdm6300_bad.is_empty());
        assert!(!readers.wiegand26.is_empty() && !readers.wiegand34.is_empty());
        assert!(!readers.wiegand_bad.is_empty());
        readers
    }

    pub fn unhex(s: &str) -> Vec<u8> {
        assert!(s.len() % 2 == 0, "odd hex length: {s}");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    pub fn bits(s: &str) -> Vec<bool> {
        s.chars()
            .map(|c| match c {
                '0' => false,
                '1' => true,
                other => panic!("not a bit: {other:?}"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_canonical_and_upper_cases() {
        assert_eq!(CardId::parse("62E3086CED").unwrap().as_str(), "62E3086CED");
        assert_eq!(CardId::parse("62e3086ced").unwrap().as_str(), "62E3086CED");
        assert_eq!(CardId::parse("ABCD").unwrap().to_string(), "ABCD");
        let max = "Z".repeat(32);
        assert_eq!(CardId::parse(&max).unwrap().as_str(), max);
        assert_eq!("0015835827".parse::<CardId>().unwrap().as_ref(), "0015835827");
    }

    #[test]
    fn parse_rejects_bad_length_and_chars() {
        assert_eq!(CardId::parse("ABC"), Err(CardIdError::Length(3)));
        assert_eq!(CardId::parse(""), Err(CardIdError::Length(0)));
        assert_eq!(CardId::parse(&"1".repeat(33)), Err(CardIdError::Length(33)));
        assert_eq!(CardId::parse("12 34"), Err(CardIdError::Char(' ')));
        assert_eq!(CardId::parse("12-34"), Err(CardIdError::Char('-')));
        assert_eq!(CardId::parse("12é4"), Err(CardIdError::Char('é')));
        assert!(CardId::try_from("ÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉ").is_err());
    }

    #[test]
    fn format_only_builds_canonical_ids() {
        assert_eq!(
            CardId::format(format_args!("{:08X}", 0xF1A2B3u32)).unwrap().as_str(),
            "00F1A2B3"
        );
        assert!(CardId::format(format_args!("{:x}", 0xabcdefu32)).is_some());
        assert!(CardId::format(format_args!("{}", 12)).is_none());
        assert!(CardId::format(format_args!("{:040}", 1)).is_none());
    }
}
