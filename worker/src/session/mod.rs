//! One bridged call as a sans-IO state machine.
//!
//! Transcoding ([`Mode::Transcode`]), leg A speaks PCMU or PCMA at 8 kHz, leg B speaks Opus on a
//! 48 kHz RTP clock, both directions at once. Relaying ([`Mode::Passthrough`], `relay.rs`), each
//! leg's datagrams go to the other leg's peer verbatim; an update switches between the two on the
//! live session. The session never reads a clock, touches a socket or awaits: the driver feeds it
//!
//! - [`Session::handle_datagram`] for every datagram received on a leg, with the time it arrived,
//! - [`Session::handle_timeout`] when [`Session::poll_timeout`] says,
//!
//! and after each call drains [`Session::poll_transmit`] (datagrams to send) and
//! [`Session::poll_event`] (things the control plane should hear about). Time is an [`Instant`]
//! given by the caller, so tests run minutes of call audio on virtual time in milliseconds.
//! Clippy's `disallowed_methods`/`disallowed_types` (see `worker/clippy.toml`) are errors in this
//! module: a clock read or a socket here fails CI.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

mod config;
mod dtmf;
mod g711_to_opus;
mod ingress;
mod jitter;
pub mod oneway;
mod opus_to_g711;
mod relay;
mod rtcp_leg;
mod rtp_out;
mod stats;
mod transcoder;
mod transmit;

use std::collections::VecDeque;
use std::time::Instant;

use bridgepool_codecs::opus::EncoderConfig;
use bridgepool_codecs::rtp::{self, RtpPacket};
use bridgepool_codecs::telephone_event::TelephoneEvent;

pub use config::{
    ConfigError, G711Leg, JitterBuffer, JitterMode, Mode, OpusLeg, SessionConfig, StreamSeed,
    TRANSCODER_APPLICATION, TRANSCODER_BITRATE, TRANSCODER_COMPLEXITY, Timeouts,
};
pub use rtcp_leg::NTP_UNIX_OFFSET;
pub use stats::{DropCounts, DropReason, LegStats, mos_from_e_model};
pub use transmit::{Channel, MAX_DATAGRAM, Transmit};

use dtmf::{DtmfRelay, Rescale};
use g711_to_opus::OPUS_CLOCK;
use ingress::{Arrival, Ingress, Popped, Verdict};
use opus_to_g711::Rejected;
use rtcp_leg::{NtpClock, RtcpLeg};
use rtp_out::{OutPacket, RtpOut};
use transcoder::Transcoder;
use transmit::Outbox;

/// The jitter buffer of the Opus -> G.711 direction as it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JitterStats {
    /// The settings in force.
    pub config: JitterBuffer,
    /// The delay the buffer added to the last frame sent toward the G.711 leg, over what a
    /// packet on the fastest path would have had (zero with the buffer off).
    pub delay: std::time::Duration,
    /// The mean of `delay` over the frames sent so far.
    pub mean_delay: std::time::Duration,
    /// The delay it steers toward now.
    pub target: std::time::Duration,
    /// 8 kHz samples removed to lower the delay (accelerate, silence cuts, max-delay cuts).
    pub shortened_samples: u64,
    /// 8 kHz samples inserted to raise it (preemptive expand).
    pub lengthened_samples: u64,
}

/// Which side of the bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The G.711 side (PCMU/PCMA, 8 kHz).
    A,
    /// The Opus side (48 kHz RTP clock).
    B,
}

impl Leg {
    /// The other leg.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

/// Whether we send to and accept media from a leg's peer (from SDP direction and hold).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegMode {
    /// We send media to the peer.
    pub send: bool,
    /// We accept media from the peer.
    pub receive: bool,
}

impl Default for LegMode {
    fn default() -> Self {
        Self {
            send: true,
            receive: true,
        }
    }
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The control plane closed it.
    Closed,
    /// No RTP on either leg for [`Timeouts::media`].
    MediaTimeout,
    /// No RTP from one leg for [`Timeouts::one_sided`] while the other kept sending.
    OneSidedTimeout {
        /// The leg that went silent.
        silent: Leg,
    },
    /// Never answered within [`Timeouts::unanswered`].
    NeverAnswered,
}

