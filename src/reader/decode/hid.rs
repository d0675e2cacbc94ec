//! USB keyboard-wedge readers: they type the card number, then Enter.
//!
//! Input is Linux evdev key events (`EV_KEY`): the key code from
//! `linux/input-event-codes.h` and the value (1 press, 0 release, 2 autorepeat). Only
//! presses count. Codes are layout-independent positions, read as a US layout:
//!
//! - top-row and keypad digits are digits, with or without Shift (a reader configured for
//!   an AZERTY host sends Shift+digit keys, and the keypad is a digit pad whatever NumLock
//!   says, since NumLock state is not in the event);
//! - letter keys are letters, upper-cased with or without Shift or CapsLock;
//! - Backspace deletes the last character (a person correcting a typo);
//! - Enter or keypad Enter ends the line;
//! - every other key (modifiers, punctuation, function keys, unknown codes) is ignored.
//!
//! A line longer than 32 characters is discarded up to the next Enter; a line shorter than
//! 4 gives nothing. A pause of [`Config::key_timeout_us`] between presses discards the
//! half-typed line: a reader types a whole line in a few tens of milliseconds, so a slow
//! line is a person at a keyboard, or a reader whose Enter was lost.

use super::{CardId, CARD_ID_MAX_LEN, CARD_ID_MIN_LEN};

/// Default longest pause between two key presses of one line.
pub const DEFAULT_KEY_TIMEOUT_US: u64 = 200_000;

const KEY_BACKSPACE: u16 = 14;
const KEY_ENTER: u16 = 28;
const KEY_KPENTER: u16 = 96;

/// evdev value of a key press.
const PRESS: i32 = 1;

/// What the decoder does with a finished line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HidOutput {
    /// The line as typed, upper-cased.
    #[default]
    AsTyped,
    /// The line is a decimal number up to 4294967295, written as 8 upper-case hex digits.
    ///
    /// Wedge readers usually type the EM4100 decimal form (the last 4 bytes of the tag as a
    /// 10-digit number, e.g. `0015835827`); this turns it back into those 4 bytes in hex
    /// (`00F1A2B3`), the form a 34-bit Wiegand reader gives for the same tag. A line that
    /// is not all digits, or whose value does not fit in 32 bits, is rejected. To match an
    /// RDM6300 instead, configure that one for its EM4100 decimal form and keep this one
    /// [`HidOutput::AsTyped`].
    DecimalToHex,
}

/// Decoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub output: HidOutput,
    /// A pause of at least this long (microseconds) between presses discards the line.
    pub key_timeout_us: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            output: HidOutput::AsTyped,
            key_timeout_us: DEFAULT_KEY_TIMEOUT_US,
        }
    }
}

enum Key {
    Char(char),
    Backspace,
    Enter,
}

/// Streaming keyboard-wedge decoder: feed every `EV_KEY` event to [`Hid::key`].
#[derive(Debug, Clone)]
pub struct Hid {
    config: Config,
    line: heapless::String<CARD_ID_MAX_LEN>,
    /// The line went past 32 characters: ignore it until Enter.
    overflow: bool,
    /// Time of the last press that touched the line.
    last_press_us: u64,
    /// Lines thrown away: too long, too short, timed out, not convertible.
    pub rejected: u64,
}

impl Default for Hid {
    fn default() -> Self {
        Hid::new(Config::default())
    }
}

