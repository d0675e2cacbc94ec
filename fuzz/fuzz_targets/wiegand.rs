//! Wiegand decoder on arbitrary bit/timestamp sequences.
//!
//! Input: one byte per edge. Bit 0 is the line (D0 = 0, D1 = 1), the other seven bits the
//! time since the previous edge in units of 400 µs (so 5 is the usual 2 ms between bits
//! and 63 or more ends a frame at the default 25 ms gap). The byte 0xff instead steps
//! the clock back by 10 ms (the decoder must treat that as no time passing). After the
//! last edge the decoder is polled at its deadline, as the GPIO thread does.
//!
//! Checks, beyond "no panic": every result equals what an independent decoder of the
//! same frames says (26/34 bits with their parity, an error otherwise), `deadline` and
//! `pending_bits` agree with the frame in progress, and nothing is left after the poll.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loyaltyd::reader::decode::wiegand::{Format, Wiegand, WiegandError, MAX_BITS};

const UNIT_US: u64 = 400;
const GAP_US: u64 = 25_000;

/// The expected result of one burst of bits.
fn decode(bits: &[bool]) -> Result<(String, Format), WiegandError> {
    let n = bits.len();
    if n > usize::from(MAX_BITS) {
        return Err(WiegandError::Overlong);
    }
    if n != 26 && n != 34 {
        return Err(WiegandError::Length(n as u8));
    }
    let data = &bits[1..n - 1];
    let half = data.len() / 2;
    let ones = |s: &[bool]| s.iter().filter(|&&b| b).count();
    let even_ok = (usize::from(bits[0]) + ones(&data[..half])) % 2 == 0;
    let odd_ok = (usize::from(bits[n - 1]) + ones(&data[half..])) % 2 == 1;
    if !(even_ok && odd_ok) {
        return Err(WiegandError::Parity { bits: n as u8 });
    }
    let value = data.iter().fold(0u64, |v, &b| v * 2 + u64::from(b));
    if n == 26 {
        let format = Format::W26 {
            facility: (value >> 16) as u8,
            number: (value & 0xffff) as u16,
        };
        Ok((format!("{value:06X}"), format))
    } else {
        Ok((format!("{value:08X}"), Format::W34))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut dec = Wiegand::default();
    let mut got = Vec::new();
    let mut expected = Vec::new();
    let mut burst: Vec<bool> = Vec::new();
    let mut last_bit_us = 0u64;
    let mut t = 1_000_000u64;
    for &b in data {
        if b == 0xff {
            t -= 10_000.min(t);
            continue;
        }
        t += u64::from(b >> 1) * UNIT_US;
        let bit = b & 1 == 1;
        if !burst.is_empty() && t.saturating_sub(last_bit_us) >= GAP_US {
            expected.push(decode(&burst));
            burst.clear();
        }
        got.extend(dec.push(bit, t));
        burst.push(bit);
        last_bit_us = t;
        assert_eq!(usize::from(dec.pending_bits()), burst.len().min(usize::from(MAX_BITS)));
        assert_eq!(dec.deadline(), Some(t + GAP_US));
    }
    if let Some(deadline) = dec.deadline() {
        assert_eq!(dec.poll(deadline - 1), None, "a frame ended before its gap");
        got.extend(dec.poll(deadline));
        expected.push(decode(&burst));
    }
    assert_eq!(dec.deadline(), None);
    assert_eq!(dec.pending_bits(), 0);

    assert_eq!(got.len(), expected.len(), "frames");
    for (g, e) in got.iter().zip(&expected) {
        match (g, e) {
            (Ok(card), Ok((id, format))) => {
                assert_eq!(card.card.as_str(), id);
                assert_eq!(&card.format, format);
            }
            (Err(g), Err(e)) => assert_eq!(g, e),
            _ => panic!("decoder said {g:?}, expected {e:?}"),
        }
    }
    let errors = expected.iter().filter(|e| e.is_err()).count() as u64;
    assert_eq!(dec.rejected, errors);
});