/// Something the control plane should hear about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// A leg's peer started a new RTP stream (new SSRC). The decoder was reset; our output
    /// stream toward the other leg carries on with the same SSRC and sequence. (Relaying, the
    /// new stream is forwarded as it is.)
    SsrcChanged {
        /// The leg whose peer changed.
        leg: Leg,
        /// The new SSRC.
        ssrc: u32,
    },
    /// A peer sent RTCP BYE.
    RemoteBye {
        /// The leg that said goodbye.
        leg: Leg,
    },
    /// The session ended; the driver removes it after draining its last datagrams.
    Ended(EndReason),
}

/// One bridged call. See the module docs for the run loop.
pub struct Session {
    config: SessionConfig,
    ingress_a: Ingress,
    ingress_b: Ingress,
    core: Core,
    rtcp_a: RtcpLeg,
    rtcp_b: RtcpLeg,
    clock: NtpClock,
    created: Instant,
    answered_at: Option<Instant>,
    ended: Option<EndReason>,
}

/// Everything but the ingresses, so a packet borrowed from an ingress can be processed.
struct Core {
    out_a: RtpOut,
    out_b: RtpOut,
    /// Some exactly while the session transcodes.
    transcoder: Option<Transcoder>,
    dtmf_a_to_b: DtmfRelay,
    dtmf_b_to_a: DtmfRelay,
    outbox: Outbox,
    events: VecDeque<SessionEvent>,
    pt_a: u8,
    te_a: Option<u8>,
    pt_b: u8,
    te_b: Option<u8>,
    mode_a: LegMode,
    mode_b: LegMode,
    leg_a: LegCounters,
    leg_b: LegCounters,
    loss: LossEstimate,
}

/// The loss the Opus encoder is told to expect: the larger of what the Opus peer reports (RTCP)
/// and what we see on the G.711 leg (a network that loses one way tends to lose the other; FEC
/// costs little when the peer asked for it).
#[derive(Clone, Copy, Debug, Default)]
struct LossEstimate {
    reported_pct: u8,
    seen_pct: u8,
    /// Leg A packets received and lost in the current window.
    received: u64,
    lost: u64,
    told_pct: u8,
}

/// Leg A packets per window of the seen loss (5 s at 20 ms).
const LOSS_WINDOW: u64 = 250;

#[derive(Clone, Copy, Debug, Default)]
struct LegCounters {
    packets_in: u64,
    bytes_in: u64,
    drops: DropCounts,
    last_media: Option<Instant>,
    /// RTP relayed to this leg's peer in passthrough (our own stream counts in its `RtpOut`).
    relayed: u64,
    /// Payload bytes of those.
    relayed_bytes: u64,
    /// RTCP relayed to this leg's peer.
    relayed_rtcp: u64,
}

