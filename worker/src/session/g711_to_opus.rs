//! Leg A to leg B: G.711 at 8 kHz in, Opus out on a 48 kHz RTP clock.
//!
//! Decoded samples collect in a FIFO and leave as Opus frames of the negotiated ptime, whatever
//! the input ptime (repacketization). libopus is fed 8 kHz directly: no resampling. Output
//! timestamps follow the input's (times six), so gaps in the input (loss, silence suppression)
//! stay gaps on the output instead of being filled with made-up audio; the Opus receiver conceals.
//!
//! A short gap in the input with no marker bit (a lost packet, not a pause) is filled by G.711
//! Appendix I style concealment ([`G711Plc`]) before the encoder, when enabled: chosen by PESQ
//! against leaving the gap to the Opus receiver (docs/performance.md). Longer gaps, and pauses
//! the sender marks, stay gaps.
//!
//! A partial frame left in the FIFO (a sender whose last packet is short, or a stream that
//! stops mid-frame) leaves on time: when the input that would complete it is overdue by a frame,
//! it is padded with silence and sent at its own timestamp ([`G711ToOpus::on_deadline`]). Input
//! arriving after that for time already sent as padding is skipped, so no timestamp is reused and
//! none claims continuity for audio sent late.

use std::time::{Duration, Instant};

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{EncoderConfig, OpusEncoder, OpusError};
use bridgepool_codecs::plc::G711Plc;

use super::rtp_out::{OutPacket, RtpOut};
use super::transmit::Outbox;

/// Opus RTP clock ticks per 8 kHz sample.
pub(crate) const OPUS_TICKS_PER_SAMPLE: u64 = 6;
/// Opus RTP clock rate (RFC 7587), whatever rate the codec runs at inside.
pub(crate) const OPUS_CLOCK: u32 = 48_000;
/// The FIFO holds at most this many samples (two 60 ms input packets on top of a 60 ms frame).
const FIFO_CAPACITY: usize = 3 * 480;
/// Least wait, beyond the time the missing samples would take, before a partial frame is padded
/// and sent: one input packet's worth of jitter at the usual 20 ms.
const MIN_PARTIAL_GRACE: Duration = Duration::from_millis(20);
/// How far input timestamps may run ahead of the wall time between two packets (jitter, a burst
/// after a stall) before the jump counts as a new timeline: a sender's silence gap is kept as a
/// gap, a 13-hour leap in one packet (a broken or hostile sender) is not copied to the output,
/// where past 2^31 ticks it would read as a step backwards.
const MAX_TS_LEAD: Duration = Duration::from_secs(2);
/// The longest gap concealed (60 ms): concealment is silent beyond it anyway.
const MAX_PLC_GAP: usize = 480;

pub(crate) struct G711ToOpus {
    law: Law,
    encoder: OpusEncoder,
    /// Output frame in 8 kHz samples.
    frame: usize,
    fifo: Vec<i16>,
    /// Output timestamp (48 kHz, unwrapped) of `fifo[0]`.
    fifo_ts: u64,
    /// Output timestamp minus six times the input's extended timestamp.
    offset: i64,
    /// Input timestamp (8 kHz, extended) expected for the next sample; `None` before a stream.
    next_in_ts: Option<u64>,
    /// When the last packet of the stream arrived, to judge its timestamp gaps.
    last_in_at: Option<Instant>,
    /// Highest extended input timestamp seen, to extend the next.
    in_ts_ref: u64,
    /// Opus frames the encoder judged silent under DTX and we did not send.
    pub(crate) dtx_frames: u64,
    /// Frames handed to the encoder.
    pub(crate) frames_encoded: u64,
    /// When the partial frame in the FIFO is padded and sent if no input completes it.
    partial_deadline: Option<Instant>,
    /// Partial frames padded and sent because the input stopped mid-frame.
    pub(crate) partial_padded: u64,
    /// Partial frames dropped because they could only have left late.
    pub(crate) partial_dropped: u64,
    /// Loss concealment of the G.711 input, when enabled (boxed: 1.5 kB of history).
    plc: Option<Box<G711Plc>>,
    /// Samples of lost input filled by concealment.
    pub(crate) concealed_samples: u64,
}

