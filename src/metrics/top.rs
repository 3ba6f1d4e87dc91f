//! The bounded per-file view: the files furthest behind.
//!
//! A series per followed file would make 10,000 series on a host that
//! follows 10,000 files, most of them 0 and all of them churning with
//! rotation. The question an operator asks is "which files are behind, and
//! by how much", which the few largest answer; the per-input sum
//! (`logferry_lag_bytes`) covers the rest, and `logferry status` lists
//! every file on the host itself.

/// The `n` items with the largest `key`, largest first, in O(len) plus
/// O(n log n). Equal keys keep no particular order: make the key total
/// (e.g. lag, then path) for a stable view.
pub fn top_n<T, K: Ord>(
    items: impl IntoIterator<Item = T>,
    n: usize,
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    if n == 0 {
        return Vec::new();
    }
    let mut v: Vec<T> = items.into_iter().collect();
    let larger_first = |a: &T, b: &T| key(b).cmp(&key(a));
    if v.len() > n {
        v.select_nth_unstable_by(n - 1, larger_first);
        v.truncate(n);
    }
    v.sort_by(larger_first);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;

    #[test]
    fn keeps_the_largest_largest_first() {
        let lags = [5u64, 90, 0, 17, 90, 3, 40, 1];
        let top = top_n(lags, 3, |l| *l);
        assert_eq!(top, [90, 90, 40]);
    }

    #[test]
    fn fewer_items_than_n_are_all_kept_sorted() {
        assert_eq!(top_n([2u64, 7, 4], 10, |l| *l), [7, 4, 2]);
        assert!(top_n(Vec::<u64>::new(), 10, |l| *l).is_empty());
        assert!(top_n([1u64, 2], 0, |l| *l).is_empty());
    }

    #[test]
    fn ties_break_by_path_when_the_key_says_so() {
        let files = [("/b", 10u64), ("/a", 10), ("/c", 10), ("/d", 1)];
        let top = top_n(files, 2, |(p, lag)| (*lag, Reverse(*p)));
        assert_eq!(top, [("/a", 10), ("/b", 10)]);
    }

    #[test]
    fn matches_a_full_sort_on_many_items() {
        let lags: Vec<u64> = (0..10_000u64).map(|i| (i * 7919) % 10_007).collect();
        let mut sorted = lags.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(top_n(lags, 10, |l| *l), sorted[..10]);
    }
}
