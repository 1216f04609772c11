//! Per-leg counters and quality figures, and the reasons input is dropped.

use std::time::Duration;

/// Why an input datagram was dropped. Every drop is counted by reason, never silent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a parseable RTP or RTCP packet.
    Malformed,
    /// An RTP payload type this leg did not negotiate.
    PayloadType,
    /// A sequence number already received.
    Duplicate,
    /// Arrived after its place in the stream was given up as lost.
    Late,
    /// The payload did not decode (garbage Opus, wrong size).
    DecodeError,
    /// The reorder buffer was full; the packet could not be held.
    ReorderOverflow,
    /// RTCP that did not parse.
    RtcpMalformed,
    /// Media for a leg that is on hold or inactive.
    Inactive,
    /// From a source other than the leg's latched peer (counted by the driver).
    ForeignSource,
    /// From the latched peer, but beyond the leg's packet budget (a flood; counted by the
    /// driver, before anything is decoded).
    OverBudget,
}

impl DropReason {
    /// Every reason, in a stable order (the index of each in [`DropCounts`]).
    pub const ALL: [Self; 10] = [
        Self::Malformed,
        Self::PayloadType,
        Self::Duplicate,
        Self::Late,
        Self::DecodeError,
        Self::ReorderOverflow,
        Self::RtcpMalformed,
        Self::Inactive,
        Self::ForeignSource,
        Self::OverBudget,
    ];

    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::PayloadType => "payload_type",
            Self::Duplicate => "duplicate",
            Self::Late => "late",
            Self::DecodeError => "decode_error",
            Self::ReorderOverflow => "reorder_overflow",
            Self::RtcpMalformed => "rtcp_malformed",
            Self::Inactive => "inactive",
            Self::ForeignSource => "foreign_source",
            Self::OverBudget => "over_budget",
        }
    }

    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or_default()
    }
}

/// Drop counters indexed by [`DropReason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts([u64; DropReason::ALL.len()]);

impl DropCounts {
    pub(crate) fn add(&mut self, reason: DropReason) {
        self.0[reason.index()] += 1;
    }

    /// How many datagrams were dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    /// All drops, whatever the reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.get(*r)))
    }
}

/// What one leg of a session saw and sent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LegStats {
    /// RTP packets accepted from the peer (after duplicates and bad packets were dropped).
    pub packets_in: u64,
    /// RTP packets sent to the peer.
    pub packets_out: u64,
    /// RTP payload bytes accepted.
    pub bytes_in: u64,
    /// RTP payload bytes sent.
    pub bytes_out: u64,
    /// Packets the peer sent that never arrived (RFC 3550 expected minus received, never negative).
    pub packets_lost: u64,
    /// Input dropped, by reason.
    pub drops: DropCounts,
    /// RFC 3550 interarrival jitter of the peer's stream.
    pub jitter: Duration,
    /// Round trip time from RTCP, when the peer sends reports about our stream.
    pub rtt: Option<Duration>,
    /// Loss the peer reports about our stream (RTCP fraction lost, 0..=1).
    pub remote_fraction_lost: f32,
    /// RTCP packets received on this leg.
    pub rtcp_in: u64,
    /// RTCP packets sent on this leg.
    pub rtcp_out: u64,
}

impl LegStats {
    /// Fraction of the peer's packets lost on the way to us (0..=1).
    pub fn loss_ratio(&self) -> f64 {
        let expected = self.packets_in + self.packets_lost;
        if expected == 0 {
            0.0
        } else {
            self.packets_lost as f64 / expected as f64
        }
    }

    /// A MOS estimate (ITU-T G.107 E-model, simplified) from what we measured ourselves: loss and
    /// jitter of the stream we receive, and RTT when RTCP gives one. It does not need the peer to
    /// send RTCP: without RTT the one-way delay is estimated from jitter and packetization.
    pub fn mos(&self, ptime: Duration) -> f64 {
        let jitter_ms = self.jitter.as_secs_f64() * 1000.0;
        let one_way_ms = match self.rtt {
            Some(rtt) => rtt.as_secs_f64() * 500.0,
            // Packetization, a jitter buffer of twice the jitter, and a typical network path.
            None => ptime.as_secs_f64() * 1000.0 + 2.0 * jitter_ms + 20.0,
        };
        mos_from_e_model(one_way_ms, self.loss_ratio())
    }
}

/// G.107 E-model with defaults, G.711-class codec with packet loss concealment (Ie = 0, Bpl = 25.1),
/// random loss. Returns MOS in 1.0..=4.5.
pub fn mos_from_e_model(one_way_delay_ms: f64, loss_ratio: f64) -> f64 {
    let d = one_way_delay_ms.max(0.0);
    // Delay impairment Id (Cole and Rosenbluth's fit of G.107).
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let ppl = (loss_ratio * 100.0).clamp(0.0, 100.0);
    let ie_eff = 95.0 * ppl / (ppl + 25.1);
    let r = (93.2 - id - ie_eff).clamp(0.0, 100.0);
    let mos = 1.0 + 0.035 * r + 7.0e-6 * r * (r - 60.0) * (100.0 - r);
    mos.clamp(1.0, 4.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mos_falls_with_loss_and_delay() {
        let clean = mos_from_e_model(20.0, 0.0);
        assert!(clean > 4.3, "clean call {clean}");
        assert!(mos_from_e_model(20.0, 0.10) < clean - 0.5);
        assert!(mos_from_e_model(400.0, 0.0) < clean - 0.5);
        assert!(mos_from_e_model(1000.0, 0.5) >= 1.0);
    }

    #[test]
    fn drop_counts_by_reason() {
        let mut d = DropCounts::default();
        d.add(DropReason::Late);
        d.add(DropReason::Late);
        d.add(DropReason::Malformed);
        assert_eq!(d.get(DropReason::Late), 2);
        assert_eq!(d.get(DropReason::Malformed), 1);
        assert_eq!(d.total(), 3);
        assert_eq!(DropReason::OverBudget.index(), DropReason::ALL.len() - 1);
    }
}
