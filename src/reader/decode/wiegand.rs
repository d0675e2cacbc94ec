//! Wiegand: a pulse on D0 is a 0 bit, a pulse on D1 a 1 bit; a frame ends when the lines
//! stay quiet for [`Config::frame_gap_us`].
//!
//! Accepted frames are 26 and 34 bits: a leading even-parity bit over the first half of the
//! data bits, the data, and a trailing odd-parity bit over the second half. The canonical
//! id is the data bits in upper-case hex (6 characters for 26-bit, 8 for 34-bit). Anything
//! else (parity error, other length, over-long burst) is an error, never a card.
//!
//! Each reported edge is one bit: debouncing, if any, belongs to the GPIO layer, because a
//! decoder that merged close edges would silently drop real bits.

use super::CardId;

/// Default silence that ends a frame. Bits come every ~1-2 ms; readers leave far more than
/// 25 ms between frames.
pub const DEFAULT_FRAME_GAP_US: u64 = 25_000;
/// Longest burst kept. Longer bursts are noise or an unsupported format and are discarded
/// whole rather than truncated into something that might pass parity.
pub const MAX_BITS: u8 = 64;

/// Decoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Silence (microseconds) after the last bit that ends a frame.
    pub frame_gap_us: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            frame_gap_us: DEFAULT_FRAME_GAP_US,
        }
    }
}

/// The frame format of a read, with the fields the format defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// 26-bit (H10301): 8-bit facility code and 16-bit card number.
    W26 { facility: u8, number: u16 },
    /// 34-bit: 32 data bits.
    W34,
}

/// A good Wiegand frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WiegandCard {
    pub card: CardId,
    pub format: Format,
}

/// Why a frame was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WiegandError {
    #[error("{0}-bit Wiegand frame: only 26 and 34 bits are accepted")]
    Length(u8),
    #[error("Wiegand burst longer than {MAX_BITS} bits")]
    Overlong,
    #[error("parity error in {bits}-bit Wiegand frame")]
    Parity { bits: u8 },
}

/// Streaming Wiegand decoder: [`Wiegand::push`] each bit, and [`Wiegand::poll`] when no bit
/// has come for a while (at [`Wiegand::deadline`]) to end the last frame.
#[derive(Debug, Clone)]
pub struct Wiegand {
    config: Config,
    /// Bits of the frame so far, first bit most significant; the low `len` bits count.
    bits: u64,
    len: u8,
    /// More than MAX_BITS arrived in this burst.
    overflow: bool,
    /// Time of the last bit; meaningful while `len > 0`.
    last_us: u64,
    /// Frames rejected (any [`WiegandError`]).
    pub rejected: u64,
}

impl Default for Wiegand {
    fn default() -> Self {
        Wiegand::new(Config::default())
    }
}

