//! Seeded network impairments per leg and direction: loss (random, or bursty with a
//! Gilbert-Elliott chain), jitter (a share of packets delayed by a range), reordering and
//! duplicates.
//!
//! An [`Impairer`] decides the fate of each packet of one stream in order. It draws the same
//! number of random values for every packet whatever happens to it, so the schedule is a pure
//! function of the seed and the packet's index: the same seed gives exactly the same drops,
//! delays and duplicates, run after run, whatever the timing. The pacer applies the send side
//! (what the loadgen's legs send to the target), the receiver the receive side (what the target
//! sends back), each stream with its own seed from [`stream_seed`].

use std::fmt;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Packet time: a reordered packet is held this long plus a millisecond, so the next one passes it.
const PTIME_US: u64 = 20_000;

/// What happens to the packets of one stream. Shares are percent (0 to 100).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImpairSpec {
    /// Random loss, percent of packets.
    pub loss_pct: f64,
    /// Bursty loss (Gilbert-Elliott): mean loss in percent and mean burst length in packets.
    pub burst: Option<(f64, f64)>,
    /// Percent of packets delayed by `jitter_ms`.
    pub jitter_pct: f64,
    /// The delay range of jittered packets, ms (uniform).
    pub jitter_ms: (f64, f64),
    /// Percent of packets held back one packet time (they arrive after the next).
    pub reorder_pct: f64,
    /// Percent of packets sent twice.
    pub duplicate_pct: f64,
    /// Jittered packets keep their order (`order=keep`): a delayed packet holds back the ones
    /// behind it, as a FIFO queue does, instead of being overtaken.
    #[serde(default)]
    pub keep_order: bool,
}

/// A malformed impairment spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImpairError {
    /// A `key=value` item the parser does not know.
    #[error(
        "unknown impairment {0:?} (loss=P, burst=P/LEN, jitter=P/MIN-MAX, reorder=P, dup=P, order=keep)"
    )]
    UnknownKey(String),
    /// A value that is not a number in range.
    #[error("bad value in {item:?}: {why}")]
    BadValue {
        /// The item.
        item: String,
        /// What is wrong.
        why: &'static str,
    },
}

impl ImpairSpec {
    /// No impairment at all.
    pub fn is_none(&self) -> bool {
        self.loss_pct == 0.0
            && self.burst.is_none()
            && self.jitter_pct == 0.0
            && self.reorder_pct == 0.0
            && self.duplicate_pct == 0.0
    }
}

impl FromStr for ImpairSpec {
    type Err = ImpairError;

    /// `loss=1,burst=2/3,jitter=10/20-60,reorder=0.5,dup=0.5` (percent; burst mean length in
    /// packets; jitter delay range in ms); `none` or empty is no impairment.
    fn from_str(s: &str) -> Result<Self, ImpairError> {
        let mut spec = Self::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "none" {
                continue;
            }
            let bad = |why| ImpairError::BadValue {
                item: item.to_owned(),
                why,
            };
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| ImpairError::UnknownKey(item.to_owned()))?;
            let pct = |v: &str| -> Result<f64, ImpairError> {
                let p: f64 = v
                    .trim()
                    .trim_end_matches('%')
                    .parse()
                    .map_err(|_| bad("not a number"))?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(bad("a percentage must be 0 to 100"));
                }
                Ok(p)
            };
            let positive = |v: &str| -> Result<f64, ImpairError> {
                let x: f64 = v
                    .trim()
                    .trim_end_matches("ms")
                    .parse()
                    .map_err(|_| bad("not a number"))?;
                if !x.is_finite() || x < 0.0 {
                    return Err(bad("must be a finite number >= 0"));
                }
                Ok(x)
            };
            match key.trim() {
                "loss" => spec.loss_pct = pct(value)?,
                "burst" => {
                    let (p, len) = value.split_once('/').ok_or(bad("burst=P/LEN"))?;
                    let (p, len) = (pct(p)?, positive(len)?);
                    if len < 1.0 || p >= 100.0 {
                        return Err(bad("burst length >= 1 packet, loss < 100 %"));
                    }
                    spec.burst = Some((p, len));
                }
                "jitter" => {
                    let (p, range) = value.split_once('/').ok_or(bad("jitter=P/MIN-MAX"))?;
                    let (lo, hi) = range.split_once('-').ok_or(bad("jitter=P/MIN-MAX"))?;
                    let (lo, hi) = (positive(lo)?, positive(hi)?);
                    if lo > hi || hi > 10_000.0 {
                        return Err(bad("jitter range MIN <= MAX <= 10000 ms"));
                    }
                    spec.jitter_pct = pct(p)?;
                    spec.jitter_ms = (lo, hi);
                }
                "reorder" => spec.reorder_pct = pct(value)?,
                "dup" | "duplicate" => spec.duplicate_pct = pct(value)?,
                "order" if value.trim() == "keep" => spec.keep_order = true,
                _ => return Err(ImpairError::UnknownKey(item.to_owned())),
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for ImpairSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            return f.write_str("none");
        }
        let mut parts = Vec::new();
        if self.loss_pct > 0.0 {
            parts.push(format!("loss={}", self.loss_pct));
        }
        if let Some((p, len)) = self.burst {
            parts.push(format!("burst={p}/{len}"));
        }
        if self.jitter_pct > 0.0 {
            parts.push(format!(
                "jitter={}/{}-{}",
                self.jitter_pct, self.jitter_ms.0, self.jitter_ms.1
            ));
        }
        if self.reorder_pct > 0.0 {
            parts.push(format!("reorder={}", self.reorder_pct));
        }
        if self.duplicate_pct > 0.0 {
            parts.push(format!("dup={}", self.duplicate_pct));
        }
        if self.keep_order {
            parts.push("order=keep".to_owned());
        }
        f.write_str(&parts.join(","))
    }
}

