//! Leg B to leg A: Opus (48 kHz RTP clock) in, G.711 at 8 kHz out, as one continuous stream.
//!
//! libopus decodes straight to 8 kHz (no resampling). Loss is healed before it reaches the G.711
//! side: from the next packet's in-band FEC when it carries one, else by the decoder's packet loss
//! concealment. A PSTN gateway expects a continuous stream, so when the Opus side goes quiet (DTX,
//! or a packet later than the playout grace) the decoder's concealment (comfort noise after a DTX
//! frame) fills the output clock; a packet that then arrives for time already filled has its
//! covered part skipped, so latency does not creep up.
//!
//! The output timeline is our own: it advances by exactly one frame per output frame.
//!
//! With the jitter buffer on ([`JitterMode::Fixed`] or [`JitterMode::Adaptive`]) decoded audio
//! waits in the FIFO and leaves one frame per tick of the output clock. A packet later than its
//! tick is concealed in its place and then played in full (nothing is skipped; the delay grew);
//! the buffer is steered back to its target ([`super::jitter`]: the slack, how late the next
//! packet may be, moved by repeating or removing pitch periods, by frames in pauses), and a
//! talkspurt after DTX starts at the target delay. With it off
//! audio leaves as it arrives, and a packet later than the playout grace is concealed and skipped.
//!
//! While an RFC 4733 event relayed from the Opus side is being sent on the G.711 leg, audio is
//! suppressed (the timeline still advances) and resumes after the event's end: gateways detect
//! digits from the events, and audio stamped inside an event's time span would either reuse its
//! timestamps or carry the tone a second time in band (RFC 4733 section 2.5.1.2 lets a sender
//! send both, but on distinct, non-overlapping positions; suppression is what gateways and SBCs
//! do and expect).

use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{self, OpusDecoder, OpusError, SampleRate};
use bridgepool_codecs::stretch;

use super::config::{JitterBuffer, JitterMode};
use super::g711_to_opus::{OPUS_TICKS_PER_SAMPLE, extend_ts};
use super::jitter::{self, DelayEstimator, Stretch, duration_to_samples, samples_to_duration};
use super::rtp_out::{OutPacket, RtpOut};
use super::transmit::Outbox;

/// Samples per 2.5 ms at 8 kHz: libopus decodes, conceals and recovers in multiples of this.
const OPUS_GRANULE: usize = 20;
/// Largest Opus packet duration at 8 kHz (120 ms).
const MAX_PACKET: usize = 960;
/// A loss gap longer than this is not concealed sample by sample; the stream jumps ahead.
const MAX_CONCEAL: usize = 960;
/// After this long without input the output carries plain G.711 silence instead of running the
/// decoder's concealment.
const QUIET_AFTER: Duration = Duration::from_secs(1);
/// In a one-way job the output ends this long after the input did (beyond the playout grace):
/// a loss burst is still concealed, but a stream that stopped is not carried on.
const JOB_TAIL: Duration = Duration::from_millis(40);
/// An input timestamp this far behind the play position is a restarted clock, not a late packet.
const RESTART_BEHIND: u64 = 48_000;
/// An event whose end packet never arrives still releases the audio this long (8 kHz samples,
/// 60 ms: three update packets at the usual 20 ms) after the duration it last reported.
const EVENT_HOLD: u64 = 480;
/// With the jitter buffer on, a timestamp gap of this many packets with no loss reported is a
/// pause in the talk (DTX, silence suppression), not a lost packet.
const SILENCE_GAP: usize = 3;
/// Most missed ticks of the playout clock made up at once after a stall (200 ms at 20 ms);
/// beyond, the clock starts again from now.
const MAX_CATCH_UP: usize = 10;
/// Beyond one packet in hand: arrival against output clock phase.
const PHASE_MARGIN: Duration = Duration::from_millis(2);
/// Weight of each packet in the loss estimate (a time constant of 100 packets, 2 s at 20 ms).
const LOSS_WEIGHT: f32 = 0.01;
/// The loss rate assumed at least when weighing a wait for a missing packet against giving it
/// up: a packet later than all but this share of the stream's packets is not waited for.
const LOSS_FLOOR: f32 = 0.005;

