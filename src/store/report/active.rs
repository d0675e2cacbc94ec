//! Active and repeat members of any window of days, exact, from a few keys per day of
//! the window (not a key per member and day, which a year of a large chain makes
//! millions of).
//!
//! A member whose checkouts fall on days t1 <= t2 <= … <= tk (one entry per checkout)
//! has, inside a window [from, to], some run of k' of them. Counting over members, with
//! `n` the checkouts in the window, `pairs` the spans (t_i, t_i+1) and `triples` the
//! spans (t_i, t_i+2) that lie inside it:
//!
//! - active = n - pairs (a member with k' >= 1 adds k' - (k' - 1) = 1);
//! - repeat = pairs - triples (k' - 1 - (k' - 2) = 1 when k' >= 2, else 0).
//!
//! So a window needs the spans (a, b) with a >= from and b <= to. Each span is kept
//! under its end day b by its length b - a: a day's `SpanDay` holds its checkouts and,
//! per kind, the spans counted in buckets of `BUCKET` lengths; a bucket's exact lengths
//! are a key of their own. A window reads, for each of its days b, the `SpanDay` and at
//! most one bucket per kind (the one holding length b - from): three reads per day.
//!
//! A checkout joins its member's sequence: usually at its end (the new day is the
//! latest; the member record keeps its last two days), else, when records arrive out of
//! order (pushes from two shops), between two of its days, found from the member's
//! checkout-day keys. Either way only the spans next to it change (`spans_moved`).

use serde::{Deserialize, Serialize};

use super::{day_bytes, scoped};
use crate::error::Result;
use crate::model::DayNo;

/// Span lengths per bucket.
pub(in crate::store) const BUCKET: u32 = 64;

/// A pair (consecutive checkouts) or a triple (checkouts two apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(in crate::store) enum Span {
    Pair,
    Triple,
}

impl Span {
    fn byte(self) -> u8 {
        match self {
            Span::Pair => b'p',
            Span::Triple => b't',
        }
    }

    pub(in crate::store) fn name_of(b: u8) -> &'static str {
        match b {
            b'p' => "pairs",
            b't' => "triples",
            _ => "?",
        }
    }
}

/// One end day's figures under one scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(in crate::store) struct SpanDay {
    /// Checkouts of the scope's members on the day.
    pub checkouts: i64,
    /// Spans ending on the day, by bucket of their length: (bucket, count), in order.
    pub pairs: Vec<(u16, i64)>,
    pub triples: Vec<(u16, i64)>,
}

impl SpanDay {
    /// Moves a span of `kind` in or out of `bucket`.
    pub(in crate::store) fn bump(&mut self, kind: Span, bucket: u16, delta: i64) {
        let list = match kind {
            Span::Pair => &mut self.pairs,
            Span::Triple => &mut self.triples,
        };
        bump(list, bucket, delta);
    }

    fn buckets_of(&self, kind: Span) -> &[(u16, i64)] {
        match kind {
            Span::Pair => &self.pairs,
            Span::Triple => &self.triples,
        }
    }
}

/// A bucket's spans by their length within it: (length % BUCKET, count), in order.
pub(in crate::store) type SpanBucket = Vec<(u8, i64)>;

/// Adds `delta` to the entry `at` of a sorted count list, dropping it at zero.
pub(in crate::store) fn bump<K: Ord + Copy>(list: &mut Vec<(K, i64)>, at: K, delta: i64) {
    match list.binary_search_by(|(k, _)| k.cmp(&at)) {
        Ok(i) => {
            list[i].1 += delta;
            if list[i].1 == 0 {
                list.remove(i);
            }
        }
        Err(i) => list.insert(i, (at, delta)),
    }
}

/// A span gained or lost: (kind, start day, end day, +1 or -1).
pub(in crate::store) type SpanMove = (Span, DayNo, DayNo, i64);