impl Hid {
    pub fn new(config: Config) -> Self {
        Hid {
            config,
            line: heapless::String::new(),
            overflow: false,
            last_press_us: 0,
            rejected: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Drops a half-typed line without counting it.
    pub fn reset(&mut self) {
        self.line.clear();
        self.overflow = false;
    }

    /// One key event: `code` as in `linux/input-event-codes.h`, `value` 1 press, 0 release,
    /// 2 autorepeat, at `t_us`. Returns a card when Enter completes a good line.
    pub fn key(&mut self, code: u16, value: i32, t_us: u64) -> Option<CardId> {
        // Releases and autorepeats are not keystrokes a reader makes.
        if value != PRESS {
            return None;
        }
        let key = classify(code)?;

        let pending = !self.line.is_empty() || self.overflow;
        // saturating_sub: a clock step backwards reads as no pause, never a panic.
        if pending && t_us.saturating_sub(self.last_press_us) >= self.config.key_timeout_us {
            self.discard();
        }
        self.last_press_us = t_us;

        match key {
            Key::Char(c) => {
                if !self.overflow && self.line.push(c).is_err() {
                    self.overflow = true;
                }
                None
            }
            Key::Backspace => {
                // An over-long line is already lost; erasing from it cannot save it.
                if !self.overflow {
                    self.line.pop();
                }
                None
            }
            Key::Enter => self.finish(),
        }
    }

    fn discard(&mut self) {
        self.reset();
        self.rejected = self.rejected.wrapping_add(1);
    }

    fn finish(&mut self) -> Option<CardId> {
        if self.overflow {
            self.discard();
            return None;
        }
        if self.line.is_empty() {
            // A bare Enter (a person, or a reader sending CR LF as two Enters) is no read.
            return None;
        }
        let id = if self.line.len() < CARD_ID_MIN_LEN {
            None
        } else {
            match self.config.output {
                HidOutput::AsTyped => CardId::parse(&self.line).ok(),
                HidOutput::DecimalToHex => decimal_to_hex(&self.line),
            }
        };
        if id.is_some() {
            self.reset();
        } else {
            self.discard();
        }
        id
    }
}

/// `"0015835827"` -> `00F1A2B3`; `None` unless all digits and at most `u32::MAX`.
fn decimal_to_hex(line: &str) -> Option<CardId> {
    let mut value: u32 = 0;
    for c in line.chars() {
        let digit = c.to_digit(10)?;
        value = value.checked_mul(10)?.checked_add(digit)?;
    }
    CardId::format(format_args!("{value:08X}"))
}

fn classify(code: u16) -> Option<Key> {
    // Letter keys by row, as laid out in input-event-codes.h (KEY_Q = 16, KEY_A = 30,
    // KEY_Z = 44).
    const TOP: &[u8] = b"QWERTYUIOP";
    const HOME: &[u8] = b"ASDFGHJKL";
    const BOTTOM: &[u8] = b"ZXCVBNM";
    let in_row = |row: &[u8], first: u16| {
        code.checked_sub(first)
            .and_then(|i| row.get(usize::from(i)))
            .map(|&b| Key::Char(char::from(b)))
    };
    let key = match code {
        // KEY_1 = 2 .. KEY_9 = 10, KEY_0 = 11.
        2..=10 => Key::Char(char::from(b'1' + (code - 2) as u8)),
        11 => Key::Char('0'),
        KEY_BACKSPACE => Key::Backspace,
        KEY_ENTER | KEY_KPENTER => Key::Enter,
        // The keypad is laid out 7 8 9 - / 4 5 6 + / 1 2 3 / 0 .
        71 => Key::Char('7'),
        72 => Key::Char('8'),
        73 => Key::Char('9'),
        75 => Key::Char('4'),
        76 => Key::Char('5'),
        77 => Key::Char('6'),
        79 => Key::Char('1'),
        80 => Key::Char('2'),
        81 => Key::Char('3'),
        82 => Key::Char('0'),
        _ => {
            return in_row(TOP, 16)
                .or_else(|| in_row(HOME, 30))
                .or_else(|| in_row(BOTTOM, 44))
        }
    };
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    // Codes from linux/input-event-codes.h, written out independently of `classify`.
    const KEY_ESC: u16 = 1;
    const KEY_MINUS: u16 = 12;
    const KEY_TAB: u16 = 15;
    const KEY_LEFTSHIFT: u16 = 42;
    const KEY_RIGHTSHIFT: u16 = 54;
    const KEY_CAPSLOCK: u16 = 58;
    const KEY_SPACE: u16 = 57;
    const KEY_NUMLOCK: u16 = 69;
    const KEY_F1: u16 = 59;
    const KEY_KPMINUS: u16 = 74;
    const KEY_KPDOT: u16 = 83;
    const BTN_LEFT: u16 = 0x110;

    fn top_row(c: char) -> u16 {
        match c {
            '1' => 2,
            '2' => 3,
            '3' => 4,
            '4' => 5,
            '5' => 6,
            '6' => 7,
            '7' => 8,
            '8' => 9,
            '9' => 10,
            '0' => 11,
            _ => letter(c),
        }
    }

    fn keypad(c: char) -> u16 {
        match c {
            '7' => 71,
            '8' => 72,
            '9' => 73,
            '4' => 75,
            '5' => 76,
            '6' => 77,
            '1' => 79,
            '2' => 80,
            '3' => 81,
            '0' => 82,
            _ => panic!("no keypad key for {c:?}"),
        }
    }

    fn letter(c: char) -> u16 {
        match c.to_ascii_uppercase() {
            'Q' => 16,
            'W' => 17,
            'E' => 18,
            'R' => 19,
            'T' => 20,
            'Y' => 21,
            'U' => 22,
            'I' => 23,
            'O' => 24,
            'P' => 25,
            'A' => 30,
            'S' => 31,
            'D' => 32,
            'F' => 33,
            'G' => 34,
            'H' => 35,
            'J' => 36,
            'K' => 37,
            'L' => 38,
            'Z' => 44,
            'X' => 45,
            'C' => 46,
            'V' => 47,
            'B' => 48,
            'N' => 49,
            'M' => 50,
            _ => panic!("no key for {c:?}"),
        }
    }

    /// Press and release each key, 8 ms apart, as a reader does; returns the cards.
    struct Typist {
        hid: Hid,
        t: u64,
        cards: Vec<String>,
    }

    impl Typist {
        fn new(config: Config) -> Self {
            Typist {
                hid: Hid::new(config),
                t: 1_000_000,
                cards: Vec::new(),
            }
        }

        fn event(&mut self, code: u16, value: i32) {
            if let Some(card) = self.hid.key(code, value, self.t) {
                self.cards.push(card.to_string());
            }
        }

        fn tap(&mut self, code: u16) {
            self.event(code, 1);
            self.t += 4_000;
            self.event(code, 0);
            self.t += 4_000;
        }

        fn type_top_row(&mut self, s: &str) {
            s.chars().for_each(|c| self.tap(top_row(c)));
        }

        fn enter(&mut self) {
            self.tap(KEY_ENTER);
        }

        fn line(&mut self, s: &str) {
            self.type_top_row(s);
            self.enter();
        }

        fn wait(&mut self, us: u64) {
            self.t += us;
        }
    }

    fn typist() -> Typist {
        Typist::new(Config::default())
    }

    #[test]
    fn digits_then_enter() {
        let mut k = typist();
        k.line("0015835827");
        assert_eq!(k.cards, vec!["0015835827"]);
        k.line("1234");
        assert_eq!(k.cards, vec!["0015835827", "1234"]);
        assert_eq!(k.hid.rejected, 0);
    }

    #[test]
    fn keypad_digits_and_keypad_enter() {
        let mut k = typist();
        for c in "9876543210".chars() {
            k.tap(keypad(c));
        }
        k.tap(KEY_KPENTER);
        assert_eq!(k.cards, vec!["9876543210"]);
        // Mixed with the top row, and ended by the main Enter.
        k.tap(keypad('4'));
        k.type_top_row("00");
        k.tap(keypad('7'));
        k.enter();
        assert_eq!(k.cards[1], "4007");
    }

    #[test]
    fn letters_upper_cased_with_or_without_shift() {
        let mut k = typist();
        // "0400f1a2b3" typed without shift.
        k.line("0400f1a2b3");
        // The same with shift held around each letter, as readers emitting capitals do.
        for c in "0400F1A2B3".chars() {
            if c.is_ascii_alphabetic() {
                k.event(KEY_LEFTSHIFT, 1);
                k.tap(letter(c));
                k.event(KEY_LEFTSHIFT, 0);
            } else {
                k.tap(top_row(c));
            }
        }
        k.enter();
        // Right shift held over the whole line, CapsLock toggled: still the same id.
        k.event(KEY_RIGHTSHIFT, 1);
        k.tap(KEY_CAPSLOCK);
        k.type_top_row("0400F1A2B3");
        k.event(KEY_RIGHTSHIFT, 0);
        k.enter();
        assert_eq!(k.cards, vec!["0400F1A2B3"; 3]);
        // Letters beyond A-F too.
        k.line("zqmw1234");
        assert_eq!(k.cards[3], "ZQMW1234");
    }

    #[test]
    fn shifted_top_row_is_still_digits() {
        // An AZERTY-configured reader shifts the top row to type digits.
        let mut k = typist();
        k.event(KEY_LEFTSHIFT, 1);
        k.type_top_row("12345678");
        k.event(KEY_LEFTSHIFT, 0);
        k.enter();
        assert_eq!(k.cards, vec!["12345678"]);
    }

    #[test]
    fn releases_autorepeat_and_unknown_keys_ignored() {
        let mut k = typist();
        k.type_top_row("12");
        k.event(top_row('2'), 2); // autorepeat: not a second '2'
        k.event(top_row('9'), 0); // a release without press
        for code in [
            KEY_ESC,
            KEY_MINUS,
            KEY_TAB,
            KEY_SPACE,
            KEY_NUMLOCK,
            KEY_F1,
            KEY_KPMINUS,
            KEY_KPDOT,
            BTN_LEFT,
            0,
            u16::MAX,
        ] {
            k.tap(code);
        }
        k.type_top_row("34");
        k.event(KEY_ENTER, 0); // Enter's release alone is not Enter
        assert!(k.cards.is_empty());
        k.enter();
        assert_eq!(k.cards, vec!["1234"]);
    }

    #[test]
    fn backspace_corrects() {
        let mut k = typist();
        k.type_top_row("12395");
        k.tap(KEY_BACKSPACE);
        k.tap(KEY_BACKSPACE);
        k.type_top_row("45");
        k.enter();
        // Backspace on an empty line is harmless.
        k.tap(KEY_BACKSPACE);
        k.line("5678");
        assert_eq!(k.cards, vec!["12345", "5678"]);
    }

    #[test]
    fn too_short_lines_give_nothing() {
        let mut k = typist();
        k.enter();
        k.line("1");
        k.line("123");
        assert!(k.cards.is_empty());
        assert_eq!(k.hid.rejected, 2);
        k.line("1234");
        assert_eq!(k.cards, vec!["1234"]);
    }

    #[test]
    fn too_long_line_discarded_up_to_enter() {
        let mut k = typist();
        let max = "1".repeat(32);
        k.line(&max);
        assert_eq!(k.cards, vec![max.clone()]);
        k.line(&"2".repeat(33));
        k.line(&"3".repeat(500));
        assert_eq!(k.cards.len(), 1);
        assert_eq!(k.hid.rejected, 2);
        // Backspace cannot rescue an over-long line.
        k.type_top_row(&"4".repeat(33));
        k.tap(KEY_BACKSPACE);
        k.enter();
        assert_eq!(k.cards.len(), 1);
        // The next line is fine.
        k.line("5678");
        assert_eq!(k.cards, vec![max, "5678".to_string()]);
    }

    #[test]
    fn pause_discards_half_typed_line() {
        let mut k = typist();
        k.type_top_row("1234");
        // Presses are 8 ms apart: this makes the gap between presses exactly the timeout.
        k.wait(DEFAULT_KEY_TIMEOUT_US - 8_000);
        k.type_top_row("5678");
        k.enter();
        assert_eq!(k.cards, vec!["5678"]);
        assert_eq!(k.hid.rejected, 1);
        // A late Enter alone ends nothing.
        k.type_top_row("9999");
        k.wait(DEFAULT_KEY_TIMEOUT_US);
        k.enter();
        assert_eq!(k.cards.len(), 1);
        assert_eq!(k.hid.rejected, 2);
    }

    #[test]
    fn pause_just_under_timeout_keeps_line() {
        let mut k = typist();
        k.type_top_row("12");
        // Presses are 8 ms apart: this makes the gap between presses 199.999 ms.
        k.wait(DEFAULT_KEY_TIMEOUT_US - 8_000 - 1);
        k.type_top_row("34");
        k.enter();
        assert_eq!(k.cards, vec!["1234"]);
    }

    #[test]
    fn configurable_timeout() {
        let mut k = Typist::new(Config {
            output: HidOutput::AsTyped,
            key_timeout_us: 1_000_000,
        });
        k.type_top_row("12");
        k.wait(500_000);
        k.type_top_row("34");
        k.enter();
        assert_eq!(k.cards, vec!["1234"]);
        k.type_top_row("12");
        k.wait(1_000_000);
        k.line("34");
        assert_eq!(k.cards.len(), 1);
    }

    #[test]
    fn pause_before_a_new_line_is_fine() {
        let mut k = typist();
        k.line("1234");
        k.wait(10_000_000);
        k.line("5678");
        assert_eq!(k.cards, vec!["1234", "5678"]);
        assert_eq!(k.hid.rejected, 0);
    }

    fn to_hex() -> Typist {
        Typist::new(Config {
            output: HidOutput::DecimalToHex,
            ..Config::default()
        })
    }

    #[test]
    fn decimal_to_hex_fixture_vectors() {
        let fx = fixtures::load();
        let mut k = to_hex();
        for v in &fx.rdm6300 {
            k.line(&v.em4100_decimal);
        }
        // The 8 hex digits are the last 4 bytes of the RDM6300 hex id.
        let want: Vec<String> = fx.rdm6300.iter().map(|v| v.card[2..].to_string()).collect();
        assert_eq!(k.cards, want);
        assert_eq!(k.cards[1], "00F1A2B3");
    }

    #[test]
    fn decimal_to_hex_bounds_and_refusals() {
        let mut k = to_hex();
        k.line("0000");
        k.line("4294967295");
        k.line("000000000000000000000004294967295");
        assert_eq!(k.cards, vec!["00000000", "FFFFFFFF"]);
        // The 33-digit line was too long; then too big, not decimal.
        k.line("4294967296");
        k.line("99999999999999999999");
        k.line("12AB");
        assert_eq!(k.cards.len(), 2);
        assert_eq!(k.hid.rejected, 4);
    }

    #[test]
    fn decimal_to_hex_pads_small_values() {
        let mut k = to_hex();
        k.line("0255");
        k.type_top_row("65536");
        k.enter();
        assert_eq!(k.cards, vec!["000000FF", "00010000"]);
    }

    #[test]
    fn clock_going_backwards_does_not_panic() {
        let mut hid = Hid::default();
        // Every step goes backwards, from the end of time.
        for (i, c) in "1234".chars().enumerate() {
            assert_eq!(hid.key(top_row(c), 1, u64::MAX - i as u64), None);
        }
        assert_eq!(hid.key(KEY_ENTER, 1, 5).unwrap().as_str(), "1234");
    }
}
