//! Allocation of a discount over lines (rules.md, "Allocation").

/// Splits `x` over `weights` so that the shares sum to exactly `x` and no share exceeds
/// its weight: floors first, then the leftover minor units one each to the largest
/// fractional parts, ties to the earlier line. Requires `0 <= x <= sum(weights)`.
pub fn allocate(x: i64, weights: &[i64]) -> Vec<i64> {
    let total: i128 = weights.iter().map(|&w| w as i128).sum();
    assert!(x >= 0 && (x as i128) <= total, "allocation of {x} over {total}");
    if x == 0 || total == 0 {
        return vec![0; weights.len()];
    }
    let x128 = x as i128;
    let mut shares: Vec<i64> = weights.iter().map(|&w| (x128 * w as i128 / total) as i64).collect();
    let leftover = x - shares.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Stable sort keeps the earlier line first among equal remainders.
    order.sort_by_key(|&i| std::cmp::Reverse(x128 * weights[i] as i128 % total));
    for &i in order.iter().take(leftover as usize) {
        shares[i] += 1;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn worked_examples() {
        assert_eq!(allocate(1000, &[6900, 5990]), vec![535, 465]);
        assert_eq!(allocate(2500, &[57000, 4275]), vec![2326, 174]);
        assert_eq!(allocate(2, &[1, 1, 1]), vec![1, 1, 0]);
        assert_eq!(allocate(0, &[5, 5]), vec![0, 0]);
        assert_eq!(allocate(10, &[0, 10]), vec![0, 10]);
    }

    proptest! {
        #[test]
        fn sums_exactly_and_never_exceeds_a_weight(
            weights in prop::collection::vec(0i64..1_000_000_000, 1..20),
            frac in 0u32..=10000,
        ) {
            let total: i64 = weights.iter().sum();
            let x = (total as i128 * frac as i128 / 10000) as i64;
            let shares = allocate(x, &weights);
            prop_assert_eq!(shares.iter().sum::<i64>(), x);
            for (s, w) in shares.iter().zip(&weights) {
                prop_assert!(*s >= 0 && s <= w);
            }
        }
    }
}
