//! The receive side of one leg: SSRC tracking, sequence extension, duplicates, a small reorder
//! buffer that turns arrival order into stream order with explicit losses, and the RFC 3550
//! reception statistics (loss, jitter) that feed RTCP and the session's stats.

use std::time::{Duration, Instant};

/// Packets held while waiting for a missing one. Reordering deeper than this is treated as loss.
const REORDER_SLOTS: usize = 6;
/// Largest payload a held packet keeps (a 60 ms G.711 frame is 480 bytes; Opus is far smaller).
const MAX_HELD_PAYLOAD: usize = 1500;
/// A jump ahead larger than this restarts the stream (RFC 3550 A.1 MAX_DROPOUT).
const MAX_DROPOUT: u64 = 3000;
/// A packet further behind than this is stale, not a reordering.
const MAX_MISORDER: u64 = 100;

/// What happened to a packet offered to [`Ingress::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It is the next in stream order: process it now, then [`Ingress::pop`] what it released.
    Deliver,
    /// Held until the packets before it arrive or are given up.
    Held,
    /// Already received.
    Duplicate,
    /// Its place in the stream was already given up as lost, or it is hopelessly old.
    Late,
    /// No room to hold it.
    Overflow,
    /// From another SSRC (or a sequence restart): the caller drains the old stream with
    /// [`Ingress::pop`] (forced), calls [`Ingress::restart`], and offers the packet again.
    NewStream,
}

/// The parts of an RTP header the ingress needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arrival {
    pub(crate) ssrc: u32,
    pub(crate) seq: u16,
    pub(crate) timestamp: u32,
    pub(crate) marker: bool,
    pub(crate) payload_type: u8,
}

/// A packet released from the reorder buffer, or a run of packets given up as lost.
pub(crate) enum Popped<'a> {
    /// `count` packets before the next one never arrived in time.
    Lost { count: u64 },
    /// A held packet, now in order.
    Packet { arrival: Arrival, payload: &'a [u8] },
}

struct Slot {
    ext_seq: u64,
    arrival: Arrival,
    arrived_at: Instant,
    len: usize,
    data: Box<[u8; MAX_HELD_PAYLOAD]>,
    used: bool,
}

/// Reception state of one leg.
pub(crate) struct Ingress {
    clock_rate: u32,
    reorder_wait: Duration,
    epoch: Instant,
    ssrc: Option<u32>,
    /// Extended sequence number of the first packet of this stream.
    base: u64,
    /// Next extended sequence number to deliver.
    next: u64,
    /// Highest extended sequence number seen.
    highest: u64,
    /// Bit i set: `next - 1 - i` was delivered (duplicate detection behind `next`).
    history: u64,
    received: u64,
    slots: Vec<Slot>,
    last_transit: Option<i64>,
    /// RFC 3550 jitter in timestamp units, scaled by 16 as in A.8.
    jitter_q4: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Loss of the streams this leg had before an SSRC change.
    carried_lost: u64,
}

impl Ingress {
    pub(crate) fn new(clock_rate: u32, reorder_wait: Duration, epoch: Instant) -> Self {
        let slots = (0..REORDER_SLOTS)
            .map(|_| Slot {
                ext_seq: 0,
                arrival: Arrival {
                    ssrc: 0,
                    seq: 0,
                    timestamp: 0,
                    marker: false,
                    payload_type: 0,
                },
                arrived_at: epoch,
                len: 0,
                data: Box::new([0; MAX_HELD_PAYLOAD]),
                used: false,
            })
            .collect();
        Self {
            clock_rate,
            reorder_wait,
            epoch,
            ssrc: None,
            base: 0,
            next: 0,
            highest: 0,
            history: 0,
            received: 0,
            slots,
            last_transit: None,
            jitter_q4: 0,
            expected_prior: 0,
            received_prior: 0,
            carried_lost: 0,
        }
    }