impl Session {
    /// Builds a session; `now` is its creation time on the caller's clock.
    pub fn new(config: SessionConfig, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let out_a = RtpOut::new(
            Leg::A,
            config.seed_a.ssrc,
            config.seed_a.sequence,
            config.seed_a.timestamp,
        );
        // A relay builds no codec: passthrough sessions stay cheap to create and to hold.
        let transcoder = match config.mode {
            Mode::Transcode => Some(Transcoder::new(&config, &out_a, now)?),
            Mode::Passthrough => None,
        };
        let core = Core {
            out_a,
            out_b: RtpOut::new(
                Leg::B,
                config.seed_b.ssrc,
                config.seed_b.sequence,
                config.seed_b.timestamp,
            ),
            transcoder,
            dtmf_a_to_b: DtmfRelay::new(Rescale::Up6),
            dtmf_b_to_a: DtmfRelay::new(Rescale::Down6),
            outbox: Outbox::new(),
            events: VecDeque::with_capacity(4),
            pt_a: config.leg_a.payload_type,
            te_a: config.leg_a.telephone_event_pt,
            pt_b: config.leg_b.payload_type,
            te_b: config.leg_b.telephone_event_pt,
            mode_a: LegMode::default(),
            mode_b: LegMode::default(),
            leg_a: LegCounters::default(),
            leg_b: LegCounters::default(),
            loss: LossEstimate::default(),
        };
        Ok(Self {
            ingress_a: Ingress::new(8000, config.reorder_wait, now),
            // With the jitter buffer on, the playout clock says when a gap is given up
            // (`OpusToG711::needs_held`); the reorder wait is only the bound.
            ingress_b: Ingress::new(
                OPUS_CLOCK,
                match config.jitter.mode {
                    JitterMode::Off => config.reorder_wait,
                    _ => config.jitter.max_delay.max(config.reorder_wait),
                },
                now,
            ),
            rtcp_a: RtcpLeg::new(Leg::A, 8000, now, config.rtcp_interval, config.seed_a.ssrc),
            rtcp_b: RtcpLeg::new(
                Leg::B,
                OPUS_CLOCK,
                now,
                config.rtcp_interval,
                config.seed_b.ssrc,
            ),
            clock: NtpClock::new(now, config.ntp_at_creation),
            core,
            config,
            created: now,
            answered_at: None,
            ended: None,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Whether it transcodes or relays now.
    pub fn mode(&self) -> Mode {
        self.config.mode
    }

    /// Whether the session has ended (the driver drains its outbox, then drops it).
    pub fn is_ended(&self) -> bool {
        self.ended.is_some()
    }

    /// Our SSRC toward `leg`.
    pub fn ssrc(&self, leg: Leg) -> u32 {
        match leg {
            Leg::A => self.core.out_a.ssrc(),
            Leg::B => self.core.out_b.ssrc(),
        }
    }

    /// Both peers are known: the unanswered timer stops and media timeouts start counting.
    pub fn answer(&mut self, now: Instant) {
        self.answered_at.get_or_insert(now);
    }

    /// Sets send/receive for a leg (SDP direction, hold).
    pub fn set_mode(&mut self, leg: Leg, mode: LegMode) {
        match leg {
            Leg::A => {
                self.core.mode_a = mode;
                if !mode.send
                    && let Some(t) = self.core.transcoder.as_mut()
                {
                    t.b_to_a.stop_clock();
                }
            }
            Leg::B => {
                if !self.core.mode_b.send && mode.send {
                    self.core.out_b.marker_pending = true;
                }
                self.core.mode_b = mode;
            }
        }
    }

    /// Applies a renegotiation (re-INVITE) at `now`: codec law, payload types, ptimes, encoder
    /// settings, and the mode. Output streams keep their SSRC, sequence and timeline.
    ///
    /// A switch to [`Mode::Passthrough`] first sends what the transcoder holds (packets waiting
    /// in the reorder buffers, a partial Opus frame), then drops it; a switch to
    /// [`Mode::Transcode`] builds a fresh one whose first packet on each leg is marked and
    /// continues that leg's sequence and timeline. On an error nothing changed.
    pub fn update(&mut self, now: Instant, config: SessionConfig) -> Result<(), ConfigError> {
        config.validate()?;
        match (self.config.mode, config.mode) {
            (Mode::Transcode, Mode::Transcode) => self.retune(&config)?,
            (Mode::Passthrough, Mode::Transcode) => self.start_transcoding(now, &config)?,
            (Mode::Transcode, Mode::Passthrough) => self.stop_transcoding(now),
            (Mode::Passthrough, Mode::Passthrough) => {}
        }
        let c = &mut self.core;
        c.pt_a = config.leg_a.payload_type;
        c.te_a = config.leg_a.telephone_event_pt;
        c.pt_b = config.leg_b.payload_type;
        c.te_b = config.leg_b.telephone_event_pt;
        self.config = config;
        Ok(())
    }

    /// New codec settings for the running transcoder.
    fn retune(&mut self, config: &SessionConfig) -> Result<(), ConfigError> {
        let codec = |e: bridgepool_codecs::opus::OpusError| ConfigError::Codec(e.to_string());
        let old = &self.config;
        let Some(t) = self.core.transcoder.as_mut() else {
            return Ok(());
        };
        // The encoder is the one step that can fail: replaced first, so a failure changes nothing.
        let (oe, ne) = (&old.leg_b.encoder, &config.leg_b.encoder);
        if oe != ne {
            if only_bitrate_differs(oe, ne) {
                t.a_to_b.encoder().set_bitrate(ne.bitrate).map_err(codec)?;
            } else {
                t.a_to_b.replace_encoder(ne).map_err(codec)?;
                // A new encoder starts from its configured expected loss: tell it ours again.
                self.core.loss.told_pct = ne.expected_loss_pct;
                self.core.tune_encoder_loss();
            }
        }
        let Some(t) = self.core.transcoder.as_mut() else {
            return Ok(());
        };
        t.a_to_b.set_plc(config.g711_plc);
        if old.leg_a.law != config.leg_a.law {
            t.a_to_b.set_law(config.leg_a.law);
            t.b_to_a.set_law(config.leg_a.law);
        }
        if old.leg_a.ptime != config.leg_a.ptime {
            t.b_to_a.set_frame(config.frame_a(), config.leg_a.ptime);
        }
        if old.leg_b.ptime != config.leg_b.ptime {
            t.a_to_b.set_frame(config.frame_b());
        }
        Ok(())
    }

    /// Passthrough to transcode: a fresh transcoder; our streams resume, marked.
    fn start_transcoding(
        &mut self,
        now: Instant,
        config: &SessionConfig,
    ) -> Result<(), ConfigError> {
        let transcoder = Transcoder::new(config, &self.core.out_a, now)?;
        self.core.transcoder = Some(transcoder);
        // A fresh encoder expects the loss its settings say: tell it what this call has seen.
        self.core.loss.told_pct = config.leg_b.encoder.expected_loss_pct;
        self.core.tune_encoder_loss();
        self.core.dtmf_a_to_b.new_input();
        self.core.dtmf_b_to_a.new_input();
        self.core.out_a.marker_pending = true;
        self.core.out_b.marker_pending = true;
        // The codecs are known again; jitter is measured on their clocks.
        self.ingress_a.set_clock_rate(8000);
        self.ingress_b.set_clock_rate(OPUS_CLOCK);
        self.rtcp_a.resume(now);
        self.rtcp_b.resume(now);
        Ok(())
    }

    /// Transcode to passthrough: what the transcoder holds leaves first, then it stops.
    fn stop_transcoding(&mut self, now: Instant) {
        self.release(now, Leg::A, true);
        self.release(now, Leg::B, true);
        let c = &mut self.core;
        if c.mode_b.send
            && let Some(t) = c.transcoder.as_mut()
        {
            t.a_to_b.finish(now, &mut c.out_b, &mut c.outbox, c.pt_b);
        }
        c.transcoder = None;
        c.out_a.marker_pending = true;
        c.out_b.marker_pending = true;
    }

    /// Feeds one datagram received from `leg`'s peer on its RTP or RTCP socket at `now`.
    /// RTCP on the RTP socket (rtcp-mux, RFC 5761) is recognised.
    pub fn handle_datagram(&mut self, now: Instant, leg: Leg, channel: Channel, datagram: &[u8]) {
        if self.ended.is_some() {
            return;
        }
        if self.core.transcoder.is_none() {
            self.relay(now, leg, channel, datagram);
            return;
        }
        if channel == Channel::Rtcp || rtp::is_rtcp(datagram) {
            self.handle_rtcp(now, leg, datagram);
            return;
        }
        let Ok(packet) = RtpPacket::parse(datagram) else {
            self.core.counters(leg).drops.add(DropReason::Malformed);
            return;
        };
        let receive = match leg {
            Leg::A => self.core.mode_a.receive,
            Leg::B => self.core.mode_b.receive,
        };
        if !receive {
            self.core.counters(leg).drops.add(DropReason::Inactive);
            return;
        }
        let pt = packet.payload_type();
        let (audio, event) = match leg {
            Leg::A => (self.core.pt_a, self.core.te_a),
            Leg::B => (self.core.pt_b, self.core.te_b),
        };
        if pt != audio && Some(pt) != event {
            self.core.counters(leg).drops.add(DropReason::PayloadType);
            return;
        }
        let arrival = Arrival {
            ssrc: packet.ssrc(),
            seq: packet.sequence_number(),
            timestamp: packet.timestamp(),
            marker: packet.marker(),
            payload_type: pt,
        };
        let payload = packet.payload();
        let mut retried = false;
        loop {
            let ingress = match leg {
                Leg::A => &mut self.ingress_a,
                Leg::B => &mut self.ingress_b,
            };
            let verdict = ingress.push(now, arrival, payload);
            if leg == Leg::B
                && pt == self.core.pt_b
                && !matches!(verdict, Verdict::Duplicate | Verdict::NewStream)
                && let Some(t) = self.core.transcoder.as_mut()
            {
                t.b_to_a.observe(now, arrival.timestamp);
            }
            match verdict {
                Verdict::Deliver => {
                    self.core.process(now, leg, arrival, payload);
                    self.release(now, leg, false);
                }
                Verdict::Held => {}
                Verdict::Duplicate => self.core.counters(leg).drops.add(DropReason::Duplicate),
                Verdict::Late => {
                    self.core.counters(leg).drops.add(DropReason::Late);
                    if leg == Leg::B
                        && let Some(t) = self.core.transcoder.as_mut()
                    {
                        t.b_to_a.on_late_arrival();
                    }
                }
                Verdict::Overflow if !retried => {
                    // Give up the oldest gap to make room, then offer the packet again.
                    self.release(now, leg, true);
                    retried = true;
                    continue;
                }
                Verdict::Overflow => self
                    .core
                    .counters(leg)
                    .drops
                    .add(DropReason::ReorderOverflow),
                Verdict::NewStream if !retried => {
                    self.release(now, leg, true);
                    let first = ingress_of(&mut self.ingress_a, &mut self.ingress_b, leg)
                        .ssrc()
                        .is_none();
                    self.core.new_stream(now, leg, arrival.ssrc, first);
                    ingress_of(&mut self.ingress_a, &mut self.ingress_b, leg).restart(arrival);
                    retried = true;
                    continue;
                }
                Verdict::NewStream => self.core.counters(leg).drops.add(DropReason::Late),
            }
            break;
        }
    }

    fn handle_rtcp(&mut self, now: Instant, leg: Leg, datagram: &[u8]) {
        let events = &mut self.core.events;
        let (rtcp, ssrc) = match leg {
            Leg::A => (&mut self.rtcp_a, self.core.out_a.ssrc()),
            Leg::B => (&mut self.rtcp_b, self.core.out_b.ssrc()),
        };
        let before = rtcp.peer.reports;
        let ok = rtcp.on_receive(now, &self.clock, ssrc, datagram, &mut |e| {
            events.push_back(e);
        });
        if !ok {
            self.core.counters(leg).drops.add(DropReason::RtcpMalformed);
            return;
        }
        if leg == Leg::B && self.rtcp_b.peer.reports != before {
            // The loss the Opus peer sees of our stream tunes how much FEC we send.
            let pct = (self.rtcp_b.peer.fraction_lost * 100.0)
                .ceil()
                .clamp(0.0, 50.0) as u8;
            self.core.loss.reported_pct = pct;
            self.core.tune_encoder_loss();
        }
    }

    /// Releases packets from a leg's reorder buffer that are ready (or all, with `force`).
    fn release(&mut self, now: Instant, leg: Leg, force: bool) {
        let ingress = match leg {
            Leg::A => &mut self.ingress_a,
            Leg::B => &mut self.ingress_b,
        };
        while let Some(popped) = ingress.pop(now, force) {
            match popped {
                Popped::Lost { count } => match leg {
                    Leg::B => {
                        if let Some(t) = self.core.transcoder.as_mut() {
                            t.b_to_a.on_lost(count);
                        }
                    }
                    Leg::A => self.core.loss.lost += count,
                },
                Popped::Packet { arrival, payload } => {
                    self.core.process(now, leg, arrival, payload);
                }
            }
        }
    }

    /// Runs timers due at `now`: reorder waits, the G.711 playout clock, RTCP, timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended.is_some() {
            return;
        }
        if self.core.transcoder.is_none() {
            // Relaying: nothing waits and nothing is ours to report; only the timeouts run.
            if let Some(reason) = self.expired(now) {
                self.end(now, reason);
            }
            return;
        }
        self.release(now, Leg::A, false);
        let c = &mut self.core;
        if c.mode_b.send
            && let Some(t) = c.transcoder.as_mut()
        {
            t.a_to_b
                .on_deadline(now, &mut c.out_b, &mut c.outbox, c.pt_b);
        }
        // The G.711 side needs audio now: a packet held behind a gap is more use than waiting,
        // since it may carry FEC for the missing one.
        // Asked only with packets held (their wait has a deadline): the wait test reads the
        // delay histogram.
        let playout_due = self.ingress_b.deadline().is_some()
            && self
                .core
                .transcoder
                .as_ref()
                .is_some_and(|t| t.b_to_a.needs_held(now));
        self.release(now, Leg::B, playout_due);
        let c = &mut self.core;
        if c.mode_a.send
            && let Some(t) = c.transcoder.as_mut()
        {
            t.b_to_a
                .on_deadline(now, &mut c.out_a, &mut c.outbox, c.pt_a);
        }
        let cname = self.config.cname.as_bytes();
        self.rtcp_a.on_timeout(
            now,
            &self.clock,
            &self.core.out_a,
            &mut self.ingress_a,
            cname,
            &mut self.core.outbox,
        );
        self.rtcp_b.on_timeout(
            now,
            &self.clock,
            &self.core.out_b,
            &mut self.ingress_b,
            cname,
            &mut self.core.outbox,
        );
        if let Some(reason) = self.expired(now) {
            self.end(now, reason);
        }
    }

    /// The next instant [`Session::handle_timeout`] must run, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended.is_some() {
            return None;
        }
        let Some(t) = self.core.transcoder.as_ref() else {
            return Some(self.timeout_deadline());
        };
        [
            self.ingress_a.deadline(),
            self.ingress_b.deadline(),
            if self.core.mode_a.send {
                t.b_to_a.deadline()
            } else {
                None
            },
            if self.core.mode_b.send {
                t.a_to_b.deadline()
            } else {
                None
            },
            Some(self.rtcp_a.deadline()),
            Some(self.rtcp_b.deadline()),
            Some(self.timeout_deadline()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Copies the next datagram to send into `buf` (at least [`MAX_DATAGRAM`] bytes).
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        self.core.outbox.pop_into(buf)
    }

    /// The next event for the control plane.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.core.events.pop_front()
    }