impl G711ToOpus {
    pub(crate) fn new(law: Law, encoder: &EncoderConfig, frame: usize) -> Result<Self, OpusError> {
        Ok(Self {
            law,
            encoder: OpusEncoder::new(encoder)?,
            frame,
            fifo: Vec::with_capacity(FIFO_CAPACITY),
            fifo_ts: 0,
            offset: 0,
            next_in_ts: None,
            last_in_at: None,
            in_ts_ref: 0,
            dtx_frames: 0,
            frames_encoded: 0,
            partial_deadline: None,
            partial_padded: 0,
            partial_dropped: 0,
            plc: None,
            concealed_samples: 0,
        })
    }

    /// Conceals lost input before the encoder (on) or leaves the gap to the receiver (off).
    pub(crate) fn set_plc(&mut self, on: bool) {
        if on != self.plc.is_some() {
            self.plc = on.then(|| Box::new(G711Plc::new()));
        }
    }

    pub(crate) fn set_law(&mut self, law: Law) {
        self.law = law;
    }

    pub(crate) fn set_frame(&mut self, frame: usize) {
        self.frame = frame;
    }

    pub(crate) fn encoder(&mut self) -> &mut OpusEncoder {
        &mut self.encoder
    }

    pub(crate) fn replace_encoder(&mut self, config: &EncoderConfig) -> Result<(), OpusError> {
        self.encoder = OpusEncoder::new(config)?;
        Ok(())
    }

    /// Maps an input timestamp (8 kHz, as on the wire) to our output timeline, for events.
    pub(crate) fn map_ts(&mut self, now: Instant, out: &RtpOut, in_ts: u32) -> u64 {
        let ext = self.extend(in_ts);
        match self.next_in_ts {
            None => self.start(now, out, ext),
            Some(expected) if !self.plausible(now, expected, ext) => {
                // An event far off the audio's timeline starts where the audio is now.
                return self.fifo_ts;
            }
            Some(_) => {}
        }
        self.to_out(ext)
    }

    /// Whether `ext` is where this stream can be, given `expected` and the wall time since its
    /// last packet.
    fn plausible(&self, now: Instant, expected: u64, ext: u64) -> bool {
        let elapsed = self
            .last_in_at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        let lead = (elapsed + MAX_TS_LEAD).as_millis() as u64 * 8;
        ext.abs_diff(expected) <= lead
    }