    /// The SSRC of the stream being received, once one arrived.
    pub(crate) fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Offers a packet in arrival order. `payload` is copied only when the packet must be held.
    pub(crate) fn push(&mut self, now: Instant, a: Arrival, payload: &[u8]) -> Verdict {
        let Some(ssrc) = self.ssrc else {
            return Verdict::NewStream;
        };
        if ssrc != a.ssrc {
            return Verdict::NewStream;
        }
        let ext = extend(self.highest, a.seq);
        if ext >= self.next + MAX_DROPOUT {
            return Verdict::NewStream;
        }
        if ext < self.next {
            let behind = self.next - 1 - ext;
            if behind < 64 && self.history & (1 << behind) != 0 {
                return Verdict::Duplicate;
            }
            if self.next - ext > MAX_MISORDER {
                return Verdict::NewStream;
            }
            return Verdict::Late;
        }
        if self.slots.iter().any(|s| s.used && s.ext_seq == ext) {
            return Verdict::Duplicate;
        }
        self.observe(now, a, ext);
        if ext == self.next {
            self.advance_delivered();
            return Verdict::Deliver;
        }
        match self.slots.iter_mut().find(|s| !s.used) {
            Some(slot) if payload.len() <= MAX_HELD_PAYLOAD => {
                slot.used = true;
                slot.ext_seq = ext;
                slot.arrival = a;
                slot.arrived_at = now;
                slot.len = payload.len();
                slot.data[..payload.len()].copy_from_slice(payload);
                Verdict::Held
            }
            _ => {
                // Not held: account it as received but undeliverable so loss stays honest.
                self.received -= 1;
                Verdict::Overflow
            }
        }
    }

    /// Passthrough: notes a packet that is forwarded at once, whatever its order, so the
    /// reception figures (loss, jitter, RTCP-style totals) stay true without the reorder wait.
    /// `Deliver` means forward it; `Duplicate` and `NewStream` as for [`Self::push`]. Nothing is
    /// held, so switching to [`Self::push`] later carries on from the highest packet seen.
    pub(crate) fn relay(&mut self, now: Instant, a: Arrival) -> Verdict {
        let Some(ssrc) = self.ssrc else {
            return Verdict::NewStream;
        };
        if ssrc != a.ssrc {
            return Verdict::NewStream;
        }
        let ext = extend(self.highest, a.seq);
        if ext >= self.next + MAX_DROPOUT {
            return Verdict::NewStream;
        }
        if ext < self.next {
            let behind = self.next - 1 - ext;
            if behind < 64 && self.history & (1 << behind) != 0 {
                return Verdict::Duplicate;
            }
            if self.next - ext > MAX_MISORDER {
                return Verdict::NewStream;
            }
            // Reordered: forwarded as it came, and not lost after all.
            if behind < 64 {
                self.history |= 1 << behind;
            }
            self.observe(now, a, ext);
            return Verdict::Deliver;
        }
        self.observe(now, a, ext);
        let advance = ext + 1 - self.next;
        self.history = self.history.checked_shl(advance as u32).unwrap_or(0) | 1;
        self.next = ext + 1;
        Verdict::Deliver
    }

    /// The RTP clock the jitter is measured in (passthrough carries whatever codec the peers
    /// chose). The jitter so far is rescaled, so it stays the same in time.
    pub(crate) fn set_clock_rate(&mut self, rate: u32) {
        if rate == self.clock_rate || rate == 0 {
            return;
        }
        self.jitter_q4 = self.jitter_q4 * u64::from(rate) / u64::from(self.clock_rate);
        self.clock_rate = rate;
        self.last_transit = None;
    }

    /// Starts a new stream with `a` as its first packet (SSRC change or sequence restart).
    pub(crate) fn restart(&mut self, a: Arrival) {
        let (expected, received) = self.totals();
        self.carried_lost += expected.saturating_sub(received);
        self.ssrc = Some(a.ssrc);
        // Start in the second sequence cycle so extension never underflows.
        let first = (1 << 16) + u64::from(a.seq);
        self.base = first;
        self.next = first;
        self.highest = first;
        self.history = 0;
        self.received = 0;
        self.expected_prior = 0;
        self.received_prior = 0;
        self.last_transit = None;
        for s in &mut self.slots {
            s.used = false;
        }
    }