impl Wiegand {
    pub fn new(config: Config) -> Self {
        Wiegand {
            config,
            bits: 0,
            len: 0,
            overflow: false,
            last_us: 0,
            rejected: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Drops a partial frame without reporting it.
    pub fn reset(&mut self) {
        self.bits = 0;
        self.len = 0;
        self.overflow = false;
    }

    /// Bits of the frame in progress (capped at [`MAX_BITS`]).
    pub fn pending_bits(&self) -> u8 {
        self.len
    }

    /// When the frame in progress ends if no further bit comes: the time to call `poll`.
    pub fn deadline(&self) -> Option<u64> {
        (self.len > 0).then(|| self.last_us.saturating_add(self.config.frame_gap_us))
    }

    /// One bit (`false` = D0, `true` = D1) at `t_us`. If the silence before it ended the
    /// previous frame, that frame's result is returned and this bit starts a new one.
    pub fn push(&mut self, bit: bool, t_us: u64) -> Option<Result<WiegandCard, WiegandError>> {
        let ended = self.poll(t_us);
        if self.len < MAX_BITS {
            self.bits = (self.bits << 1) | u64::from(bit);
            self.len += 1;
        } else {
            self.overflow = true;
        }
        self.last_us = t_us;
        ended
    }

    /// Ends the frame in progress if the lines have been quiet for the frame gap at
    /// `now_us`; returns its result. `None` while a frame may still be arriving or when
    /// there is none.
    pub fn poll(&mut self, now_us: u64) -> Option<Result<WiegandCard, WiegandError>> {
        // A clock step backwards reads as "no time passed": the frame stays open.
        if self.len == 0 || now_us.saturating_sub(self.last_us) < self.config.frame_gap_us {
            return None;
        }
        let result = self.decode();
        self.reset();
        if result.is_err() {
            self.rejected = self.rejected.wrapping_add(1);
        }
        Some(result)
    }

    fn decode(&self) -> Result<WiegandCard, WiegandError> {
        if self.overflow {
            return Err(WiegandError::Overlong);
        }
        let len = self.len;
        if len != 26 && len != 34 {
            return Err(WiegandError::Length(len));
        }
        let data_bits = u32::from(len - 2);
        let half = data_bits / 2;
        let data = (self.bits >> 1) & ((1u64 << data_bits) - 1);
        let leading = (self.bits >> (len - 1)) & 1;
        let trailing = self.bits & 1;
        let first_half = data >> half;
        let second_half = data & ((1u64 << half) - 1);
        let even_ok = (leading as u32 + first_half.count_ones()) % 2 == 0;
        let odd_ok = (trailing as u32 + second_half.count_ones()) % 2 == 1;
        if !(even_ok && odd_ok) {
            return Err(WiegandError::Parity { bits: len });
        }

        let (card, format) = if len == 26 {
            let card = CardId::format(format_args!("{data:06X}"));
            let format = Format::W26 {
                facility: (data >> 16) as u8,
                number: data as u16,
            };
            (card, format)
        } else {
            (CardId::format(format_args!("{data:08X}")), Format::W34)
        };
        // `format` only fails on a non-canonical string, impossible for fixed-width hex.
        card.map(|card| WiegandCard { card, format })
            .ok_or(WiegandError::Length(len))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    const BIT_US: u64 = 2_000;
    const GAP: u64 = DEFAULT_FRAME_GAP_US;

    /// Feeds `bits` from `start_us`, one every 2 ms, and returns the results the pushes
    /// produced plus the time of the last bit.
    fn send(dec: &mut Wiegand, bits: &[bool], start_us: u64) -> (Vec<Result<WiegandCard, WiegandError>>, u64) {
        let mut out = Vec::new();
        let mut t = start_us;
        for (i, &b) in bits.iter().enumerate() {
            t = start_us + i as u64 * BIT_US;
            out.extend(dec.push(b, t));
        }
        (out, t)
    }

    /// One frame sent and ended by poll.
    fn one_frame(bits: &[bool]) -> Result<WiegandCard, WiegandError> {
        let mut dec = Wiegand::default();
        let (early, last) = send(&mut dec, bits, 1_000);
        assert!(early.is_empty());
        assert_eq!(dec.poll(last + GAP - 1), None, "frame ended too early");
        let result = dec.poll(last + GAP).expect("frame ends after the gap");
        assert_eq!(dec.poll(last + 10 * GAP), None, "reported twice");
        assert_eq!(dec.rejected, u64::from(result.is_err()));
        result
    }

    fn bits_of(value: u64, n: usize) -> Vec<bool> {
        (0..n).rev().map(|i| (value >> i) & 1 == 1).collect()
    }

    /// A well-formed frame around `data` (`n` data bits).
    fn with_parity(data: u64, n: usize) -> Vec<bool> {
        let d = bits_of(data, n);
        let ones = |s: &[bool]| s.iter().filter(|&&b| b).count();
        let mut out = vec![ones(&d[..n / 2]) % 2 == 1];
        out.extend(&d);
        out.push(ones(&d[n / 2..]) % 2 == 0);
        out
    }

    #[test]
    fn fixture_26_bit() {
        for v in &fixtures::load().wiegand26 {
            let got = one_frame(&fixtures::bits(&v.bits)).expect(&v.bits);
            assert_eq!(got.card.as_str(), v.card);
            assert_eq!(
                got.format,
                Format::W26 {
                    facility: v.facility,
                    number: v.number
                }
            );
        }
    }

    #[test]
    fn fixture_34_bit() {
        for v in &fixtures::load().wiegand34 {
            let got = one_frame(&fixtures::bits(&v.bits)).expect(&v.bits);
            assert_eq!(got.card.as_str(), v.card);
            assert_eq!(got.format, Format::W34);
        }
    }

    #[test]
    fn fixture_bad_parity() {
        for v in &fixtures::load().wiegand_bad {
            let bits = fixtures::bits(&v.bits);
            let len = bits.len() as u8;
            assert_eq!(one_frame(&bits), Err(WiegandError::Parity { bits: len }), "{}", v.why);
        }
    }

    #[test]
    fn any_single_bit_flip_is_a_parity_error() {
        let fx = fixtures::load();
        let frames = fx
            .wiegand26
            .iter()
            .map(|v| &v.bits)
            .chain(fx.wiegand34.iter().map(|v| &v.bits));
        for s in frames {
            let good = fixtures::bits(s);
            for i in 0..good.len() {
                let mut bad = good.clone();
                bad[i] = !bad[i];
                assert_eq!(
                    one_frame(&bad),
                    Err(WiegandError::Parity { bits: good.len() as u8 }),
                    "{s} flipped at {i}"
                );
            }
        }
    }

    #[test]
    fn generated_frames_round_trip() {
        for data in [0u64, 1, 0xABCDEF, 0x800001, 0xFFFFFF, 0x123456] {
            let got = one_frame(&with_parity(data, 24)).unwrap();
            assert_eq!(got.card.to_string(), format!("{data:06X}"));
        }
        for data in [0u64, 0xFFFF_FFFF, 0x8000_0001, 0x0BAD_F00D] {
            let got = one_frame(&with_parity(data, 32)).unwrap();
            assert_eq!(got.card.to_string(), format!("{data:08X}"));
        }
    }

    #[test]
    fn other_lengths_rejected() {
        for n in [1usize, 4, 8, 24, 25, 27, 32, 33, 35, 37, 64] {
            // Well-formed parity around n-2 data bits, so only the length is wrong.
            let bits = if n >= 3 {
                with_parity(0x5A5A_5A5A_5A5A & ((1 << (n - 2)) - 1), n - 2)
            } else {
                vec![true; n]
            };
            assert_eq!(bits.len(), n);
            assert_eq!(one_frame(&bits), Err(WiegandError::Length(n as u8)), "{n}");
        }
    }

    #[test]
    fn next_bit_after_gap_ends_the_frame() {
        let fx = fixtures::load();
        let a = fixtures::bits(&fx.wiegand26[0].bits);
        let b = fixtures::bits(&fx.wiegand34[0].bits);
        let mut dec = Wiegand::default();
        let (r1, last) = send(&mut dec, &a, 0);
        assert!(r1.is_empty());
        // No poll: the first bit of the next frame, after the gap, reports the first.
        let (r2, last) = send(&mut dec, &b, last + GAP);
        assert_eq!(r2.len(), 1);
        assert_eq!(r2[0].as_ref().unwrap().card.as_str(), fx.wiegand26[0].card);
        let r3 = dec.poll(last + GAP).unwrap().unwrap();
        assert_eq!(r3.card.as_str(), fx.wiegand34[0].card);
    }

    #[test]
    fn gap_inside_a_frame_splits_it_and_both_halves_are_rejected() {
        let fx = fixtures::load();
        let bits = fixtures::bits(&fx.wiegand26[0].bits);
        let mut dec = Wiegand::default();
        let (r, last) = send(&mut dec, &bits[..10], 0);
        assert!(r.is_empty());
        let (r, last) = send(&mut dec, &bits[10..], last + GAP);
        assert_eq!(r, vec![Err(WiegandError::Length(10))]);
        assert_eq!(dec.poll(last + GAP), Some(Err(WiegandError::Length(16))));
        assert_eq!(dec.rejected, 2);
    }

    #[test]
    fn a_pause_shorter_than_the_gap_keeps_the_frame() {
        let fx = fixtures::load();
        let bits = fixtures::bits(&fx.wiegand26[0].bits);
        let mut dec = Wiegand::default();
        let (_, last) = send(&mut dec, &bits[..10], 0);
        let (r, last) = send(&mut dec, &bits[10..], last + GAP - 1);
        assert!(r.is_empty());
        assert_eq!(dec.poll(last + GAP).unwrap().unwrap().card.as_str(), "7B11D7");
    }

    #[test]
    fn configurable_gap() {
        let fx = fixtures::load();
        let bits = fixtures::bits(&fx.wiegand26[0].bits);
        let mut dec = Wiegand::new(Config { frame_gap_us: 50_000 });
        let (_, last) = send(&mut dec, &bits[..10], 0);
        // 30 ms would split a frame at the default gap, not at 50 ms.
        let (r, last) = send(&mut dec, &bits[10..], last + 30_000);
        assert!(r.is_empty());
        assert_eq!(dec.poll(last + 49_999), None);
        assert!(dec.poll(last + 50_000).unwrap().is_ok());
    }

    #[test]
    fn over_long_burst_rejected_then_good_frame_accepted() {
        let fx = fixtures::load();
        let mut dec = Wiegand::default();
        let noise: Vec<bool> = (0..1000).map(|i| i % 3 == 0).collect();
        let (r, last) = send(&mut dec, &noise, 0);
        assert!(r.is_empty());
        assert_eq!(dec.pending_bits(), MAX_BITS);
        assert_eq!(dec.poll(last + GAP), Some(Err(WiegandError::Overlong)));
        let good = fixtures::bits(&fx.wiegand34[1].bits);
        let (r, last) = send(&mut dec, &good, last + GAP + 1);
        assert!(r.is_empty());
        assert_eq!(dec.poll(last + GAP).unwrap().unwrap().card.as_str(), "DEADBEEF");
        assert_eq!(dec.rejected, 1);
    }

    #[test]
    fn exactly_max_bits_is_a_length_error_and_one_more_is_overlong() {
        let mut dec = Wiegand::default();
        let (_, last) = send(&mut dec, &[true; 64], 0);
        assert_eq!(dec.poll(last + GAP), Some(Err(WiegandError::Length(64))));
        let (_, last) = send(&mut dec, &[true; 65], last + GAP);
        assert_eq!(dec.poll(last + GAP), Some(Err(WiegandError::Overlong)));
    }

    #[test]
    fn deadline_and_idle_poll() {
        let mut dec = Wiegand::default();
        assert_eq!(dec.poll(u64::MAX), None);
        assert_eq!(dec.deadline(), None);
        dec.push(true, 7_000);
        assert_eq!(dec.deadline(), Some(7_000 + GAP));
        dec.reset();
        assert_eq!(dec.deadline(), None);
        assert_eq!(dec.poll(u64::MAX), None);
        // Backwards clock and end-of-time timestamps do not panic.
        dec.push(true, u64::MAX);
        assert_eq!(dec.deadline(), Some(u64::MAX));
        assert_eq!(dec.poll(0), None);
    }
}