/// The fate of one packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fate {
    /// The packet never arrives.
    pub drop: bool,
    /// It arrives this much later than sent (jitter, or held back to reorder), microseconds.
    pub delay_us: u64,
    /// It arrives twice (the copy with the same delay).
    pub duplicate: bool,
}

/// The impairment schedule of one stream.
#[derive(Clone, Debug)]
pub struct Impairer {
    spec: ImpairSpec,
    rng: StdRng,
    /// Gilbert-Elliott state: in a loss burst.
    bad: bool,
    /// The previous packet's delay, for `keep_order`.
    previous_delay_us: u64,
}

impl Impairer {
    /// The schedule of `spec` from `seed`.
    pub fn new(spec: ImpairSpec, seed: u64) -> Self {
        Self {
            spec,
            rng: StdRng::seed_from_u64(seed),
            bad: false,
            previous_delay_us: 0,
        }
    }

    /// The fate of the next packet. Always draws six values, so packet `n`'s fate depends only
    /// on the seed and `n`.
    pub fn next_fate(&mut self) -> Fate {
        let draws: [f64; 6] = std::array::from_fn(|_| self.rng.random::<f64>());
        let s = &self.spec;
        let mut drop = draws[0] * 100.0 < s.loss_pct;
        if let Some((p, len)) = s.burst {
            // Two states: Good never loses, Bad always does. Leaving Bad with r = 1/len gives
            // bursts of mean length len; entering with p = r P / (100 - P) gives mean loss P.
            let r = 1.0 / len;
            let enter = r * p / (100.0 - p);
            self.bad = if self.bad {
                draws[1] >= r
            } else {
                draws[1] < enter
            };
            drop |= self.bad;
        }
        let mut delay_us = 0;
        if draws[2] * 100.0 < s.jitter_pct {
            let (lo, hi) = s.jitter_ms;
            delay_us = ((lo + (hi - lo) * draws[3]) * 1000.0) as u64;
        }
        if draws[4] * 100.0 < s.reorder_pct {
            delay_us = delay_us.max(PTIME_US + 1000);
        }
        if s.keep_order {
            // Sent a packet time after the previous one: it may not arrive before it.
            delay_us = delay_us.max(self.previous_delay_us.saturating_sub(PTIME_US));
            self.previous_delay_us = delay_us;
        }
        Fate {
            drop,
            delay_us,
            duplicate: !drop && draws[5] * 100.0 < s.duplicate_pct,
        }
    }
}

/// Which stream of a call an impairment applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Path {
    /// What leg A (the G.711 gateway side) sends to the target.
    ATx,
    /// What leg A receives from the target.
    ARx,
    /// What leg B (the Opus client side) sends to the target.
    BTx,
    /// What leg B receives from the target.
    BRx,
}

