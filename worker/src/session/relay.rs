//! Passthrough: the session as a relay. Each datagram from one leg's peer goes to the other
//! leg's peer as it came (RTP to the RTP address, RTCP to the RTCP address or the RTP one under
//! rtcp-mux, the driver decides which), in the same call, whatever its order: a relay adds no
//! delay. Nothing is decoded and nothing allocated: the bytes are copied into an outbox slot.
//!
//! What still runs is what protects the peers and measures the call: the driver's guarded
//! latching (before the session sees a packet), the direction of each leg (hold, sendonly,
//! inactive), duplicate suppression, and the RFC 3550 reception figures of each leg (packets,
//! bytes, loss, jitter) from the same ingress the transcoder uses, told not to hold anything.
//! Bad input is dropped and counted as in transcoding. The peers' RTCP passes through (their
//! BYEs raise [`SessionEvent::RemoteBye`] as they pass); we send none of our own.

use std::time::Instant;

use bridgepool_codecs::rtp::{self, RtpPacket};

use super::ingress::{Arrival, Verdict};
use super::transmit::Channel;
use super::{DropReason, Leg, Session, SessionEvent, ingress_of};

/// Payload types below this are static (RFC 3551) and all of the audio ones a carrier relays
/// (PCMU, PCMA, G.722, G.729, GSM...) run an 8 kHz RTP clock.
const FIRST_DYNAMIC_PT: u8 = 96;

/// The RTP clock of a stream whose first packet carries `pt`, for its jitter: static types run
/// at 8 kHz; a dynamic one in this pool is Opus (48 kHz). A telephone-event stream that starts
/// before its audio would be measured on the wrong clock, which is rare enough to accept.
fn clock_of(pt: u8) -> u32 {
    if pt < FIRST_DYNAMIC_PT { 8000 } else { 48_000 }
}

impl Session {
    /// One datagram from `leg`'s peer while relaying.
    pub(super) fn relay(&mut self, now: Instant, leg: Leg, channel: Channel, datagram: &[u8]) {
        let to = leg.other();
        if channel == Channel::Rtcp || rtp::is_rtcp(datagram) {
            let events = &mut self.core.events;
            let (rtcp, ours) = match leg {
                Leg::A => (&mut self.rtcp_a, self.core.out_a.ssrc()),
                Leg::B => (&mut self.rtcp_b, self.core.out_b.ssrc()),
            };
            if !rtcp.on_receive(now, &self.clock, ours, datagram, &mut |e| {
                events.push_back(e);
            }) {
                self.core.counters(leg).drops.add(DropReason::RtcpMalformed);
                return;
            }
            if self.core.forward(to, Channel::Rtcp, datagram) {
                self.core.counters(to).relayed_rtcp += 1;
            }
            return;
        }
        let Ok(packet) = RtpPacket::parse(datagram) else {
            self.core.counters(leg).drops.add(DropReason::Malformed);
            return;
        };
        let (receive, send) = match leg {
            Leg::A => (self.core.mode_a.receive, self.core.mode_b.send),
            Leg::B => (self.core.mode_b.receive, self.core.mode_a.send),
        };
        if !receive {
            self.core.counters(leg).drops.add(DropReason::Inactive);
            return;
        }
        let arrival = Arrival {
            ssrc: packet.ssrc(),
            seq: packet.sequence_number(),
            timestamp: packet.timestamp(),
            marker: packet.marker(),
            payload_type: packet.payload_type(),
        };
        let ingress = ingress_of(&mut self.ingress_a, &mut self.ingress_b, leg);
        let mut verdict = ingress.relay(now, arrival);
        if verdict == Verdict::NewStream {
            if ingress.ssrc().is_some() {
                self.core.events.push_back(SessionEvent::SsrcChanged {
                    leg,
                    ssrc: arrival.ssrc,
                });
            }
            ingress.set_clock_rate(clock_of(arrival.payload_type));
            ingress.restart(arrival);
            verdict = ingress.relay(now, arrival);
        }
        match verdict {
            Verdict::Deliver => {}
            Verdict::Duplicate => {
                self.core.counters(leg).drops.add(DropReason::Duplicate);
                return;
            }
            // Not reached: a restarted stream delivers its first packet.
            _ => {
                self.core.counters(leg).drops.add(DropReason::Late);
                return;
            }
        }
        let payload = packet.payload().len() as u64;
        let counters = self.core.counters(leg);
        counters.packets_in += 1;
        counters.bytes_in += payload;
        counters.last_media = Some(now);
        if !send {
            return;
        }
        if self.core.forward(to, Channel::Rtp, datagram) {
            let counters = self.core.counters(to);
            counters.relayed += 1;
            counters.relayed_bytes += payload;
        } else {
            // Larger than any datagram the driver can receive: only a test can send one.
            self.core.counters(leg).drops.add(DropReason::Malformed);
        }
    }
}

impl super::Core {
    /// Queues `datagram` as it is toward `to`'s peer; false when it does not fit a slot.
    fn forward(&mut self, to: Leg, channel: Channel, datagram: &[u8]) -> bool {
        self.outbox.push(to, channel, |buf| {
            buf.get_mut(..datagram.len())?.copy_from_slice(datagram);
            Some(datagram.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_types_run_at_8k_dynamic_at_48k() {
        assert_eq!(clock_of(0), 8000);
        assert_eq!(clock_of(8), 8000);
        assert_eq!(clock_of(9), 8000);
        assert_eq!(clock_of(111), 48_000);
    }
}