/// The spans that change when a checkout on `day` joins a member's sequence, given the
/// member's two checkouts just before it (at or before `day`, oldest first) and the two
/// just after it (after `day`, oldest first).
pub(in crate::store) fn spans_moved(before: &[DayNo], day: DayNo, after: &[DayNo]) -> Vec<SpanMove> {
    let x1 = before.last().copied();
    let x2 = before.len().checked_sub(2).map(|i| before[i]);
    let (y1, y2) = (after.first().copied(), after.get(1).copied());
    let mut out = Vec::with_capacity(7);
    let mut span = |kind, a: Option<DayNo>, b: Option<DayNo>, delta| {
        if let (Some(a), Some(b)) = (a, b) {
            out.push((kind, a, b, delta));
        }
    };
    // … x2 x1 | y1 y2 …  becomes  … x2 x1 day y1 y2 …
    span(Span::Pair, x1, y1, -1);
    span(Span::Pair, x1, Some(day), 1);
    span(Span::Pair, Some(day), y1, 1);
    span(Span::Triple, x2, y1, -1);
    span(Span::Triple, x1, y2, -1);
    span(Span::Triple, x2, Some(day), 1);
    span(Span::Triple, x1, y1, 1);
    span(Span::Triple, Some(day), y2, 1);
    out
}

/// The last two days of a sequence after a checkout on `day` joined it, from the two
/// before it and the two after it.
pub(in crate::store) fn last_two(before: &[DayNo], day: DayNo, after: &[DayNo]) -> Vec<DayNo> {
    let mut all: Vec<DayNo> = before
        .iter()
        .copied()
        .chain([day])
        .chain(after.iter().copied())
        .collect();
    let cut = all.len().saturating_sub(2);
    all.drain(..cut);
    all
}

/// The neighbours of `day` in a member's checkout days given as (day, checkouts) in
/// order: the two checkouts at or before it and the two after it.
pub(in crate::store) fn neighbours(days: &[(DayNo, u32)], day: DayNo) -> (Vec<DayNo>, Vec<DayNo>) {
    let split = days.partition_point(|&(d, _)| d <= day);
    let mut before: Vec<DayNo> = days[..split]
        .iter()
        .rev()
        .flat_map(|&(d, n)| std::iter::repeat_n(d, n as usize))
        .take(2)
        .collect();
    before.reverse();
    let after = days[split..]
        .iter()
        .flat_map(|&(d, n)| std::iter::repeat_n(d, n as usize))
        .take(2)
        .collect();
    (before, after)
}

pub(in crate::store) fn span_day_key(scope: &str, day: DayNo) -> Vec<u8> {
    let mut v = scoped(super::SPAN_DAY, scope);
    v.extend_from_slice(&day_bytes(day));
    v
}

pub(in crate::store) fn span_bucket_key(scope: &str, day: DayNo, kind: Span, bucket: u16) -> Vec<u8> {
    let mut v = span_day_key(scope, day);
    v.push(kind.byte());
    v.extend_from_slice(&bucket.to_be_bytes());
    v
}

/// A member's checkouts on one day (`u` + member + 0 + day).
pub(in crate::store) fn member_checkout_day_key(member_id: &str, day: DayNo) -> Vec<u8> {
    let mut v = member_checkout_days_prefix(member_id);
    v.extend_from_slice(&day_bytes(day));
    v
}

pub(in crate::store) fn member_checkout_days_prefix(member_id: &str) -> Vec<u8> {
    scoped(super::MEMBER_CHECKOUT_DAY, member_id)
}

/// The key holding a span's bucket, and where in it the span goes.
pub(in crate::store) fn bucket_of(a: DayNo, b: DayNo) -> (u16, u8) {
    let len = (b - a).max(0) as u32;
    ((len / BUCKET).min(u16::MAX as u32) as u16, (len % BUCKET) as u8)
}