    /// One in-order G.711 packet.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_packet(
        &mut self,
        now: Instant,
        out: &mut RtpOut,
        outbox: &mut Outbox,
        pt: u8,
        in_ts: u32,
        talkspurt: bool,
        payload: &[u8],
    ) {
        let ext = self.extend(in_ts);
        match self.next_in_ts {
            None => self.start(now, out, ext),
            Some(expected) if !self.plausible(now, expected, ext) => {
                // A leap no elapsed time explains: a new timeline, continuous with what we sent.
                self.finish(now, out, outbox, pt);
                self.start(now, out, ext);
                out.marker_pending = true;
            }
            Some(expected)
                if ext > expected
                    && !talkspurt
                    && self.plc.is_some()
                    && (ext - expected) as usize
                        <= MAX_PLC_GAP.min(FIFO_CAPACITY - self.fifo.len()) =>
            {
                let gap = (ext - expected) as usize;
                let start = self.fifo.len();
                self.fifo.resize(start + gap, 0);
                if let Some(plc) = self.plc.as_mut() {
                    plc.conceal(&mut self.fifo[start..]);
                }
                self.concealed_samples += gap as u64;
                // The concealed frames leave now, a packet late: the receiver's buffer absorbs
                // that, while a gap would be concealed there from a codec state it never saw.
                self.drain(now, out, outbox, pt);
            }
            Some(expected) if ext > expected => {
                let gap = (ext - expected) as usize;
                let pad = if self.fifo.is_empty() {
                    0
                } else {
                    (self.frame - self.fifo.len() % self.frame) % self.frame
                };
                let fill = gap.min(pad);
                self.fifo.resize(self.fifo.len() + fill, 0);
                self.drain(now, out, outbox, pt);
                if gap > fill {
                    // The rest of the gap stays a gap: restart the FIFO at the new position.
                    self.flush(now, out, outbox, pt);
                    self.fifo_ts = self.fifo_ts.max(self.to_out(ext));
                    out.marker_pending |= talkspurt;
                }
            }
            Some(expected) if ext < expected => {
                // Overlaps audio already taken (a sender restarting its clock): start over.
                self.flush(now, out, outbox, pt);
                self.start(now, out, ext);
            }
            Some(_) => {}
        }
        if talkspurt {
            out.marker_pending = true;
        }
        // Samples for time already sent (as padding of a partial frame that could not wait)
        // are skipped: their timestamps are taken.
        let at = self.to_out(ext);
        let skip = if self.fifo.is_empty() && self.fifo_ts > at {
            (((self.fifo_ts - at) / OPUS_TICKS_PER_SAMPLE) as usize).min(payload.len())
        } else {
            0
        };
        let payload_len = payload.len();
        let payload = &payload[skip..];
        let room = FIFO_CAPACITY - self.fifo.len();
        let take = payload.len().min(room);
        let start = self.fifo.len();
        self.fifo.resize(start + take, 0);
        self.law.decode(&payload[..take], &mut self.fifo[start..]);
        if let Some(plc) = self.plc.as_mut() {
            plc.good(&mut self.fifo[start..]);
        }
        self.next_in_ts = Some(ext + payload_len as u64);
        self.last_in_at = Some(now);
        self.drain(now, out, outbox, pt);
        self.partial_deadline = if self.fifo.is_empty() {
            None
        } else {
            // Due when the rest of the frame should have come, plus about a frame of jitter.
            let missing = (self.frame - self.fifo.len() % self.frame) % self.frame;
            let frame_time = samples_duration(self.frame).max(MIN_PARTIAL_GRACE);
            Some(now + samples_duration(missing) + frame_time)
        };
    }

    /// When [`Self::on_deadline`] must run: a partial frame waits for input.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.partial_deadline
    }

    /// The input that would complete the partial frame is overdue: pad it and send it now, at
    /// its own timestamp, while it is still on time.
    pub(crate) fn on_deadline(
        &mut self,
        now: Instant,
        out: &mut RtpOut,
        outbox: &mut Outbox,
        pt: u8,
    ) {
        if self.partial_deadline.is_some_and(|d| d <= now) {
            if self.overdue(now) {
                // Timers held back (the Opus leg on hold): too late to send.
                self.drop_partial();
                return;
            }
            if !self.fifo.is_empty() {
                self.partial_padded += 1;
            }
            self.flush(now, out, outbox, pt);
        }
    }

    /// Ends the input stream (SSRC change, session end): a partial frame still on time is padded
    /// and sent; one whose deadline passed more than a frame ago unserved (a driver that did not
    /// run the timer) is dropped rather than sent late under a timestamp that claims continuity.
    pub(crate) fn finish(&mut self, now: Instant, out: &mut RtpOut, outbox: &mut Outbox, pt: u8) {
        if self.overdue(now) {
            self.drop_partial();
            return;
        }
        self.flush(now, out, outbox, pt);
    }

    /// The partial frame's deadline passed more than a frame ago: sending it now would be late.
    fn overdue(&self, now: Instant) -> bool {
        let frame_time = samples_duration(self.frame).max(MIN_PARTIAL_GRACE);
        self.partial_deadline.is_some_and(|d| now > d + frame_time)
    }

    fn drop_partial(&mut self) {
        if !self.fifo.is_empty() {
            self.partial_dropped += 1;
        }
        self.fifo.clear();
        self.partial_deadline = None;
    }

    /// A partial frame is padded with silence and sent now.
    fn flush(&mut self, now: Instant, out: &mut RtpOut, outbox: &mut Outbox, pt: u8) {
        if !self.fifo.is_empty() {
            let pad = (self.frame - self.fifo.len() % self.frame) % self.frame;
            self.fifo.resize(self.fifo.len() + pad, 0);
            self.drain(now, out, outbox, pt);
        }
        self.fifo.clear();
        self.partial_deadline = None;
    }

    /// Forgets the input stream (SSRC change); the next packet rebases onto our timeline.
    pub(crate) fn reset_input(&mut self) {
        self.next_in_ts = None;
        if let Some(plc) = self.plc.as_mut() {
            **plc = G711Plc::new();
        }
    }

    fn start(&mut self, now: Instant, out: &RtpOut, ext: u64) {
        let base = out.rebase_point(now, OPUS_CLOCK);
        self.offset = base as i64 - (ext * OPUS_TICKS_PER_SAMPLE) as i64;
        self.fifo.clear();
        self.fifo_ts = base;
        self.next_in_ts = Some(ext);
        self.last_in_at = Some(now);
        self.partial_deadline = None;
    }

    fn to_out(&self, ext: u64) -> u64 {
        ((ext * OPUS_TICKS_PER_SAMPLE) as i64 + self.offset).max(0) as u64
    }

    fn extend(&mut self, ts: u32) -> u64 {
        let ext = extend_ts(self.in_ts_ref, ts);
        if self.next_in_ts.is_none() || ext > self.in_ts_ref {
            self.in_ts_ref = ext;
        }
        ext
    }

    fn drain(&mut self, now: Instant, out: &mut RtpOut, outbox: &mut Outbox, pt: u8) {
        let frame = self.frame;
        let mut consumed = 0;
        while self.fifo.len() - consumed >= frame {
            let pcm = &self.fifo[consumed..consumed + frame];
            let ts = self.fifo_ts;
            let marker = out.marker_pending;
            let mut dtx = false;
            let encoder = &mut self.encoder;
            let sent = out.send(
                outbox,
                now,
                OutPacket {
                    payload_type: pt,
                    ts,
                    duration: frame as u64 * OPUS_TICKS_PER_SAMPLE,
                    marker,
                },
                |buf| match encoder.encode(pcm, buf) {
                    Ok(n) if n <= 2 => {
                        dtx = true;
                        None
                    }
                    Ok(n) => Some(n),
                    Err(_) => None,
                },
            );
            self.frames_encoded += 1;
            if sent {
                out.marker_pending = false;
            } else if dtx {
                self.dtx_frames += 1;
                // The next packet sent after DTX starts a talkspurt.
                out.marker_pending = true;
            }
            consumed += frame;
            self.fifo_ts += frame as u64 * OPUS_TICKS_PER_SAMPLE;
        }
        if consumed > 0 {
            self.fifo.copy_within(consumed.., 0);
            self.fifo.truncate(self.fifo.len() - consumed);
        }
    }
}

/// How long `samples` at 8 kHz last.
fn samples_duration(samples: usize) -> Duration {
    Duration::from_micros(samples as u64 * 125)
}

/// Extends a 32-bit RTP timestamp to the 64-bit value closest to `reference`.
pub(crate) fn extend_ts(reference: u64, ts: u32) -> u64 {
    const CYCLE: u64 = 1 << 32;
    let base = if reference < CYCLE { CYCLE } else { reference };
    let candidate = (base & !(CYCLE - 1)) | u64::from(ts);
    [candidate - CYCLE, candidate, candidate + CYCLE]
        .into_iter()
        .min_by_key(|c| c.abs_diff(base))
        .unwrap_or(candidate)
}