/// Why an Opus packet was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// The payload does not decode.
    Undecodable,
    /// Everything it carries was already played out (concealed in its place).
    Late,
}

pub(crate) struct OpusToG711 {
    law: Law,
    decoder: OpusDecoder,
    /// Output frame in 8 kHz samples.
    frame: usize,
    ptime: Duration,
    grace: Duration,
    fifo: Vec<i16>,
    pcm: Vec<i16>,
    /// Input timestamp (48 kHz, extended) of the next sample to play; `None` before a stream.
    play_ts: Option<u64>,
    in_ts_ref: u64,
    /// Next output timestamp (8 kHz, unwrapped).
    out_ts: u64,
    /// Duration of the last decoded packet, the best guess for a lost one.
    last_packet: usize,
    pending_lost: u64,
    deadline: Option<Instant>,
    last_input: Option<Instant>,
    /// Frames (of the lost packet's size) recovered from in-band FEC.
    pub(crate) fec_recovered: u64,
    /// Samples produced by concealment (loss, DTX, lateness).
    pub(crate) concealed_samples: u64,
    /// Samples of late packets skipped because concealment already covered their time.
    pub(crate) skipped_samples: u64,
    /// Audio whose output timestamp is below this belongs to an event's time span: not sent.
    suppress_until: Option<u64>,
    /// Output frames not sent because an event covered their time.
    pub(crate) suppressed_frames: u64,
    /// The output stops with the input (one-way jobs) instead of staying continuous.
    ends_with_input: bool,
    jitter: JitterBuffer,
    /// Boxed: its histogram is 1 kB.
    estimator: Box<DelayEstimator>,
    /// Input timestamp just past the last decoded packet (a packet before it is old).
    decoded_end: Option<u64>,
    /// The clock found no frame in hand and concealed one: the late packet is played whole when
    /// it comes (the buffer grows by the concealment).
    growing: bool,
    /// Delay the buffer added to the last frame that left (see [`DelayEstimator::delay_of`]).
    pub(crate) delay: Duration,
    /// How late the next input packet may be, as of the last frame that left: the delay less
    /// the part of a frame the audio in hand ends into (see [`Self::steer`]).
    slack: Duration,
    /// Samples removed to bring the delay down (accelerate, silence cuts, max-delay cuts).
    pub(crate) shortened_samples: u64,
    /// Samples inserted to raise the delay (preemptive expand).
    pub(crate) lengthened_samples: u64,
    /// Sum over frames sent of [`Self::delay`], microseconds, and how many frames.
    delay_sum_us: u64,
    delay_frames: u64,
    /// Samples of silence sent just before the frame about to leave.
    quiet_run: usize,
    /// Share of this stream's packets that never came (given up and not seen since), as a
    /// moving average over packets.
    loss_rate: f32,
}

impl OpusToG711 {
    pub(crate) fn new(
        law: Law,
        frame: usize,
        ptime: Duration,
        grace: Duration,
        jitter: JitterBuffer,
    ) -> Result<Self, OpusError> {
        let max_delay = (jitter.max_delay.as_micros() * 8 / 1000) as usize;
        Ok(Self {
            law,
            decoder: OpusDecoder::new(SampleRate::Hz8000)?,
            frame,
            ptime,
            grace,
            // Room for the deepest buffer, a packet, a conceal run and a stretch: never regrown.
            fifo: Vec::with_capacity(max_delay + MAX_PACKET * 3 + MAX_CONCEAL),
            pcm: vec![0; MAX_PACKET],
            play_ts: None,
            in_ts_ref: 0,
            out_ts: 0,
            last_packet: 160,
            pending_lost: 0,
            deadline: None,
            last_input: None,
            fec_recovered: 0,
            concealed_samples: 0,
            skipped_samples: 0,
            suppress_until: None,
            suppressed_frames: 0,
            ends_with_input: false,
            jitter,
            estimator: Box::new(DelayEstimator::new()),
            decoded_end: None,
            growing: false,
            delay: Duration::ZERO,
            slack: Duration::ZERO,
            shortened_samples: 0,
            lengthened_samples: 0,
            delay_sum_us: 0,
            delay_frames: 0,
            quiet_run: 0,
            loss_rate: 0.0,
        })
    }