    /// Releases what is ready: a held packet that is next in order, or, once the oldest held
    /// packet waited `reorder_wait` (or `force`), the run of missing packets before it.
    pub(crate) fn pop(&mut self, now: Instant, force: bool) -> Option<Popped<'_>> {
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| s.used && s.ext_seq == self.next)
        {
            self.advance_delivered();
            let slot = &mut self.slots[i];
            slot.used = false;
            return Some(Popped::Packet {
                arrival: slot.arrival,
                payload: &slot.data[..slot.len],
            });
        }
        let lowest = self
            .slots
            .iter()
            .filter(|s| s.used)
            .map(|s| s.ext_seq)
            .min()?;
        let oldest = self
            .slots
            .iter()
            .filter(|s| s.used)
            .map(|s| s.arrived_at)
            .min()?;
        let full = self.slots.iter().all(|s| s.used);
        if force || full || now >= oldest + self.reorder_wait {
            let count = lowest - self.next;
            self.history = self.history.checked_shl(count as u32).unwrap_or(0);
            self.next = lowest;
            return Some(Popped::Lost { count });
        }
        None
    }

    /// When a held packet's wait ends, if any is held.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| s.used)
            .map(|s| s.arrived_at + self.reorder_wait)
            .min()
    }

    fn advance_delivered(&mut self) {
        self.history = (self.history << 1) | 1;
        self.next += 1;
    }

    fn observe(&mut self, now: Instant, a: Arrival, ext: u64) {
        self.received += 1;
        self.highest = self.highest.max(ext);
        let arrival_units = (now.saturating_duration_since(self.epoch).as_nanos()
            * u128::from(self.clock_rate)
            / 1_000_000_000) as i64;
        let transit = arrival_units - i64::from(a.timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // A.8: J += (|D| - J) / 16, kept scaled by 16.
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    fn totals(&self) -> (u64, u64) {
        if self.ssrc.is_none() {
            return (0, 0);
        }
        (self.highest + 1 - self.base, self.received)
    }

    /// Packets lost over the whole leg, across SSRC changes (expected minus received, >= 0).
    pub(crate) fn packets_lost(&self) -> u64 {
        let (expected, received) = self.totals();
        self.carried_lost + expected.saturating_sub(received)
    }

    /// Interarrival jitter (RFC 3550 A.8) in timestamp units.
    pub(crate) fn jitter_units(&self) -> u32 {
        (self.jitter_q4 >> 4).min(u64::from(u32::MAX)) as u32
    }

    /// Interarrival jitter as time.
    pub(crate) fn jitter(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.jitter_units()) / f64::from(self.clock_rate))
    }

    /// Fields of an RTCP report block about this stream; advances the "since last report" state.
    pub(crate) fn report(&mut self) -> Option<ReportFigures> {
        let ssrc = self.ssrc?;
        let (expected, received) = self.totals();
        let expected_interval = expected - self.expected_prior;
        let received_interval = received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |f| f.min(255) as u8);
        let cumulative = expected.saturating_sub(received).min(0x7F_FFFF) as i32;
        Some(ReportFigures {
            ssrc,
            fraction_lost,
            cumulative_lost: cumulative,
            highest_seq: (self.highest & 0xFFFF_FFFF) as u32,
            jitter: self.jitter_units(),
        })
    }
}

/// The reception figures of one RTCP report block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReportFigures {
    pub(crate) ssrc: u32,
    pub(crate) fraction_lost: u8,
    pub(crate) cumulative_lost: i32,
    pub(crate) highest_seq: u32,
    pub(crate) jitter: u32,
}

