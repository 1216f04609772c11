//! RTCP terminated on one leg: our own sender/receiver reports and SDES at the usual interval, and
//! the peer's reports turned into RTT and the loss it sees of our stream.

use std::time::{Duration, Instant};

use bridgepool_codecs::rtcp::{self, ReportBlock, RtcpPacket, SenderInfo};

use super::ingress::Ingress;
use super::rtp_out::RtpOut;
use super::transmit::{Channel, Outbox};
use super::{Leg, SessionEvent};

/// Seconds between 1900 (NTP) and 1970 (Unix).
pub const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Maps the session's `Instant`s to NTP time: the driver says once what NTP time `epoch` was.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NtpClock {
    epoch: Instant,
    epoch_ntp: u64,
}

impl NtpClock {
    pub(crate) fn new(epoch: Instant, epoch_ntp: u64) -> Self {
        Self { epoch, epoch_ntp }
    }

    pub(crate) fn ntp(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.epoch);
        let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        self.epoch_ntp
            .wrapping_add(d.as_secs() << 32)
            .wrapping_add(frac)
    }
}

/// What the peer told us about our stream.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct PeerView {
    pub(crate) rtt: Option<Duration>,
    pub(crate) fraction_lost: f32,
    pub(crate) reports: u64,
}

pub(crate) struct RtcpLeg {
    leg: Leg,
    clock_rate: u32,
    interval: Duration,
    next_report: Instant,
    /// Middle 32 bits of the NTP time in the peer's last SR, and when it arrived.
    last_sr: Option<(u32, Instant)>,
    pub(crate) peer: PeerView,
    pub(crate) packets_in: u64,
    pub(crate) packets_out: u64,
    pub(crate) bye_sent: bool,
}

impl RtcpLeg {
    pub(crate) fn new(
        leg: Leg,
        clock_rate: u32,
        now: Instant,
        interval: Duration,
        spread: u32,
    ) -> Self {
        // Spread the first report over half an interval so sessions created together don't
        // report together (RFC 3550 randomizes the interval for the same reason).
        let offset = interval.mul_f64(0.5 + f64::from(spread % 1000) / 2000.0);
        Self {
            leg,
            clock_rate,
            interval,
            next_report: now + offset,
            last_sr: None,
            peer: PeerView::default(),
            packets_in: 0,
            packets_out: 0,
            bye_sent: false,
        }
    }

    /// Our reports resume (after passthrough, when the peers' own RTCP was relayed instead):
    /// the next one after an interval.
    pub(crate) fn resume(&mut self, now: Instant) {
        self.next_report = now + self.interval;
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.next_report
    }

    /// Handles one received compound packet. Returns false if it did not parse at all.
    pub(crate) fn on_receive(
        &mut self,
        now: Instant,
        clock: &NtpClock,
        our_ssrc: u32,
        datagram: &[u8],
        events: &mut impl FnMut(SessionEvent),
    ) -> bool {
        let mut any = false;
        for packet in rtcp::compound(datagram) {
            let Ok(packet) = packet else {
                return any;
            };
            any = true;
            match packet {
                RtcpPacket::SenderReport(sr) => {
                    let info = sr.sender_info();
                    self.last_sr = Some((rtcp::ntp_middle32(info.ntp_timestamp), now));
                    for block in sr.report_blocks() {
                        self.on_block(now, clock, our_ssrc, &block);
                    }
                }
                RtcpPacket::ReceiverReport(rr) => {
                    for block in rr.report_blocks() {
                        self.on_block(now, clock, our_ssrc, &block);
                    }
                }
                RtcpPacket::Bye(_) => events(SessionEvent::RemoteBye { leg: self.leg }),
                _ => {}
            }
        }
        if any {
            self.packets_in += 1;
        }
        any
    }

