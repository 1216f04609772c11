//! Placement: power of two choices weighted by headroom, over a snapshot of the pool. Pure: no
//! network, no clock; the randomness is passed in, so tests and proptests are deterministic.
//!
//! Two candidates are drawn at random among workers that are ready and have headroom; the one
//! with more headroom wins. That spreads load like "least loaded" without every replica herding
//! onto the same worker between heartbeats. The fallbacks, when a worker refuses, follow in
//! decreasing headroom.

use rand::Rng;

/// One worker as placement sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Worker id.
    pub id: std::sync::Arc<str>,
    /// Sessions it can still admit.
    pub headroom: u64,
    /// It admits nothing new.
    pub draining: bool,
    /// Its lease ran out.
    pub lost: bool,
}

impl Candidate {
    fn eligible(&self) -> bool {
        !self.draining && !self.lost && self.headroom > 0
    }
}

/// Up to `tries` worker indexes to try in order: the power-of-two choice first, then the other
/// eligible workers by decreasing headroom. Empty when no worker can take a session.
pub fn order(pool: &[Candidate], rng: &mut impl Rng, tries: usize) -> Vec<usize> {
    let eligible: Vec<usize> = (0..pool.len()).filter(|i| pool[*i].eligible()).collect();
    if eligible.is_empty() || tries == 0 {
        return Vec::new();
    }
    let first = if eligible.len() == 1 {
        eligible[0]
    } else {
        // Two distinct candidates, uniformly.
        let ia = rng.random_range(0..eligible.len());
        let mut ib = rng.random_range(0..eligible.len() - 1);
        if ib >= ia {
            ib += 1;
        }
        let (a, b) = (eligible[ia], eligible[ib]);
        if pool[b].headroom > pool[a].headroom {
            b
        } else {
            a
        }
    };
    let mut rest: Vec<usize> = eligible.into_iter().filter(|i| *i != first).collect();
    rest.sort_by(|x, y| pool[*y].headroom.cmp(&pool[*x].headroom));
    std::iter::once(first).chain(rest).take(tries).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn worker(id: usize, headroom: u64, draining: bool, lost: bool) -> Candidate {
        Candidate {
            id: format!("w{id}").into(),
            headroom,
            draining,
            lost,
        }
    }

    #[test]
    fn empty_or_full_pool_gives_nothing() {
        let mut rng = StdRng::seed_from_u64(1);
        assert!(order(&[], &mut rng, 3).is_empty());
        let full = [
            worker(0, 0, false, false),
            worker(1, 5, true, false),
            worker(2, 5, false, true),
        ];
        assert!(order(&full, &mut rng, 3).is_empty());
    }

    #[test]
    fn fallbacks_by_headroom() {
        let mut rng = StdRng::seed_from_u64(7);
        let pool = [
            worker(0, 1, false, false),
            worker(1, 9, false, false),
            worker(2, 5, false, false),
        ];
        let o = order(&pool, &mut rng, 3);
        assert_eq!(o.len(), 3);
        let mut sorted = o.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2]);
        assert!(pool[o[1]].headroom >= pool[o[2]].headroom);
    }

    fn pool_strategy() -> impl Strategy<Value = Vec<Candidate>> {
        proptest::collection::vec((0u64..50, any::<bool>(), any::<bool>()), 1..40).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (h, d, l))| worker(i, h, d && i % 3 == 0, l && i % 4 == 0))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn never_a_draining_lost_or_full_worker(pool in pool_strategy(), seed in any::<u64>()) {
            let mut rng = StdRng::seed_from_u64(seed);
            for i in order(&pool, &mut rng, 5) {
                prop_assert!(!pool[i].draining && !pool[i].lost && pool[i].headroom > 0);
            }
        }

        #[test]
        fn placing_until_full_respects_capacity(pool in pool_strategy(), seed in any::<u64>()) {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut pool = pool;
            let capacity: u64 = pool.iter().filter(|c| !c.draining && !c.lost).map(|c| c.headroom).sum();
            let mut placed = 0u64;
            while let Some(&i) = order(&pool, &mut rng, 1).first() {
                pool[i].headroom -= 1;
                placed += 1;
                prop_assert!(placed <= capacity);
            }
            prop_assert_eq!(placed, capacity, "every free slot gets used");
        }

        #[test]
        fn spreads_load_on_equal_workers(n in 2usize..20, seed in any::<u64>()) {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut pool: Vec<Candidate> = (0..n).map(|i| worker(i, 1000, false, false)).collect();
            let per = 50;
            for _ in 0..n * per {
                let i = order(&pool, &mut rng, 1)[0];
                pool[i].headroom -= 1;
            }
            let loads: Vec<u64> = pool.iter().map(|c| 1000 - c.headroom).collect();
            let (min, max) = (*loads.iter().min().unwrap(), *loads.iter().max().unwrap());
            // Two choices keep the spread tight. One random choice would spread about 15 here
            // (binomial, 50 per worker); always the first would put everything on one worker.
            prop_assert!(max - min <= 10, "{loads:?}");
        }
    }
}
