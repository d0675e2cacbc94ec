//! Keyboard-wedge decoder on arbitrary evdev key events.
//!
//! Input: one settings byte (bit 0: decimal-to-hex output), then 3 bytes per event: the
//! key code (codes 120-255 stand for themselves plus 65280, so unknown high codes occur
//! too), the value (0 release, 1 press, 2 autorepeat; others pass through as they are)
//! and the time since the previous event in milliseconds.
//!
//! Checks, beyond "no panic": the cards are exactly those of a model of a keyboard line
//! written from the module docs (digits, letters, Backspace, Enter, the 200 ms pause,
//! 4 to 32 characters), and each is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loyaltyd::reader::decode::hid::{Config, Hid, HidOutput, DEFAULT_KEY_TIMEOUT_US};
use loyaltyd::reader::decode::CardId;

enum Key {
    Char(char),
    Backspace,
    Enter,
}

/// linux/input-event-codes.h, typed out again for the model.
fn key(code: u16) -> Option<Key> {
    let row = |chars: &str, first: u16| {
        code.checked_sub(first)
            .and_then(|i| chars.chars().nth(usize::from(i)))
            .map(Key::Char)
    };
    match code {
        14 => Some(Key::Backspace),
        28 | 96 => Some(Key::Enter),
        2..=11 => row("1234567890", 2),
        16..=25 => row("QWERTYUIOP", 16),
        30..=38 => row("ASDFGHJKL", 30),
        44..=50 => row("ZXCVBNM", 44),
        71..=73 => row("789", 71),
        75..=77 => row("456", 75),
        79..=82 => row("1230", 79),
        _ => None,
    }
}

fn finish(line: &str, output: HidOutput) -> Option<String> {
    if !(4..=32).contains(&line.len()) {
        return None;
    }
    match output {
        HidOutput::AsTyped => Some(line.to_string()),
        HidOutput::DecimalToHex => {
            if !line.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let v: u128 = line.parse().ok()?;
            let v = u32::try_from(v).ok()?;
            Some(format!("{v:08X}"))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&settings, events)) = data.split_first() else {
        return;
    };
    let output = if settings & 1 == 0 {
        HidOutput::AsTyped
    } else {
        HidOutput::DecimalToHex
    };
    let mut dec = Hid::new(Config {
        output,
        key_timeout_us: DEFAULT_KEY_TIMEOUT_US,
    });

    let mut line = String::new();
    let mut overflow = false;
    let mut last_press = 0u64;
    let mut t = 0u64;
    for ev in events.chunks_exact(3) {
        let code = match ev[0] {
            c @ 0..=119 => u16::from(c),
            c => 0xff00 + u16::from(c),
        };
        let value = i32::from(ev[1]);
        t += u64::from(ev[2]) * 1_000;
        let got = dec.key(code, value, t).map(|c: CardId| c.as_str().to_string());

        let mut want = None;
        if value == 1 {
            if let Some(k) = key(code) {
                if (!line.is_empty() || overflow) && t - last_press >= DEFAULT_KEY_TIMEOUT_US {
                    line.clear();
                    overflow = false;
                }
                last_press = t;
                match k {
                    Key::Char(c) if !overflow => {
                        if line.len() == 32 {
                            overflow = true;
                        } else {
                            line.push(c);
                        }
                    }
                    Key::Char(_) => {}
                    Key::Backspace => {
                        if !overflow {
                            line.pop();
                        }
                    }
                    Key::Enter => {
                        if !overflow {
                            want = finish(&line, output);
                        }
                        line.clear();
                        overflow = false;
                    }
                }
            }
        }
        assert_eq!(got, want, "event {ev:?} at {t}");
        if let Some(card) = &got {
            assert!(
                CardId::parse(card).is_ok_and(|c| c.as_str() == card),
                "{card} is not canonical"
            );
        }
    }
});