    fn on_block(&mut self, now: Instant, clock: &NtpClock, our_ssrc: u32, b: &ReportBlock) {
        if b.ssrc != our_ssrc {
            return;
        }
        self.peer.reports += 1;
        self.peer.fraction_lost = f32::from(b.fraction_lost) / 256.0;
        if b.last_sr != 0 {
            let arrival = rtcp::ntp_middle32(clock.ntp(now));
            let rtt = arrival
                .wrapping_sub(b.last_sr)
                .wrapping_sub(b.delay_since_last_sr);
            // Units of 1/65536 s; anything above a minute is a clock mix-up, not a path.
            if rtt < 60 << 16 {
                self.peer.rtt = Some(Duration::from_micros((u64::from(rtt) * 1_000_000) >> 16));
            }
        }
    }

    /// Sends a report when due: SR if we sent media since the last, else RR; plus SDES CNAME.
    pub(crate) fn on_timeout(
        &mut self,
        now: Instant,
        clock: &NtpClock,
        out: &RtpOut,
        ingress: &mut Ingress,
        cname: &[u8],
        outbox: &mut Outbox,
    ) {
        if now < self.next_report {
            return;
        }
        self.next_report = now + self.interval;
        let block = self.block(now, ingress);
        self.send_report(now, clock, out, block, cname, None, outbox);
    }

    /// A last report with BYE, when the session ends.
    pub(crate) fn send_bye(
        &mut self,
        now: Instant,
        clock: &NtpClock,
        out: &RtpOut,
        ingress: &mut Ingress,
        cname: &[u8],
        outbox: &mut Outbox,
    ) {
        if self.bye_sent {
            return;
        }
        self.bye_sent = true;
        let block = self.block(now, ingress);
        self.send_report(
            now,
            clock,
            out,
            block,
            cname,
            Some(b"session ended"),
            outbox,
        );
    }

    fn block(&self, now: Instant, ingress: &mut Ingress) -> Option<ReportBlock> {
        let fig = ingress.report()?;
        let (last_sr, delay) = match self.last_sr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                let units = (d.as_micros() << 16) / 1_000_000;
                (lsr, units.min(u128::from(u32::MAX)) as u32)
            }
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc: fig.ssrc,
            fraction_lost: fig.fraction_lost,
            cumulative_lost: fig.cumulative_lost,
            highest_seq: fig.highest_seq,
            jitter: fig.jitter,
            last_sr,
            delay_since_last_sr: delay,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn send_report(
        &mut self,
        now: Instant,
        clock: &NtpClock,
        out: &RtpOut,
        block: Option<ReportBlock>,
        cname: &[u8],
        bye: Option<&[u8]>,
        outbox: &mut Outbox,
    ) {
        let blocks: &[ReportBlock] = match &block {
            Some(b) => std::slice::from_ref(b),
            None => &[],
        };
        let ssrc = out.ssrc();
        let sent = outbox.push(self.leg, Channel::Rtcp, |buf| {
            let mut n = match out.last_sent() {
                Some((ts, at)) if out.packets > 0 => {
                    // The RTP timestamp that corresponds to `now`, from the last packet's.
                    let since = now.saturating_duration_since(at).as_micros();
                    let advance = (since * u128::from(self.clock_rate) / 1_000_000) as u32;
                    let info = SenderInfo {
                        ntp_timestamp: clock.ntp(now),
                        rtp_timestamp: ts.wrapping_add(advance),
                        packet_count: out.packets as u32,
                        octet_count: out.octets as u32,
                    };
                    rtcp::write_sender_report(buf, ssrc, &info, blocks).ok()?
                }
                _ => rtcp::write_receiver_report(buf, ssrc, blocks).ok()?,
            };
            n += rtcp::write_sdes_cname(&mut buf[n..], ssrc, cname).ok()?;
            if let Some(reason) = bye {
                n += rtcp::write_bye(&mut buf[n..], &[ssrc], Some(reason)).ok()?;
            }
            Some(n)
        });
        if sent {
            self.packets_out += 1;
        }
    }
}
