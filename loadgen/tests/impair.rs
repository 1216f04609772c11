//! The impairment schedules: the same seed gives exactly the same schedule, another seed another
//! one, and the shares come out as specified.

use bridgepool_loadgen::impair::{Fate, ImpairSpec, Impairer, Impairments, Path, stream_seed};

const PACKETS: usize = 20_000;

fn schedule(spec: &str, seed: u64) -> Vec<Fate> {
    let mut imp = Impairer::new(spec.parse::<ImpairSpec>().unwrap(), seed);
    (0..PACKETS).map(|_| imp.next_fate()).collect()
}

fn share(fates: &[Fate], f: impl Fn(&Fate) -> bool) -> f64 {
    fates.iter().filter(|x| f(x)).count() as f64 * 100.0 / fates.len() as f64
}

const ALL: &str = "loss=1,burst=2/4,jitter=10/20-60,reorder=1,dup=0.5";

#[test]
fn the_same_seed_gives_exactly_the_same_schedule() {
    assert_eq!(schedule(ALL, 42), schedule(ALL, 42));
    assert_ne!(schedule(ALL, 42), schedule(ALL, 43));
    // Per call and path: the run's impairer for a path is the same schedule every run, and
    // paths and calls differ from each other.
    let imps = Impairments {
        a_tx: ALL.parse().unwrap(),
        b_rx: ALL.parse().unwrap(),
        ..Impairments::default()
    };
    let run = |call, path| {
        let mut i = imps.impairer(7, call, path).unwrap();
        (0..1000).map(|_| i.next_fate()).collect::<Vec<_>>()
    };
    assert_eq!(run(3, Path::ATx), run(3, Path::ATx));
    assert_ne!(run(3, Path::ATx), run(4, Path::ATx));
    assert_ne!(run(3, Path::ATx), run(3, Path::BRx));
    assert!(imps.impairer(7, 3, Path::ARx).is_none(), "unimpaired path");
    assert_ne!(stream_seed(7, 3, Path::ATx), stream_seed(7, 3, Path::BTx));
}

#[test]
fn random_loss_duplicates_and_jitter_come_out_at_their_shares() {
    let f = schedule("loss=2,jitter=10/20-60,dup=1", 1);
    let loss = share(&f, |x| x.drop);
    assert!((1.5..2.5).contains(&loss), "loss {loss} %");
    let dup = share(&f, |x| x.duplicate);
    assert!((0.7..1.3).contains(&dup), "dup {dup} %");
    let jittered = share(&f, |x| x.delay_us > 0);
    assert!((9.0..11.0).contains(&jittered), "jittered {jittered} %");
    assert!(
        f.iter()
            .filter(|x| x.delay_us > 0)
            .all(|x| (20_000..=60_000).contains(&x.delay_us))
    );
    assert!(f.iter().all(|x| !(x.drop && x.duplicate)));
}

#[test]
fn bursty_loss_has_the_mean_and_comes_in_bursts() {
    let f = schedule("burst=5/4", 9);
    let loss = share(&f, |x| x.drop);
    assert!((4.0..6.0).contains(&loss), "loss {loss} %");
    // Mean burst length near 4, where random loss at 5 % gives about 1.05.
    let (mut bursts, mut lost, mut prev) = (0, 0, false);
    for x in &f {
        if x.drop {
            lost += 1;
            bursts += usize::from(!prev);
        }
        prev = x.drop;
    }
    let mean = lost as f64 / bursts as f64;
    assert!((3.0..5.0).contains(&mean), "mean burst {mean}");
}

#[test]
fn reordering_holds_a_packet_past_the_next() {
    let f = schedule("reorder=5", 2);
    let held = share(&f, |x| x.delay_us > 20_000);
    assert!((4.0..6.0).contains(&held), "{held} %");
}