/// The seed of one stream's schedule: the run's seed, the call and the path, mixed (SplitMix64)
/// so neighbouring calls get unrelated schedules.
pub fn stream_seed(seed: u64, call: u64, path: Path) -> u64 {
    let mut z = seed
        ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (path as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The impairments of a run, per leg and direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Impairments {
    /// Leg A's sends (G.711 into the target).
    pub a_tx: ImpairSpec,
    /// Leg A's receives (G.711 out of the target).
    pub a_rx: ImpairSpec,
    /// Leg B's sends (Opus into the target).
    pub b_tx: ImpairSpec,
    /// Leg B's receives (Opus out of the target).
    pub b_rx: ImpairSpec,
}

impl Impairments {
    /// The spec of one path.
    pub fn spec(&self, path: Path) -> ImpairSpec {
        match path {
            Path::ATx => self.a_tx,
            Path::ARx => self.a_rx,
            Path::BTx => self.b_tx,
            Path::BRx => self.b_rx,
        }
    }

    /// The schedule of `path` of call `call`, or `None` when that path is not impaired.
    pub fn impairer(&self, seed: u64, call: u64, path: Path) -> Option<Impairer> {
        let spec = self.spec(path);
        (!spec.is_none()).then(|| Impairer::new(spec, stream_seed(seed, call, path)))
    }

    /// Whether anything is impaired.
    pub fn any(&self) -> bool {
        [self.a_tx, self.a_rx, self.b_tx, self.b_rx]
            .iter()
            .any(|s| !s.is_none())
    }
}

/// Counts of what the impairments did to the packets of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImpairCounts {
    /// Packets that went through an impaired path.
    pub packets: u64,
    /// Dropped.
    pub dropped: u64,
    /// Delayed (jitter or reordering).
    pub delayed: u64,
    /// Duplicated.
    pub duplicated: u64,
}

impl ImpairCounts {
    /// Counts one fate.
    pub fn count(&mut self, fate: Fate) {
        self.packets += 1;
        self.dropped += u64::from(fate.drop);
        self.delayed += u64::from(!fate.drop && fate.delay_us > 0);
        self.duplicated += u64::from(fate.duplicate);
    }

    /// Adds another set.
    pub fn add(&mut self, o: &Self) {
        self.packets += o.packets;
        self.dropped += o.dropped;
        self.delayed += o.delayed;
        self.duplicated += o.duplicated;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key_and_prints_it_back() {
        let spec: ImpairSpec = "loss=1,burst=2/3,jitter=10/20-60,reorder=0.5,dup=0.25"
            .parse()
            .unwrap();
        assert_eq!(spec.loss_pct, 1.0);
        assert_eq!(spec.burst, Some((2.0, 3.0)));
        assert_eq!((spec.jitter_pct, spec.jitter_ms), (10.0, (20.0, 60.0)));
        assert_eq!((spec.reorder_pct, spec.duplicate_pct), (0.5, 0.25));
        assert_eq!(spec.to_string().parse::<ImpairSpec>().unwrap(), spec);
        assert!("none".parse::<ImpairSpec>().unwrap().is_none());
    }

    #[test]
    fn kept_order_means_no_packet_overtakes_another() {
        let spec: ImpairSpec = "jitter=30/5-80,order=keep".parse().unwrap();
        assert!(spec.keep_order);
        assert_eq!(spec.to_string().parse::<ImpairSpec>().unwrap(), spec);
        let mut imp = Impairer::new(spec, 5);
        let mut last_arrival = 0;
        let mut held_back = 0;
        for n in 0..2000u64 {
            let arrival = n * PTIME_US + imp.next_fate().delay_us;
            assert!(arrival >= last_arrival, "packet {n} overtook");
            if arrival == last_arrival {
                held_back += 1;
            }
            last_arrival = arrival;
        }
        assert!(held_back > 0);
        assert!("order=shuffle".parse::<ImpairSpec>().is_err());
    }

    #[test]
    fn rejects_bad_specs_without_panicking() {
        for bad in [
            "loss",
            "loss=x",
            "loss=101",
            "loss=-1",
            "burst=2",
            "burst=2/0.5",
            "burst=100/3",
            "jitter=10/60-20",
            "jitter=10",
            "jitter=10/a-b",
            "wobble=3",
            "loss=NaN",
        ] {
            assert!(bad.parse::<ImpairSpec>().is_err(), "{bad} accepted");
        }
    }
}
