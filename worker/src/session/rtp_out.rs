//! One outgoing RTP stream: our own SSRC, continuous sequence numbers, timestamps that never go
//! backwards, and the sender counters RTCP reports.

use std::time::Instant;

use bridgepool_codecs::rtp::RtpHeader;

use super::Leg;
use super::transmit::{Channel, Outbox};

pub(crate) struct RtpOut {
    leg: Leg,
    ssrc: u32,
    next_seq: u16,
    /// Timestamp (in the stream's clock, not wrapped) of the end of the last audio packet sent.
    end_ts: Option<u64>,
    /// Duration of the last audio packet sent.
    last_duration: u64,
    last_sent_at: Option<Instant>,
    last_sent_ts: u32,
    initial_ts: u32,
    pub(crate) packets: u64,
    pub(crate) octets: u64,
    /// The next audio packet starts a talkspurt (RTP marker bit).
    pub(crate) marker_pending: bool,
    /// Audio packets whose timestamp had to be pulled forward (should stay 0).
    pub(crate) clamped: u64,
}

/// One audio or event packet to write.
pub(crate) struct OutPacket {
    pub(crate) payload_type: u8,
    /// Timestamp on the unwrapped output timeline.
    pub(crate) ts: u64,
    /// Samples (in the stream's clock) this packet covers; 0 for events.
    pub(crate) duration: u64,
    pub(crate) marker: bool,
}

impl RtpOut {
    pub(crate) fn new(leg: Leg, ssrc: u32, initial_seq: u16, initial_ts: u32) -> Self {
        Self {
            leg,
            ssrc,
            next_seq: initial_seq,
            end_ts: None,
            last_duration: 0,
            last_sent_at: None,
            last_sent_ts: initial_ts,
            initial_ts,
            packets: 0,
            octets: 0,
            marker_pending: true,
            clamped: 0,
        }
    }

    pub(crate) fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Where a new input stream's audio starts on our timeline: right after what we sent, plus
    /// any wall time beyond when the next packet was due, so a rebased stream neither overlaps
    /// nor rushes.
    pub(crate) fn rebase_point(&self, now: Instant, clock_rate: u32) -> u64 {
        match (self.end_ts, self.last_sent_at) {
            (Some(end), Some(at)) => {
                let elapsed = now.saturating_duration_since(at);
                let units = (elapsed.as_micros() * u128::from(clock_rate) / 1_000_000) as u64;
                end + units.saturating_sub(self.last_duration)
            }
            _ => 0,
        }
    }

    /// Wire timestamp and sent-time of the latest packet (for sender reports).
    pub(crate) fn last_sent(&self) -> Option<(u32, Instant)> {
        self.last_sent_at.map(|t| (self.last_sent_ts, t))
    }

    /// Writes one packet whose payload `write_payload` fills (returning its length, or `None` to
    /// abandon it, e.g. an Opus DTX frame). Returns whether a packet was queued.
    pub(crate) fn send(
        &mut self,
        outbox: &mut Outbox,
        now: Instant,
        p: OutPacket,
        write_payload: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        let mut ts = p.ts;
        if p.duration > 0
            && let Some(end) = self.end_ts
            && ts < end
        {
            self.clamped += 1;
            ts = end;
        }
        let wire_ts = self.initial_ts.wrapping_add((ts & 0xFFFF_FFFF) as u32);
        let header = RtpHeader {
            marker: p.marker,
            payload_type: p.payload_type,
            sequence_number: self.next_seq,
            timestamp: wire_ts,
            ssrc: self.ssrc,
        };
        let mut payload_len = 0;
        let queued = outbox.push(self.leg, Channel::Rtp, |buf| {
            let h = header.write(buf).ok()?;
            payload_len = write_payload(&mut buf[h..])?;
            Some(h + payload_len)
        });
        if queued {
            self.next_seq = self.next_seq.wrapping_add(1);
            self.packets += 1;
            self.octets += payload_len as u64;
            self.last_sent_at = Some(now);
            self.last_sent_ts = wire_ts;
            if p.duration > 0 {
                self.end_ts = Some(ts + p.duration);
                self.last_duration = p.duration;
            }
        }
        queued
    }
}