    fn buffered(&self) -> bool {
        self.jitter.mode != JitterMode::Off
    }

    /// Mean of the delay the buffer added, over the frames sent since the session started.
    pub(crate) fn mean_delay(&self) -> Duration {
        Duration::from_micros(
            self.delay_sum_us
                .checked_div(self.delay_frames)
                .unwrap_or(0),
        )
    }

    /// The jitter buffer settings in force.
    pub(crate) fn jitter(&self) -> JitterBuffer {
        self.jitter
    }

    /// The delay the buffer steers toward now.
    pub(crate) fn target(&self) -> Duration {
        let target = match self.jitter.mode {
            JitterMode::Off => Duration::ZERO,
            JitterMode::Fixed => self.jitter.fixed_delay,
            // Input packets longer than our frames arrive in steps: the later frames of a
            // packet wait by design.
            JitterMode::Adaptive => {
                // At least one packet in hand: when a packet is lost the next one, with its
                // FEC, is there before the lost one's time must be concealed (NetEq's floor).
                let floor = samples_to_duration(self.last_packet) + PHASE_MARGIN;
                (self.estimator.target()
                    + samples_to_duration(self.last_packet.saturating_sub(self.frame)))
                .max(floor)
            }
        };
        target.min(self.jitter.max_delay)
    }

    /// A packet of this stream arrived at `now` (any order, late ones too): the delay estimate
    /// learns from it.
    pub(crate) fn observe(&mut self, now: Instant, in_ts: u32) {
        if self.buffered() {
            self.estimator.observe(now, in_ts);
        }
    }

    /// Whether the output clock needs the packets held behind a gap now: the gap is given up as
    /// lost (FEC from the next packet, else concealment). With the buffer on, only when the
    /// buffer has no frame for this tick, the slack is at its target (below it, the gap is
    /// waited for: the buffer grows) and the missing packet is more likely lost than late.
    pub(crate) fn needs_held(&self, now: Instant) -> bool {
        let due = self.deadline.is_some_and(|d| d <= now);
        due && (!self.buffered()
            || (self.fifo.len() < self.frame && !self.may_grow() && !self.worth_waiting(now)))
    }

    /// Whether the packet missing at the head of the held ones is more likely to come than to
    /// be lost, by how many packets were ever this late (the delay histogram) against how many
    /// never came. Waiting conceals this tick and plays the packet whole when it comes (the
    /// delay grows, as for a late packet in order); giving up drops it when it comes. PESQ on
    /// client streams at 30 % +5-80 ms: giving up at the target cost 0.3 more with reordering
    /// than the same delays in order (0.55 against 0.24 below clean; docs/performance.md).
    fn worth_waiting(&self, now: Instant) -> bool {
        let Some(missing) = self.decoded_end else {
            return false;
        };
        let Some(late) = self.estimator.delay_of(now, missing) else {
            return false;
        };
        if late >= self.jitter.max_delay {
            return false;
        }
        let lost = self.loss_rate.max(LOSS_FLOOR);
        (1.0 - lost) * self.estimator.share_later_than(late) > lost
    }

    /// Whether the slack is a frame below the target: an underrun then grows the buffer (the late
    /// packet is waited for and played whole) instead of skipping the late audio.
    fn may_grow(&self) -> bool {
        self.slack + self.ptime <= self.target()
    }

    /// The output stops shortly after the input does, as a relay transcoding locally would:
    /// for one-way jobs, whose relay forwards what it gets and runs its own timeouts. A two-way
    /// session keeps its G.711 stream continuous instead (a gateway may hang up on silence).
    pub(crate) fn end_with_input(&mut self) {
        self.ends_with_input = true;
    }