    /// Ends the session from the control plane: a final RTCP report with BYE goes to each leg.
    pub fn close(&mut self, now: Instant) {
        if self.ended.is_none() {
            self.end(now, EndReason::Closed);
        }
    }

    /// What one leg saw and sent so far.
    pub fn stats(&self, leg: Leg) -> LegStats {
        let (ingress, out, counters, rtcp) = match leg {
            Leg::A => (
                &self.ingress_a,
                &self.core.out_a,
                &self.core.leg_a,
                &self.rtcp_a,
            ),
            Leg::B => (
                &self.ingress_b,
                &self.core.out_b,
                &self.core.leg_b,
                &self.rtcp_b,
            ),
        };
        LegStats {
            packets_in: counters.packets_in,
            packets_out: out.packets + counters.relayed,
            bytes_in: counters.bytes_in,
            bytes_out: out.octets + counters.relayed_bytes,
            packets_lost: ingress.packets_lost(),
            drops: counters.drops,
            jitter: ingress.jitter(),
            rtt: rtcp.peer.rtt,
            remote_fraction_lost: rtcp.peer.fraction_lost,
            rtcp_in: rtcp.packets_in,
            rtcp_out: rtcp.packets_out + counters.relayed_rtcp,
        }
    }

    /// Input dropped on `leg`, by reason (cheaper than [`Session::stats`]).
    pub fn drops(&self, leg: Leg) -> DropCounts {
        match leg {
            Leg::A => self.core.leg_a.drops,
            Leg::B => self.core.leg_b.drops,
        }
    }

