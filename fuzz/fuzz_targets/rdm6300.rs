//! RDM6300 UART decoder on arbitrary byte streams.
//!
//! Input: one settings byte, then the bytes the UART delivered. The settings byte picks
//! the id form (bit 0), how the stream is cut into reads (bits 1-4: chunk length, 0 =
//! one read) and the time between reads (bits 5-7). Checks, beyond "no panic":
//! - with repeat suppression off, the cards are exactly the good frames an independent
//!   scan finds (STX, 12 hex characters, ETX, checksum), in the right form;
//! - the result does not depend on how the stream was cut into reads;
//! - with suppression on, the cards are a subsequence of those.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loyaltyd::reader::decode::rdm6300::{Config, OutputForm, Rdm6300};

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Good frames of the stream, written in `form`; written without the decoder's code.
fn oracle(stream: &[u8], form: OutputForm) -> Vec<String> {
    let mut out = Vec::new();
    for w in stream.windows(14) {
        if w[0] != 0x02 || w[13] != 0x03 {
            continue;
        }
        let Some(nibbles) = w[1..13].iter().map(|&b| hex(b)).collect::<Option<Vec<u8>>>() else {
            continue;
        };
        let bytes: Vec<u8> = nibbles.chunks(2).map(|p| p[0] * 16 + p[1]).collect();
        if bytes[..5].iter().fold(0, |a, b| a ^ b) != bytes[5] {
            continue;
        }
        out.push(match form {
            OutputForm::Hex => bytes[..5].iter().map(|b| format!("{b:02X}")).collect(),
            OutputForm::Em4100Decimal => format!("{:010}", u32::from_be_bytes(bytes[1..5].try_into().unwrap())),
        });
    }
    out
}

fn run(config: Config, stream: &[u8], chunk: usize, step_us: u64) -> Vec<String> {
    let mut dec = Rdm6300::new(config);
    let mut cards = Vec::new();
    let chunk = if chunk == 0 { stream.len().max(1) } else { chunk };
    for (i, part) in stream.chunks(chunk).enumerate() {
        let t = 1_000 + i as u64 * step_us;
        cards.extend(dec.feed(part, t).map(|c| c.as_str().to_string()));
    }
    cards
}

fuzz_target!(|data: &[u8]| {
    let Some((&settings, stream)) = data.split_first() else {
        return;
    };
    let form = if settings & 1 == 0 {
        OutputForm::Hex
    } else {
        OutputForm::Em4100Decimal
    };
    let chunk = usize::from((settings >> 1) & 0x0f);
    let step_us = u64::from(settings >> 5) * 40_000;

    let expected = oracle(stream, form);
    let unsuppressed = Config { form, repeat_gap_us: 0 };
    let whole = run(unsuppressed, stream, 0, 0);
    assert_eq!(whole, expected, "one read");
    assert_eq!(run(unsuppressed, stream, chunk, step_us), expected, "reads of {chunk}");
    assert_eq!(run(unsuppressed, stream, 1, step_us), expected, "byte by byte");

    // Repeat suppression only ever drops cards.
    let suppressed = run(
        Config {
            form,
            ..Config::default()
        },
        stream,
        chunk,
        step_us,
    );
    let mut rest = expected.iter();
    for card in &suppressed {
        assert!(rest.any(|e| e == card), "{card} is not a frame of the stream in order");
    }
});