    pub(crate) fn set_law(&mut self, law: Law) {
        self.law = law;
    }

    pub(crate) fn set_frame(&mut self, frame: usize, ptime: Duration) {
        self.frame = frame;
        self.ptime = ptime;
    }

    /// Starts the output timeline at `out_ts` (a transcoder started on a session whose leg A
    /// stream already ran: its timestamps carry on from there).
    pub(crate) fn start_at(&mut self, out_ts: u64) {
        self.out_ts = out_ts;
    }

    /// Where the next output packet sits on our 8 kHz timeline (for mapping events).
    pub(crate) fn out_position(&self) -> u64 {
        self.out_ts
    }

    /// An event packet was relayed toward the G.711 leg at output timestamp `start` with
    /// `duration` (8 kHz units): audio stays off its time span. At the event's end the timeline
    /// moves past it, so the audio that follows starts after the event.
    pub(crate) fn on_event(&mut self, start: u64, duration: u64, end: bool) {
        let event_end = start + duration;
        if end {
            if event_end <= self.out_ts {
                // A repeated end packet after the audio resumed: nothing to hold.
                if self.suppress_until.is_some_and(|u| u <= self.out_ts) {
                    self.suppress_until = None;
                }
                return;
            }
            self.suppress_until = Some(event_end);
            self.out_ts = self.out_ts.max(event_end);
        } else {
            let until = event_end + EVENT_HOLD;
            self.suppress_until = Some(self.suppress_until.map_or(until, |u| u.max(until)));
        }
    }

    /// When the playout clock next needs a frame.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Stops the playout clock (the A side is on hold or the session ends).
    pub(crate) fn stop_clock(&mut self) {
        self.deadline = None;
    }

    /// Packets given up as lost just before the next one.
    pub(crate) fn on_lost(&mut self, count: u64) {
        self.pending_lost += count;
        if self.buffered() {
            // `count` steps of the moving average toward 1 at once.
            let kept = (1.0 - LOSS_WEIGHT).powi(count.min(1000) as i32);
            self.loss_rate = 1.0 - (1.0 - self.loss_rate) * kept;
        }
    }

    /// A packet given up as lost came after all (too late to play): it was not lost.
    pub(crate) fn on_late_arrival(&mut self) {
        self.loss_rate = (self.loss_rate - LOSS_WEIGHT).max(0.0);
    }

    /// A new input stream (SSRC change): fresh decoder state, same output stream.
    pub(crate) fn reset_input(&mut self) -> Result<(), OpusError> {
        self.play_ts = None;
        self.decoded_end = None;
        self.pending_lost = 0;
        self.estimator.new_stream();
        self.decoder.reset()
    }

    /// One in-order Opus packet.
    pub(crate) fn on_packet(
        &mut self,
        now: Instant,
        out: &mut RtpOut,
        outbox: &mut Outbox,
        pt: u8,
        in_ts: u32,
        payload: &[u8],
    ) -> Result<(), Rejected> {
        let samples =
            opus::packet_samples(payload, SampleRate::Hz8000).map_err(|_| Rejected::Undecodable)?;
        if samples == 0 || samples > MAX_PACKET {
            return Err(Rejected::Undecodable);
        }
        let ext = extend_ts(self.in_ts_ref, in_ts);
        if self.buffered() {
            return self.buffer_packet(now, ext, samples, payload);
        }
        if self.play_ts.is_none() || ext > self.in_ts_ref {
            self.in_ts_ref = ext;
        }
        let mut covered = 0;
        match self.play_ts {
            Some(play) if ext > play => {
                let missing = ((ext - play) / OPUS_TICKS_PER_SAMPLE) as usize;
                // Loss: FEC or concealment. DTX or a late resume: the rest of the pause, as the
                // decoder's comfort noise, so the G.711 side keeps real-time pace. Longer gaps
                // jump: sending them now would only burst.
                if missing <= MAX_CONCEAL {
                    self.heal(missing, payload, self.pending_lost > 0);
                }
            }
            Some(play) if ext < play && play - ext < RESTART_BEHIND => {
                covered = ((play - ext) / OPUS_TICKS_PER_SAMPLE) as usize;
            }
            _ => {}
        }
        self.pending_lost = 0;
        let n = self.decode(payload, samples)?;
        self.last_input = Some(now);
        let end = ext + n as u64 * OPUS_TICKS_PER_SAMPLE;
        self.play_ts = Some(
            self.play_ts
                .map_or(end, |p| if covered > 0 { p.max(end) } else { end }),
        );
        if covered >= n {
            self.skipped_samples += n as u64;
            return Err(Rejected::Late);
        }
        self.skipped_samples += covered as u64;
        self.fifo.extend_from_slice(&self.pcm[covered..n]);
        self.drain(now, out, outbox, pt, usize::MAX);
        self.deadline = Some(now + self.ptime + self.grace);
        Ok(())
    }