    /// Counts a drop the driver decided (e.g. a foreign source), so per-leg stats hold them all.
    pub fn count_drop(&mut self, leg: Leg, reason: DropReason) {
        self.core.counters(leg).drops.add(reason);
    }

    /// Why the session ended, once it has.
    pub fn end_reason(&self) -> Option<EndReason> {
        self.ended
    }

    /// A MOS estimate for what we receive on `leg` (see [`LegStats::mos`]).
    pub fn mos(&self, leg: Leg) -> f64 {
        let ptime = match leg {
            Leg::A => self.config.leg_a.ptime,
            Leg::B => self.config.leg_b.ptime,
        };
        self.stats(leg).mos(ptime)
    }

    /// Concealment and recovery figures of the Opus-to-G.711 direction:
    /// `(frames recovered by FEC, samples concealed, late samples skipped)`.
    /// Counted by the transcoder running now (zeros while relaying).
    pub fn healing(&self) -> (u64, u64, u64) {
        self.core.transcoder.as_ref().map_or((0, 0, 0), |t| {
            let b = &t.b_to_a;
            (b.fec_recovered, b.concealed_samples, b.skipped_samples)
        })
    }

    /// The jitter buffer of the Opus -> G.711 direction: settings, current and target delay.
    /// Zeros (with the configured settings) while the session relays.
    pub fn jitter_buffer(&self) -> JitterStats {
        let Some(t) = self.core.transcoder.as_ref() else {
            return JitterStats {
                config: self.config.jitter,
                delay: std::time::Duration::ZERO,
                mean_delay: std::time::Duration::ZERO,
                target: std::time::Duration::ZERO,
                shortened_samples: 0,
                lengthened_samples: 0,
            };
        };
        let b = &t.b_to_a;
        JitterStats {
            config: b.jitter(),
            delay: b.delay,
            mean_delay: b.mean_delay(),
            target: b.target(),
            shortened_samples: b.shortened_samples,
            lengthened_samples: b.lengthened_samples,
        }
    }

