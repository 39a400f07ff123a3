//! Choosing the shard for a new connection: the one with the fewest live
//! (or already assigned) connections; ties go round-robin from a moving
//! start so equal shards fill evenly. Pure functions, no I/O.

/// Load value that marks a shard as not eligible (its inbox is full or it
/// has stopped).
pub const EXCLUDED: usize = usize::MAX;

/// Index of the least-loaded shard. Among equal loads, the first at or after
/// `start` (wrapping) wins. `None` when every shard is [`EXCLUDED`] or there
/// are none.
pub fn pick_least_loaded(loads: &[usize], start: usize) -> Option<usize> {
    let n = loads.len();
    if n == 0 {
        return None;
    }
    let mut best: Option<(usize, usize)> = None;
    for k in 0..n {
        let i = (start % n + k) % n;
        let l = loads[i];
        if l == EXCLUDED {
            continue;
        }
        if best.is_none_or(|(_, bl)| l < bl) {
            best = Some((i, l));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_fewest() {
        assert_eq!(pick_least_loaded(&[3, 1, 2], 0), Some(1));
        assert_eq!(pick_least_loaded(&[3, 1, 2], 2), Some(1));
        assert_eq!(pick_least_loaded(&[0], 5), Some(0));
        assert_eq!(pick_least_loaded(&[], 0), None);
    }

    #[test]
    fn ties_round_robin() {
        assert_eq!(pick_least_loaded(&[2, 2, 2], 0), Some(0));
        assert_eq!(pick_least_loaded(&[2, 2, 2], 1), Some(1));
        assert_eq!(pick_least_loaded(&[2, 2, 2], 5), Some(2));
        assert_eq!(pick_least_loaded(&[1, 2, 1], 1), Some(2));
    }

    #[test]
    fn skips_excluded() {
        assert_eq!(pick_least_loaded(&[EXCLUDED, 9], 0), Some(1));
        assert_eq!(pick_least_loaded(&[EXCLUDED, EXCLUDED], 0), None);
    }

    #[test]
    fn eight_connections_split_evenly() {
        // Simulate the acceptor: 8 connections over 2 shards, then 3 close on
        // shard 0; new ones go to shard 0 until it catches up.
        let mut loads = [0usize; 2];
        for c in 0..8 {
            let i = pick_least_loaded(&loads, c).unwrap();
            loads[i] += 1;
        }
        assert_eq!(loads, [4, 4]);
        loads[0] -= 3;
        for c in 0..3 {
            let i = pick_least_loaded(&loads, c).unwrap();
            assert_eq!(i, 0);
            loads[i] += 1;
        }
    }
}