    fn decode(&mut self, payload: &[u8], samples: usize) -> Result<usize, Rejected> {
        match self.decoder.decode(payload, &mut self.pcm[..samples]) {
            Ok(n) => {
                let n = n.min(samples);
                self.last_packet = n.max(OPUS_GRANULE);
                Ok(n)
            }
            Err(_) => {
                self.pending_lost = 1;
                Err(Rejected::Undecodable)
            }
        }
    }

    /// The jitter buffer's side of [`Self::on_packet`]: the packet's audio joins the FIFO whole
    /// (a late packet makes the delay grow instead of being cut); the output clock sends it.
    fn buffer_packet(
        &mut self,
        now: Instant,
        ext: u64,
        samples: usize,
        payload: &[u8],
    ) -> Result<(), Rejected> {
        if let Some(end) = self.decoded_end
            && ext < end
            && end - ext < RESTART_BEHIND
        {
            // Behind audio already decoded (a job has no reorder buffer): playing it now would
            // put audio out of order.
            self.skipped_samples += samples as u64;
            return Err(Rejected::Late);
        }
        if self.play_ts.is_none() || ext > self.in_ts_ref {
            self.in_ts_ref = ext;
        }
        // Audio whose time the clock already filled with concealment is skipped: playing it
        // late would stretch the talk out of its timing (PESQ: inserting the concealment and
        // keeping the packet cost more than the concealment alone). The delay grows in pauses.
        let covered = match self.play_ts {
            Some(play) if !self.growing && ext < play && play - ext < RESTART_BEHIND => {
                ((play - ext) / OPUS_TICKS_PER_SAMPLE) as usize
            }
            _ => 0,
        };
        if let Some(play) = self.play_ts
            && ext > play
        {
            let missing = ((ext - play) / OPUS_TICKS_PER_SAMPLE) as usize;
            let lost = self.pending_lost > 0;
            if lost || missing < SILENCE_GAP * self.last_packet.max(self.frame) {
                if missing <= MAX_CONCEAL {
                    self.heal(missing, payload, lost);
                }
            } else {
                // A talkspurt after DTX or silence: start it at the target delay, whatever
                // the delay was when the last one ended.
                let fill = duration_to_samples(self.target()).saturating_sub(self.fifo.len());
                self.heal(fill.min(missing), payload, false);
            }
        }
        self.pending_lost = 0;
        let n = self.decode(payload, samples)?;
        self.loss_rate -= LOSS_WEIGHT * self.loss_rate;
        self.last_input = Some(now);
        let end = ext + n as u64 * OPUS_TICKS_PER_SAMPLE;
        self.play_ts = Some(match self.play_ts {
            Some(p) if !self.growing => p.max(end),
            _ => end,
        });
        self.growing = false;
        self.decoded_end = Some(end);
        // A packet so late that keeping it whole would break the delay bound loses its start.
        // It leaves at the next tick after what is queued.
        let queued = samples_to_duration(self.fifo.len());
        let leaves = self.deadline.map_or(now, |d| d.max(now)) + queued;
        let bound = match self.estimator.delay_of(leaves, ext) {
            Some(d) if d > self.jitter.max_delay => duration_to_samples(d - self.jitter.max_delay),
            _ => 0,
        };
        let skip = covered.max(bound).min(n);
        if skip == n {
            self.skipped_samples += n as u64;
            return Err(Rejected::Late);
        }
        self.skipped_samples += skip as u64;
        // Beyond the buffer's bound the audio cannot be kept: the oldest goes.
        let room = self.fifo.capacity() - self.fifo.len();
        if n - skip > room {
            self.fifo.drain(..n - skip - room);
            self.shortened_samples += (n - skip - room) as u64;
        }
        self.fifo.extend_from_slice(&self.pcm[skip..n]);
        if self.deadline.is_none() {
            self.deadline = Some(now + self.target());
        }
        Ok(())
    }