    /// 8 kHz samples of lost G.711 input filled by concealment before the Opus encoder.
    pub fn g711_concealed_samples(&self) -> u64 {
        self.core
            .transcoder
            .as_ref()
            .map_or(0, |t| t.a_to_b.concealed_samples)
    }

    /// The packet loss percentage the Opus encoder was last told to expect.
    pub fn encoder_expected_loss(&self) -> u8 {
        self.core.loss.told_pct
    }

    /// Opus frames not sent because the encoder's DTX judged them silent (by the transcoder
    /// running now).
    pub fn dtx_frames(&self) -> u64 {
        self.core
            .transcoder
            .as_ref()
            .map_or(0, |t| t.a_to_b.dtx_frames)
    }

    /// Partial G.711-to-Opus frames (the input stopped mid-frame): `(padded and sent on their
    /// deadline, dropped because they could only have left late)`, by the transcoder running now.
    pub fn partial_frames(&self) -> (u64, u64) {
        self.core.transcoder.as_ref().map_or((0, 0), |t| {
            (t.a_to_b.partial_padded, t.a_to_b.partial_dropped)
        })
    }

    /// Frames toward the G.711 leg not sent because a relayed RFC 4733 event covered their time
    /// (by the transcoder running now).
    pub fn event_suppressed_frames(&self) -> u64 {
        self.core
            .transcoder
            .as_ref()
            .map_or(0, |t| t.b_to_a.suppressed_frames)
    }