/// Active and repeat members of days `from..=to` under `scope`, reading its values
/// through `read_day` and `read_bucket` (point reads: any store serves them).
pub(in crate::store) fn count_window(
    scope: &str,
    from: DayNo,
    to: DayNo,
    mut read_day: impl FnMut(&[u8]) -> Result<Option<SpanDay>>,
    mut read_bucket: impl FnMut(&[u8]) -> Result<Option<SpanBucket>>,
) -> Result<(i64, i64)> {
    let (mut checkouts, mut pairs, mut triples) = (0i64, 0i64, 0i64);
    for b in from..=to {
        let Some(day) = read_day(&span_day_key(scope, b))? else {
            continue;
        };
        checkouts += day.checkouts;
        // Spans ending on b lie inside the window if their length is at most b - from.
        let (cut, within) = bucket_of(from, b);
        for kind in [Span::Pair, Span::Triple] {
            let mut n = 0;
            for &(bucket, count) in day.buckets_of(kind) {
                if bucket < cut {
                    n += count;
                } else {
                    if bucket == cut {
                        let exact = read_bucket(&span_bucket_key(scope, b, kind, bucket))?.unwrap_or_default();
                        n += exact
                            .iter()
                            .filter(|(len, _)| *len <= within)
                            .map(|(_, c)| c)
                            .sum::<i64>();
                    }
                    break;
                }
            }
            match kind {
                Span::Pair => pairs += n,
                Span::Triple => triples += n,
            }
        }
    }
    Ok((checkouts - pairs, pairs - triples))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;

    use super::super::CHAIN;
    use super::*;

    /// The aggregates in memory, kept by the same moves the store makes.
    #[derive(Default)]
    struct Kept {
        days: HashMap<Vec<u8>, SpanDay>,
        buckets: HashMap<Vec<u8>, SpanBucket>,
        member_days: HashMap<u32, BTreeMap<DayNo, u32>>,
    }

    impl Kept {
        fn checkout(&mut self, member: u32, day: DayNo) {
            let days: Vec<(DayNo, u32)> = self
                .member_days
                .get(&member)
                .map(|m| m.iter().map(|(&d, &n)| (d, n)).collect())
                .unwrap_or_default();
            let (before, after) = neighbours(&days, day);
            *self.member_days.entry(member).or_default().entry(day).or_default() += 1;
            self.days.entry(span_day_key(CHAIN, day)).or_default().checkouts += 1;
            for (kind, a, b, delta) in spans_moved(&before, day, &after) {
                let (bucket, len) = bucket_of(a, b);
                self.days
                    .entry(span_day_key(CHAIN, b))
                    .or_default()
                    .bump(kind, bucket, delta);
                bump(
                    self.buckets.entry(span_bucket_key(CHAIN, b, kind, bucket)).or_default(),
                    len,
                    delta,
                );
            }
        }

        fn count(&self, from: DayNo, to: DayNo) -> (i64, i64) {
            count_window(
                CHAIN,
                from,
                to,
                |k| Ok(self.days.get(k).cloned()),
                |k| Ok(self.buckets.get(k).cloned()),
            )
            .expect("in memory")
        }
    }

    fn naive(checkouts: &[(u32, DayNo)], from: DayNo, to: DayNo) -> (i64, i64) {
        let mut per: HashMap<u32, u32> = HashMap::new();
        for &(m, _) in checkouts.iter().filter(|(_, d)| (from..=to).contains(d)) {
            *per.entry(m).or_default() += 1;
        }
        (per.len() as i64, per.values().filter(|&&n| n >= 2).count() as i64)
    }

    #[test]
    fn a_member_with_three_checkouts_is_one_active_one_repeat() {
        let mut k = Kept::default();
        for d in [10, 400, 10] {
            k.checkout(7, d);
        }
        assert_eq!(k.count(0, 500), (1, 1));
        assert_eq!(k.count(10, 10), (1, 1), "two checkouts on one day make a repeat member");
        assert_eq!(k.count(11, 399), (0, 0));
        assert_eq!(k.count(11, 400), (1, 0));
    }

    proptest! {
        /// Any checkouts in any order, any window: the figures equal a count over members.
        #[test]
        fn windows_count_like_members(
            checkouts in proptest::collection::vec((0u32..12, 0i32..300), 0..120),
            windows in proptest::collection::vec((0i32..300, 0i32..300), 1..12),
        ) {
            let mut k = Kept::default();
            for &(m, d) in &checkouts {
                k.checkout(m, d);
            }
            for (a, b) in windows {
                let (from, to) = (a.min(b), a.max(b));
                prop_assert_eq!(k.count(from, to), naive(&checkouts, from, to), "window {}..={}", from, to);
            }
        }
    }
}