    /// The playout clock fired: if the input has not delivered a frame, conceal one.
    pub(crate) fn on_deadline(
        &mut self,
        now: Instant,
        out: &mut RtpOut,
        outbox: &mut Outbox,
        pt: u8,
    ) {
        let Some(mut deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        let buffered = self.buffered();
        if buffered {
            // A late tick (the host stalled): the frames of the ticks missed leave now, so the
            // output keeps its rate instead of falling behind the timestamps for good.
            let mut caught = 0;
            while deadline + self.ptime <= now
                && self.fifo.len() >= self.frame
                && caught < MAX_CATCH_UP
            {
                self.steer(deadline);
                self.drain(now, out, outbox, pt, 1);
                deadline += self.ptime;
                caught += 1;
            }
        }
        if self.ends_with_input
            && (!buffered || self.fifo.len() < self.frame)
            && self.last_input.is_some_and(|t| {
                now.saturating_duration_since(t) > self.ptime + self.grace + JOB_TAIL
            })
        {
            // The next packet starts the clock again.
            self.deadline = None;
            return;
        }
        if buffered && self.fifo.len() >= self.frame {
            self.steer(now);
        }
        let quiet = self
            .last_input
            .is_none_or(|t| now.saturating_duration_since(t) >= QUIET_AFTER);
        if buffered && self.fifo.len() < self.frame {
            // Measured by PESQ: the late packet played whole after the concealment (the delay
            // grows, pauses bring it back) scores far above skipping what was concealed.
            self.growing = true;
        }
        while self.fifo.len() < self.frame {
            let need = (self.frame - self.fifo.len()).div_ceil(OPUS_GRANULE) * OPUS_GRANULE;
            let need = need.min(MAX_PACKET);
            let start = self.fifo.len();
            self.fifo.resize(start + need, 0);
            if !quiet {
                let got = self.decoder.conceal(&mut self.fifo[start..]).unwrap_or(0);
                self.fifo.truncate(start + got.min(need));
                if got == 0 {
                    self.fifo.resize(start + need, 0);
                }
            }
            self.concealed_samples += need as u64;
            if let Some(play) = self.play_ts.as_mut() {
                *play += need as u64 * OPUS_TICKS_PER_SAMPLE;
            }
        }
        let limit = if buffered { 1 } else { usize::MAX };
        self.drain(now, out, outbox, pt, limit);
        let next = deadline + self.ptime;
        self.deadline = Some(if next > now { next } else { now + self.ptime });
    }

    /// Measures the delay of the frame about to leave and moves it one step toward the target.
    fn steer(&mut self, now: Instant) {
        let Some(play) = self.play_ts else {
            return;
        };
        let front = play.saturating_sub(self.fifo.len() as u64 * OPUS_TICKS_PER_SAMPLE);
        let Some(delay) = self.estimator.delay_of(now, front) else {
            return;
        };
        self.delay = delay;
        self.delay_sum_us += delay.as_micros() as u64;
        self.delay_frames += 1;
        if delay > self.jitter.max_delay {
            let cut = duration_to_samples(delay - self.jitter.max_delay)
                .min(self.fifo.len().saturating_sub(self.frame));
            self.fifo.drain(..cut);
            self.shortened_samples += cut as u64;
            let delay = delay.saturating_sub(samples_to_duration(cut));
            self.slack = jitter::slack(delay, self.fifo.len(), self.frame);
            return;
        }
        // The lateness the next packet survives (see [`jitter::adjust`]). Steering the delay
        // instead left silence cuts and pitch periods misaligned with the packets, and a packet
        // later than the slack but within the target was concealed in mid-speech.
        let target = self.target();
        let delay = match jitter::adjust(&mut self.fifo, self.frame, delay, target, self.quiet_run)
        {
            Stretch::None => delay,
            Stretch::Shortened(n) => {
                self.shortened_samples += n as u64;
                delay.saturating_sub(samples_to_duration(n))
            }
            Stretch::Lengthened(n) => {
                self.lengthened_samples += n as u64;
                delay + samples_to_duration(n)
            }
        };
        self.slack = jitter::slack(delay, self.fifo.len(), self.frame);
        // Shortening may have left less than a frame (the tick conceals the rest).
        let head = &self.fifo[..self.frame.min(self.fifo.len())];
        if !head.is_empty() && stretch::is_silent(head) {
            self.quiet_run = self.quiet_run.saturating_add(self.frame);
        } else {
            self.quiet_run = 0;
        }
    }

    /// Fills `missing` samples before `next_payload`: after a loss, FEC from it for the last lost
    /// frame when it carries FEC; concealment (comfort noise after DTX) for the rest.
    fn heal(&mut self, missing: usize, next_payload: &[u8], lost: bool) {
        let missing = missing / OPUS_GRANULE * OPUS_GRANULE;
        let fec = if lost && opus::packet_has_fec(next_payload) {
            self.last_packet.min(missing)
        } else {
            0
        };
        let mut plc = missing - fec;
        while plc > 0 {
            let chunk = plc.min(self.last_packet).min(MAX_PACKET);
            let start = self.fifo.len();
            self.fifo.resize(start + chunk, 0);
            let got = self.decoder.conceal(&mut self.fifo[start..]).unwrap_or(0);
            if got < chunk {
                // Keep the timeline whole even if concealment failed: silence for the rest.
                self.fifo[start + got..].fill(0);
            }
            self.concealed_samples += chunk as u64;
            plc -= chunk;
        }
        if fec > 0 {
            let start = self.fifo.len();
            self.fifo.resize(start + fec, 0);
            match self
                .decoder
                .decode_fec(next_payload, &mut self.fifo[start..])
            {
                Ok(_) => self.fec_recovered += 1,
                Err(_) => {
                    let got = self.decoder.conceal(&mut self.fifo[start..]).unwrap_or(0);
                    self.fifo[start + got.min(fec)..].fill(0);
                    self.concealed_samples += fec as u64;
                }
            }
        }
    }

    /// Sends up to `limit` whole frames from the FIFO.
    fn drain(&mut self, now: Instant, out: &mut RtpOut, outbox: &mut Outbox, pt: u8, limit: usize) {
        let frame = self.frame;
        let mut consumed = 0;
        let mut frames = 0;
        while self.fifo.len() - consumed >= frame && frames < limit {
            frames += 1;
            if self.suppress_until.is_some_and(|u| self.out_ts < u) {
                // An event covers this time: the audio after it starts a new talkspurt.
                self.suppressed_frames += 1;
                out.marker_pending = true;
                self.out_ts += frame as u64;
                consumed += frame;
                continue;
            }
            let pcm = &self.fifo[consumed..consumed + frame];
            let law = self.law;
            let marker = out.marker_pending;
            let sent = out.send(
                outbox,
                now,
                OutPacket {
                    payload_type: pt,
                    ts: self.out_ts,
                    duration: frame as u64,
                    marker,
                },
                |buf| {
                    let dst = buf.get_mut(..frame)?;
                    law.encode(pcm, dst);
                    Some(frame)
                },
            );
            if sent {
                out.marker_pending = false;
            }
            self.out_ts += frame as u64;
            consumed += frame;
        }
        if consumed > 0 {
            self.fifo.copy_within(consumed.., 0);
            self.fifo.truncate(self.fifo.len() - consumed);
        }
    }
}