    fn timeout_deadline(&self) -> Instant {
        let t = &self.config.timeouts;
        let Some(answered) = self.answered_at else {
            return self.created + t.unanswered;
        };
        let last = |c: &LegCounters| c.last_media.unwrap_or(answered).max(answered);
        let (a, b) = (last(&self.core.leg_a), last(&self.core.leg_b));
        (a.max(b) + t.media).min(a.min(b) + t.one_sided)
    }

    fn expired(&self, now: Instant) -> Option<EndReason> {
        let t = &self.config.timeouts;
        let Some(answered) = self.answered_at else {
            return (now >= self.created + t.unanswered).then_some(EndReason::NeverAnswered);
        };
        let last = |c: &LegCounters| c.last_media.unwrap_or(answered).max(answered);
        let (a, b) = (last(&self.core.leg_a), last(&self.core.leg_b));
        if now >= a.max(b) + t.media {
            return Some(EndReason::MediaTimeout);
        }
        if now >= a + t.one_sided {
            return Some(EndReason::OneSidedTimeout { silent: Leg::A });
        }
        if now >= b + t.one_sided {
            return Some(EndReason::OneSidedTimeout { silent: Leg::B });
        }
        None
    }

    fn end(&mut self, now: Instant, reason: EndReason) {
        let c = &mut self.core;
        let Some(t) = c.transcoder.as_mut() else {
            // Relaying, the peers' RTCP (their BYEs included) is theirs to send.
            self.ended = Some(reason);
            self.core.events.push_back(SessionEvent::Ended(reason));
            return;
        };
        if c.mode_b.send {
            t.a_to_b.finish(now, &mut c.out_b, &mut c.outbox, c.pt_b);
        }
        let cname = self.config.cname.as_bytes();
        self.rtcp_a.send_bye(
            now,
            &self.clock,
            &self.core.out_a,
            &mut self.ingress_a,
            cname,
            &mut self.core.outbox,
        );
        self.rtcp_b.send_bye(
            now,
            &self.clock,
            &self.core.out_b,
            &mut self.ingress_b,
            cname,
            &mut self.core.outbox,
        );
        self.ended = Some(reason);
        self.core.events.push_back(SessionEvent::Ended(reason));
    }
}

fn ingress_of<'a>(a: &'a mut Ingress, b: &'a mut Ingress, leg: Leg) -> &'a mut Ingress {
    match leg {
        Leg::A => a,
        Leg::B => b,
    }
}

impl Core {
    fn counters(&mut self, leg: Leg) -> &mut LegCounters {
        match leg {
            Leg::A => &mut self.leg_a,
            Leg::B => &mut self.leg_b,
        }
    }

    /// Counts a leg A audio packet; at each window's end the loss seen there is re-judged.
    fn count_leg_a_packet(&mut self) {
        let l = &mut self.loss;
        l.received += 1;
        let expected = l.received + l.lost;
        if expected >= LOSS_WINDOW {
            l.seen_pct = (l.lost * 100).div_ceil(expected).min(50) as u8;
            l.received = 0;
            l.lost = 0;
            self.tune_encoder_loss();
        }
    }