/// Extends a 16-bit sequence number to the 64-bit value closest to `reference`.
pub(crate) fn extend(reference: u64, seq: u16) -> u64 {
    let candidate = (reference & !0xFFFF) | u64::from(seq);
    let options = [
        candidate.wrapping_sub(1 << 16),
        candidate,
        candidate.wrapping_add(1 << 16),
    ];
    options
        .into_iter()
        .filter(|c| *c >= 1 << 16 || reference < 1 << 16)
        .min_by_key(|c| c.abs_diff(reference))
        .unwrap_or(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(seq: u16) -> Arrival {
        Arrival {
            ssrc: 7,
            seq,
            timestamp: u32::from(seq) * 160,
            marker: false,
            payload_type: 0,
        }
    }

    fn started(seq: u16) -> (Ingress, Instant) {
        let t0 = crate::test_epoch();
        let mut ing = Ingress::new(8000, Duration::from_millis(40), t0);
        assert_eq!(ing.push(t0, arrival(seq), &[1]), Verdict::NewStream);
        ing.restart(arrival(seq));
        assert_eq!(ing.push(t0, arrival(seq), &[1]), Verdict::Deliver);
        (ing, t0)
    }

    #[test]
    fn extension_wraps_both_ways() {
        let r = (1 << 16) + 65_535;
        assert_eq!(extend(r, 0), 2 << 16);
        assert_eq!(extend(2 << 16, 65_535), (1 << 16) + 65_535);
        assert_eq!(extend(r, 65_534), r - 1);
    }

    #[test]
    fn wraparound_is_in_order() {
        let (mut ing, t0) = started(65_534);
        assert_eq!(ing.push(t0, arrival(65_535), &[1]), Verdict::Deliver);
        assert_eq!(ing.push(t0, arrival(0), &[1]), Verdict::Deliver);
        assert_eq!(ing.push(t0, arrival(1), &[1]), Verdict::Deliver);
        assert_eq!(ing.packets_lost(), 0);
    }

    #[test]
    fn reorder_is_restored_and_duplicates_caught() {
        let (mut ing, t0) = started(10);
        assert_eq!(ing.push(t0, arrival(12), &[12]), Verdict::Held);
        assert_eq!(ing.push(t0, arrival(12), &[12]), Verdict::Duplicate);
        assert!(ing.pop(t0, false).is_none());
        assert_eq!(ing.push(t0, arrival(11), &[11]), Verdict::Deliver);
        match ing.pop(t0, false) {
            Some(Popped::Packet { arrival, payload }) => {
                assert_eq!(arrival.seq, 12);
                assert_eq!(payload, &[12]);
            }
            _ => panic!("held packet not released"),
        }
        assert_eq!(ing.push(t0, arrival(11), &[11]), Verdict::Duplicate);
        assert_eq!(ing.packets_lost(), 0);
    }

    #[test]
    fn gap_given_up_after_wait_then_late() {
        let (mut ing, t0) = started(10);
        assert_eq!(ing.push(t0, arrival(13), &[13]), Verdict::Held);
        assert!(ing.pop(t0 + Duration::from_millis(39), false).is_none());
        match ing.pop(t0 + Duration::from_millis(40), false) {
            Some(Popped::Lost { count }) => assert_eq!(count, 2),
            _ => panic!("gap not given up"),
        }
        assert!(matches!(
            ing.pop(t0 + Duration::from_millis(40), false),
            Some(Popped::Packet { .. })
        ));
        assert_eq!(ing.push(t0, arrival(11), &[11]), Verdict::Late);
        assert_eq!(ing.packets_lost(), 2);
    }

    #[test]
    fn ssrc_change_and_big_jump_restart() {
        let (mut ing, t0) = started(10);
        let mut other = arrival(500);
        other.ssrc = 8;
        assert_eq!(ing.push(t0, other, &[1]), Verdict::NewStream);
        assert_eq!(ing.push(t0, arrival(10 + 4000), &[1]), Verdict::NewStream);
    }

    #[test]
    fn relay_counts_reordering_loss_and_duplicates_without_holding() {
        let (mut ing, t0) = started(10);
        assert_eq!(ing.relay(t0, arrival(12)), Verdict::Deliver);
        assert!(ing.deadline().is_none(), "nothing held, nothing waits");
        assert_eq!(ing.packets_lost(), 1);
        assert_eq!(ing.relay(t0, arrival(11)), Verdict::Deliver);
        assert_eq!(ing.packets_lost(), 0, "the reordered packet was not lost");
        assert_eq!(ing.relay(t0, arrival(11)), Verdict::Duplicate);
        assert_eq!(ing.relay(t0, arrival(12)), Verdict::Duplicate);
        assert_eq!(ing.relay(t0, arrival(15)), Verdict::Deliver);
        assert_eq!(ing.packets_lost(), 2);
        // Back to the reorder buffer: it carries on after the highest packet.
        assert_eq!(ing.push(t0, arrival(16), &[1]), Verdict::Deliver);
    }

    #[test]
    fn clock_change_keeps_jitter_in_time() {
        let (mut ing, t0) = started(0);
        let mut a = arrival(1);
        // 10 ms late: 80 units at 8 kHz, jitter 80/16 = 5 units.
        ing.relay(t0 + Duration::from_millis(30), a);
        let before = ing.jitter();
        ing.set_clock_rate(48_000);
        assert_eq!(ing.jitter_units(), 30);
        assert!((ing.jitter().as_secs_f64() - before.as_secs_f64()).abs() < 1e-6);
        a.seq = 2;
        ing.relay(t0 + Duration::from_millis(40), a);
    }

    #[test]
    fn report_fraction_lost() {
        let (mut ing, t0) = started(0);
        for seq in [1u16, 2, 3, 5, 6, 7] {
            ing.push(t0, arrival(seq), &[1]);
            while ing.pop(t0, true).is_some() {}
        }
        let r = ing.report().expect("report");
        // 8 expected, 7 received: 1/8 of 256.
        assert_eq!(r.fraction_lost, 32);
        assert_eq!(r.cumulative_lost, 1);
    }
}