    fn tune_encoder_loss(&mut self) {
        let pct = self.loss.reported_pct.max(self.loss.seen_pct);
        if let Some(t) = self.transcoder.as_mut()
            && pct != self.loss.told_pct
            && t.a_to_b.encoder().set_expected_loss(pct).is_ok()
        {
            self.loss.told_pct = pct;
        }
    }

    /// A peer started a new stream: reset what decodes it, keep what we send.
    fn new_stream(&mut self, now: Instant, leg: Leg, ssrc: u32, first: bool) {
        match (leg, self.transcoder.as_mut()) {
            (Leg::A, Some(t)) => {
                if self.mode_b.send {
                    t.a_to_b
                        .finish(now, &mut self.out_b, &mut self.outbox, self.pt_b);
                }
                t.a_to_b.reset_input();
                self.out_b.marker_pending = true;
            }
            (Leg::B, Some(t)) => {
                // A decoder that refuses to reset keeps its old state: worse audio, not a failure.
                let _ = t.b_to_a.reset_input();
            }
            (_, None) => {}
        }
        if !first {
            self.events
                .push_back(SessionEvent::SsrcChanged { leg, ssrc });
        }
    }

    /// One packet in stream order.
    fn process(&mut self, now: Instant, leg: Leg, arrival: Arrival, payload: &[u8]) {
        let counters = self.counters(leg);
        counters.packets_in += 1;
        counters.bytes_in += payload.len() as u64;
        counters.last_media = Some(now);
        if leg == Leg::A && arrival.payload_type == self.pt_a {
            self.count_leg_a_packet();
        }
        let Some(t) = self.transcoder.as_mut() else {
            return;
        };
        match leg {
            Leg::A if arrival.payload_type == self.pt_a => {
                if self.mode_b.send {
                    t.a_to_b.on_packet(
                        now,
                        &mut self.out_b,
                        &mut self.outbox,
                        self.pt_b,
                        arrival.timestamp,
                        arrival.marker,
                        payload,
                    );
                }
            }
            Leg::A => {
                let Some(te_b) = self.te_b.filter(|_| self.mode_b.send) else {
                    return;
                };
                let Ok(event) = TelephoneEvent::parse(payload) else {
                    self.leg_a.drops.add(DropReason::Malformed);
                    return;
                };
                let (a_to_b, out_b) = (&mut t.a_to_b, &mut self.out_b);
                let relayed = self.dtmf_a_to_b.relay(arrival.timestamp, event, || {
                    a_to_b.map_ts(now, &*out_b, arrival.timestamp)
                });
                send_event(&mut self.out_b, &mut self.outbox, now, te_b, relayed);
            }
            Leg::B if arrival.payload_type == self.pt_b => {
                let result = t.b_to_a.on_packet(
                    now,
                    &mut self.out_a,
                    &mut self.outbox,
                    self.pt_a,
                    arrival.timestamp,
                    payload,
                );
                match result {
                    Ok(()) => {}
                    Err(Rejected::Undecodable) => self.leg_b.drops.add(DropReason::DecodeError),
                    Err(Rejected::Late) => self.leg_b.drops.add(DropReason::Late),
                }
            }
            Leg::B => {
                let Some(te_a) = self.te_a.filter(|_| self.mode_a.send) else {
                    return;
                };
                let Ok(event) = TelephoneEvent::parse(payload) else {
                    self.leg_b.drops.add(DropReason::Malformed);
                    return;
                };
                let position = t.b_to_a.out_position();
                let relayed = self
                    .dtmf_b_to_a
                    .relay(arrival.timestamp, event, || position);
                send_event(&mut self.out_a, &mut self.outbox, now, te_a, relayed);
                t.b_to_a.on_event(
                    relayed.ts,
                    u64::from(relayed.event.duration),
                    relayed.event.end,
                );
            }
        }
    }
}

fn send_event(
    out: &mut RtpOut,
    outbox: &mut Outbox,
    now: Instant,
    pt: u8,
    relayed: dtmf::RelayedEvent,
) {
    out.send(
        outbox,
        now,
        OutPacket {
            payload_type: pt,
            ts: relayed.ts,
            duration: 0,
            marker: relayed.marker,
        },
        |buf| relayed.event.write(buf).ok(),
    );
}

/// Whether a renegotiated encoder differs only in bitrate (settable on the running encoder).
fn only_bitrate_differs(old: &EncoderConfig, new: &EncoderConfig) -> bool {
    let mut o = old.clone();
    o.bitrate = new.bitrate;
    o == *new
}
