//! The load run: sets calls up through a [`Target`], plays and measures their media, follows the
//! mode's plan (fixed, ramp, churn, with a passthrough share), samples a timeline, and builds the
//! [`Report`].
//!
//! One async task drives everything except the pacer thread and the receiver thread:
//! it sets calls up and tears them down one at a time (so a slow control plane slows the ramp
//! instead of piling requests up), and samples counters every `sample_interval`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{LoadConfig, Mode};
use crate::cpu::CpuSampler;
use crate::impair::Path;
use crate::media::{EncodedMedia, MediaCodec, PTIME_MS, Track};
use crate::mos;
use crate::pacer::{OutStream, Pacer, SendLog};
use crate::quality::{self, PesqSummary, QualityJob};
use crate::receiver::{Listen, Receivers, SharedStats};
use crate::report::{CallCounts, Direction, HostLoss, RampOutcome, Report, TimelinePoint};
use crate::stats::{
    DELIVERY_BUCKET_US, LatencySummary, SendTimes, StreamExpectation, StreamStats, StreamSummary,
};
use crate::targets::{Allocation, CallHandle, CallRequest, LegMedia, Target, TargetError};

/// Frames captured per sampled stream for the quality check (60 s).
const QUALITY_FRAMES: usize = 3000;
/// Set-up errors kept verbatim in the report.
const KEPT_ERRORS: usize = 5;

/// Why a run could not happen at all (per-call failures are counted in the report instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The pacer thread could not start.
    #[error("starting the pacer: {0}")]
    Pacer(std::io::Error),
    /// The receiver thread could not start.
    #[error("starting the receiver: {0}")]
    Receiver(std::io::Error),
    /// The configuration cannot run.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Runs the load described by `config` against `target` and returns the report. `progress` is
/// updated as the run goes (pass `ProgressBar::hidden()` when nobody watches).
pub async fn run_load(
    target: &dyn Target,
    media: Arc<EncodedMedia>,
    config: &LoadConfig,
    progress: &ProgressBar,
) -> Result<Report, RunError> {
    if !(0.0..=1.0).contains(&config.passthrough_share) {
        return Err(RunError::Config(format!(
            "passthrough share {} is not in 0..=1",
            config.passthrough_share
        )));
    }
    if config.sample_interval.is_zero() {
        return Err(RunError::Config("sample interval is zero".into()));
    }
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let epoch = Instant::now();
    let pacer = Pacer::start(media.clone(), epoch).map_err(RunError::Pacer)?;
    let receivers = Receivers::start(epoch).map_err(RunError::Receiver)?;
    let mut run = Run {
        target,
        media,
        config,
        epoch,
        pacer,
        receivers,
        rng: StdRng::seed_from_u64(config.seed),
        next_id: 0,
        active: Vec::new(),
        draining: Vec::new(),
        done: Done::default(),
        counts: CallCounts::default(),
        quality_left: config.quality_calls,
        quality_step: None,
        quality_frames: QUALITY_FRAMES,
        timeline: Vec::new(),
        cpu: CpuSampler::new(&config.measure_pids),
        cpu_max: Vec::new(),
        next_sample: epoch + config.sample_interval,
        last_sent: 0,
        progress,
        started_unix_s,
    };
    let ramp = match config.mode.clone() {
        Mode::Fixed { calls, duration } => {
            progress.set_length(duration.as_secs());
            run.fixed(calls, duration).await;
            None
        }
        Mode::Churn {
            calls,
            duration,
            min_call,
            max_call,
        } => {
            progress.set_length(duration.as_secs());
            run.churn(calls, duration, min_call, max_call).await;
            None
        }
        Mode::Ramp {
            start_calls,
            step_calls,
            step_duration,
            max_calls,
        } => Some(
            run.ramp(start_calls, step_calls, step_duration, max_calls)
                .await,
        ),
    };
    run.end_all();
    run.settle().await;
    Ok(run.report(started_unix_s, ramp))
}

pub(crate) struct CallMedia {
    pub(crate) rx_a: SharedStats,
    pub(crate) rx_b: SharedStats,
    pub(crate) log_a: Arc<SendLog>,
    pub(crate) log_b: Arc<SendLog>,
    pub(crate) recv_a: MediaCodec,
    pub(crate) recv_b: MediaCodec,
    pub(crate) track_a: Track,
    pub(crate) track_b: Track,
    /// Sampled for quality, in this ramp step (if a ramp).
    pub(crate) quality: Option<Option<u64>>,
}

pub(crate) struct Call {
    pub(crate) id: u64,
    pub(crate) call_id: String,
    pub(crate) handle: CallHandle,
    pub(crate) ends_at: Option<Instant>,
    pub(crate) media: Option<CallMedia>,
}

#[derive(Default)]
pub(crate) struct Done {
    pub(crate) a_to_b: Vec<StreamSummary>,
    pub(crate) b_to_a: Vec<StreamSummary>,
    pub(crate) lat_a_to_b: Vec<u32>,
    pub(crate) lat_b_to_a: Vec<u32>,
    pub(crate) quality: Vec<QualityJob>,
    /// Delivered packets of finalized calls, by input send time.
    pub(crate) delivered: Vec<u64>,
    /// Loss by the host that held the call, when the target names it.
    pub(crate) per_host: std::collections::BTreeMap<String, HostLoss>,
}

pub(crate) struct Run<'a> {
    pub(crate) target: &'a dyn Target,
    pub(crate) media: Arc<EncodedMedia>,
    pub(crate) config: &'a LoadConfig,
    pub(crate) epoch: Instant,
    pub(crate) pacer: Pacer,
    pub(crate) receivers: Receivers,
    pub(crate) rng: StdRng,
    pub(crate) next_id: u64,
    pub(crate) active: Vec<Call>,
    pub(crate) draining: Vec<(Instant, Call)>,
    pub(crate) done: Done,
    pub(crate) counts: CallCounts,
    pub(crate) quality_left: usize,
    /// The ramp step the next sampled calls belong to.
    pub(crate) quality_step: Option<u64>,
    /// Frames captured per sampled stream.
    pub(crate) quality_frames: usize,
    pub(crate) timeline: Vec<TimelinePoint>,
    pub(crate) cpu: CpuSampler,
    pub(crate) cpu_max: Vec<f64>,
    pub(crate) next_sample: Instant,
    pub(crate) last_sent: u64,
    pub(crate) progress: &'a ProgressBar,
    pub(crate) started_unix_s: u64,
}

impl Run<'_> {
    /// Waits until `until`, sampling and draining on the way; latencies of the intervals sampled
    /// go to `latencies` when given.
    pub(crate) async fn run_until(&mut self, until: Instant, mut latencies: Option<&mut Vec<u32>>) {
        loop {
            self.housekeeping_into(latencies.as_deref_mut()).await;
            let now = Instant::now();
            if now >= until {
                return;
            }
            let next = self
                .next_sample
                .min(until)
                .min(self.draining.first().map_or(until, |d| d.0));
            tokio::time::sleep_until(next.max(now).into()).await;
        }
    }

    pub(crate) async fn housekeeping(&mut self) {
        self.housekeeping_into(None).await;
    }

    async fn housekeeping_into(&mut self, latencies: Option<&mut Vec<u32>>) {
        let now = Instant::now();
        while self.draining.first().is_some_and(|d| d.0 <= now) {
            let (_, call) = self.draining.remove(0);
            self.finalize(call).await;
        }
        if now >= self.next_sample {
            self.sample(now, latencies);
            while self.next_sample <= now {
                self.next_sample += self.config.sample_interval;
            }
        }
    }

    pub(crate) async fn start_call(&mut self, ends_at: Option<Instant>) {
        self.counts.attempted += 1;
        let id = self.next_id;
        self.next_id += 1;
        let call_id = format!("lg-{}-{}-{id}", std::process::id(), self.started_unix_s);
        // Spread evenly: exactly `share` of every run of calls, not a random draw.
        let share = self.config.passthrough_share;
        let shared = ((id + 1) as f64 * share).floor() > (id as f64 * share).floor();
        let ip = self.config.media_ip;
        let sockets = match (bind_leg(ip), bind_leg(ip)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                self.fail(format!("{call_id}: binding leg sockets: {e}"));
                return;
            }
        };
        let request = CallRequest {
            call_id: call_id.clone(),
            law: self.config.law,
            shared_codec: shared,
            leg_a: sockets.0.1,
            leg_b: sockets.1.1,
        };
        let allocation = match self.target.allocate(&request).await {
            Ok(a) => a,
            Err(TargetError::Refused { reason }) => {
                self.counts.refused += 1;
                self.keep_error(format!("{call_id}: refused: {reason}"));
                return;
            }
            Err(e) => {
                self.fail(format!("{call_id}: {e}"));
                return;
            }
        };
        let handle = allocation.handle().clone();
        let media = match allocation {
            Allocation::Passthrough { .. } if shared => {
                self.counts.passthrough += 1;
                None
            }
            Allocation::Passthrough { .. } => {
                self.fail(format!(
                    "{call_id}: a call that needs transcoding was answered passthrough"
                ));
                let _ = self.target.release(&handle).await;
                return;
            }
            Allocation::Media {
                leg_a,
                leg_b,
                transcoded,
                ..
            } => {
                match (shared, transcoded) {
                    (false, _) => self.counts.transcoded += 1,
                    (true, false) => self.counts.relayed += 1,
                    (true, true) => self.counts.passthrough_expected_but_transcoded += 1,
                }
                let quality = (transcoded && self.quality_left > 0).then_some(self.quality_step);
                if quality.is_some() {
                    self.quality_left -= 1;
                }
                match self.play(id, sockets, leg_a, leg_b, quality) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        self.fail(format!("{call_id}: sockets: {e}"));
                        let _ = self.target.release(&handle).await;
                        return;
                    }
                }
            }
        };
        self.active.push(Call {
            id,
            call_id,
            handle,
            ends_at,
            media,
        });
        let up = self.active.len() as u64;
        self.counts.peak_concurrent = self.counts.peak_concurrent.max(up);
    }

    fn play(
        &mut self,
        id: u64,
        sockets: ((UdpSocket, SocketAddr), (UdpSocket, SocketAddr)),
        leg_a: LegMedia,
        leg_b: LegMedia,
        quality: Option<Option<u64>>,
    ) -> std::io::Result<CallMedia> {
        let ((sock_a, _), (sock_b, _)) = sockets;
        let log_a = Arc::new(SendLog::new(self.epoch));
        let log_b = Arc::new(SendLog::new(self.epoch));
        let expect = |leg: &LegMedia| StreamExpectation {
            payload_type: leg.recv_payload_type,
            clock_rate: leg.recv_codec.clock_rate(),
            timestamp_step: leg.recv_codec.timestamp_step(),
        };
        let new_stats = |leg: &LegMedia| {
            let mut s = StreamStats::new(expect(leg));
            if quality.is_some() {
                s.capture_payloads(self.quality_frames);
            }
            Arc::new(Mutex::new(s))
        };
        let (rx_a, rx_b) = (new_stats(&leg_a), new_stats(&leg_b));
        let (track_a, track_b) = self.media.tracks_for_call(id);
        let (seed, imp) = (self.config.seed, &self.config.impairments);
        // Output on A is B's input transcoded, and the other way round.
        let listens = vec![
            Listen {
                socket: sock_a.try_clone()?,
                stats: rx_a.clone(),
                input: log_b.clone(),
                impair: imp.impairer(seed, id, Path::ARx),
            },
            Listen {
                socket: sock_b.try_clone()?,
                stats: rx_b.clone(),
                input: log_a.clone(),
                impair: imp.impairer(seed, id, Path::BRx),
            },
        ];
        self.receivers.add(id, listens);
        let mut stream =
            |socket: UdpSocket, leg: &LegMedia, log: &Arc<SendLog>, track: Track, path: Path| {
                OutStream {
                    socket: Arc::new(socket),
                    dest: leg.send_to,
                    codec: leg.send_codec,
                    payload_type: leg.send_payload_type,
                    ssrc: self.rng.random(),
                    first_seq: self.rng.random(),
                    first_timestamp: self.rng.random(),
                    log: log.clone(),
                    track,
                    impair: imp.impairer(seed, id, path),
                }
            };
        let streams = vec![
            stream(sock_a, &leg_a, &log_a, track_a, Path::ATx),
            stream(sock_b, &leg_b, &log_b, track_b, Path::BTx),
        ];
        self.pacer.add(id, streams);
        Ok(CallMedia {
            rx_a,
            rx_b,
            log_a,
            log_b,
            recv_a: leg_a.recv_codec,
            recv_b: leg_b.recv_codec,
            track_a,
            track_b,
            quality,
        })
    }

    pub(crate) fn end_call(&mut self, call: Call) {
        self.pacer.remove(call.id);
        let at = Instant::now() + self.config.drain;
        self.draining.push((at, call));
    }

    fn end_all(&mut self) {
        for call in std::mem::take(&mut self.active) {
            self.end_call(call);
        }
    }

    /// Waits for the draining calls and finalizes them.
    async fn settle(&mut self) {
        while let Some((at, _)) = self.draining.first() {
            let at = *at;
            self.run_until(at, None).await;
        }
        let now = Instant::now();
        self.sample(now, None);
    }

    async fn finalize(&mut self, call: Call) {
        if call.media.is_some() {
            self.receivers.remove(call.id);
        }
        if self.target.release(&call.handle).await.is_err() {
            self.counts.release_errors += 1;
        }
        let Some(m) = call.media else { return };
        let held = self.target.held_frames();
        let summarize = |rx: &SharedStats, input: &SendLog, lat: &mut Vec<u32>| {
            let s = rx.lock().map(|s| s.clone()).ok();
            s.map(|s| {
                lat.extend_from_slice(s.latencies_us());
                (s.summary(input.frames_sent(), held), s)
            })
        };
        for rx in [&m.rx_a, &m.rx_b] {
            if let Ok(s) = rx.lock() {
                add_buckets(&mut self.done.delivered, s.delivered());
            }
        }
        let ab = summarize(&m.rx_b, &m.log_a, &mut self.done.lat_a_to_b);
        let ba = summarize(&m.rx_a, &m.log_b, &mut self.done.lat_b_to_a);
        if let Some(host) = self.target.placement(&call.handle) {
            let h = self.done.per_host.entry(host.clone()).or_insert(HostLoss {
                host,
                ..HostLoss::default()
            });
            h.calls += 1;
            for (s, _) in ab.iter().chain(&ba) {
                h.expected += s.expected;
                h.lost += s.lost;
            }
        }
        // B hears what A sent (A's voice), A hears B's.
        let directions = [
            ("a_to_b", m.recv_b, ab, m.log_a.frames_sent(), m.track_a),
            ("b_to_a", m.recv_a, ba, m.log_b.frames_sent(), m.track_b),
        ];
        for (dir, codec, result, sent, track) in directions {
            let Some((summary, stats)) = result else {
                continue;
            };
            if let Some(step) = m.quality {
                self.done.quality.push(QualityJob {
                    call_id: call.call_id.clone(),
                    direction: dir,
                    codec,
                    captured: stats.captured().to_vec(),
                    frames_sent: sent,
                    voice: track.voice,
                    client: track.client,
                    step,
                });
            }
            match dir {
                "a_to_b" => self.done.a_to_b.push(summary),
                _ => self.done.b_to_a.push(summary),
            }
        }
    }

    fn sample(&mut self, now: Instant, latencies: Option<&mut Vec<u32>>) {
        let mut interval = Vec::new();
        let mut received = 0;
        let mut media_calls = 0;
        let calls = self
            .active
            .iter()
            .chain(self.draining.iter().map(|(_, c)| c));
        for m in calls.filter_map(|c| c.media.as_ref()) {
            media_calls += 1;
            for rx in [&m.rx_a, &m.rx_b] {
                if let Ok(mut s) = rx.lock() {
                    received += s.take_interval(&mut interval);
                }
            }
        }
        let total_sent = self.pacer.packets();
        let sent = total_sent - self.last_sent;
        self.last_sent = total_sent;
        if let Some(l) = latencies {
            l.extend_from_slice(&interval);
        }
        let lat = LatencySummary::from_samples(&mut interval);
        let cpu = self.cpu.sample();
        self.cpu_max.resize(cpu.len(), 0.0);
        for (m, c) in self.cpu_max.iter_mut().zip(&cpu) {
            *m = m.max(c.unwrap_or(0.0));
        }
        let loss_pct = if sent == 0 {
            0.0
        } else {
            sent.saturating_sub(received) as f64 * 100.0 / sent as f64
        };
        let point = TimelinePoint {
            t_s: now.duration_since(self.epoch).as_secs_f64(),
            calls: self.active.len() as u64,
            media_calls: media_calls as u64,
            sent,
            received,
            loss_pct,
            p50_ms: lat.p50_ms,
            p95_ms: lat.p95_ms,
            p99_ms: lat.p99_ms,
            max_ms: lat.max_ms,
            cpu_pct: cpu,
        };
        self.progress.set_position(point.t_s as u64);
        self.progress.set_message(format!(
            "{} calls  loss {:.3} %  p99 {:.2} ms",
            point.calls, point.loss_pct, point.p99_ms
        ));
        self.timeline.push(point);
    }

    /// Loss over `[from, to)` (times since the epoch): packets sent then against packets that
    /// arrived carrying input sent then. Call it a little after `to`, when those have landed.
    pub(crate) fn window_loss_pct(&self, from: Duration, to: Duration) -> f64 {
        let mut delivered = self.done.delivered.clone();
        let calls = self
            .active
            .iter()
            .chain(self.draining.iter().map(|(_, c)| c));
        for m in calls.filter_map(|c| c.media.as_ref()) {
            for rx in [&m.rx_a, &m.rx_b] {
                if let Ok(s) = rx.lock() {
                    add_buckets(&mut delivered, s.delivered());
                }
            }
        }
        loss_in(&self.pacer.sent_buckets(), &delivered, from, to)
    }

    fn fail(&mut self, error: String) {
        self.counts.failed += 1;
        self.keep_error(error);
    }

    fn keep_error(&mut self, error: String) {
        if self.counts.errors.len() < KEPT_ERRORS {
            self.counts.errors.push(error);
        }
    }

    fn report(self, started_unix_s: u64, ramp: Option<RampOutcome>) -> Report {
        let sent_buckets = self.pacer.sent_buckets();
        let Self {
            target,
            media,
            config,
            epoch,
            pacer,
            receivers,
            mut done,
            counts,
            mut timeline,
            cpu,
            cpu_max,
            ..
        } = self;
        let duration_s = epoch.elapsed().as_secs_f64();
        let pacer = pacer.finish();
        let impaired_rx = receivers.finish();
        // After the load, on every core: PESQ costs far more than the run's own work.
        let quality = quality::score_all(&media, &done.quality, config.dump_audio.as_deref());
        let mut ramp = ramp;
        if let Some(r) = ramp.as_mut() {
            apply_quality_to_ramp(r, &quality, &config.service_level);
        }
        // Every call is finalized now: recount each interval's loss by send time.
        let mut from = Duration::ZERO;
        for point in &mut timeline {
            let to = Duration::from_secs_f64(point.t_s);
            point.loss_pct = loss_in(&sent_buckets, &done.delivered, from, to);
            from = to;
        }
        let a_to_b = StreamSummary::aggregate(&done.a_to_b, &mut done.lat_a_to_b);
        let b_to_a = StreamSummary::aggregate(&done.b_to_a, &mut done.lat_b_to_a);
        let mut all_lat = std::mem::take(&mut done.lat_a_to_b);
        all_lat.append(&mut done.lat_b_to_a);
        let total = StreamSummary::aggregate(done.a_to_b.iter().chain(&done.b_to_a), &mut all_lat);
        let mos_of = |s: &StreamSummary| {
            if s.expected == 0 {
                0.0
            } else {
                mos::estimate(s.latency.mean_ms, s.jitter_ms_mean, s.loss_pct())
            }
        };
        let directions = vec![
            Direction {
                name: "a_to_b".into(),
                mos: mos_of(&a_to_b),
                summary: a_to_b,
                pesq: PesqSummary::of(&quality, "a_to_b"),
            },
            Direction {
                name: "b_to_a".into(),
                mos: mos_of(&b_to_a),
                summary: b_to_a,
                pesq: PesqSummary::of(&quality, "b_to_a"),
            },
        ];
        let cpu = cpu.summaries(&cpu_max);
        let measured_cpu = cpu
            .iter()
            .filter(|c| c.role == "measured")
            .fold(0.0, |sum, c| sum + c.mean_pct);
        let mean_media_calls = if timeline.is_empty() {
            0.0
        } else {
            timeline.iter().map(|p| p.media_calls as f64).sum::<f64>() / timeline.len() as f64
        };
        let cpu_pct_per_call = if mean_media_calls > 0.0 {
            measured_cpu / mean_media_calls
        } else {
            0.0
        };
        let sl = config.service_level;
        let service_level_held = match &ramp {
            Some(r) => r.highest_held > 0,
            None => {
                counts.refused + counts.failed <= sl.max_refusals
                    && total.loss_pct() <= sl.max_loss_pct
                    && total.latency.p99_ms <= sl.max_p99_ms
                    && counts.passthrough_expected_but_transcoded == 0
                    && directions[0].pesq.meets(sl.min_pesq_a_to_b)
                    && directions[1].pesq.meets(sl.min_pesq_b_to_a)
            }
        };
        Report {
            target: target.name().to_owned(),
            config: Some(config.clone()),
            started_unix_s,
            duration_s,
            calls: counts,
            mos: mos_of(&total),
            load: media.describe(),
            impaired_tx: pacer.impaired,
            impaired_rx,
            directions,
            total,
            per_host: done.per_host.into_values().collect(),
            quality,
            cpu,
            cpu_pct_per_call,
            timeline,
            ramp,
            pacer,
            service_level_held,
        }
    }
}

/// Frames of `duration` (what a ramp step's sampled calls capture).
pub(crate) fn frames_of(duration: Duration) -> usize {
    (duration.as_millis() / u128::from(PTIME_MS)) as usize
}

/// Puts each step's PESQ (of the calls sampled in it) into the ramp and re-judges it: a step
/// below a quality floor did not hold, and the highest density held is the last step before the
/// first one that broke (a broken step rerun with the same calls is the confirmation the ramp
/// makes; it counts only if it breaks too).
fn apply_quality_to_ramp(
    ramp: &mut RampOutcome,
    quality: &[quality::QualityResult],
    sl: &crate::config::ServiceLevel,
) {
    for (i, step) in ramp.steps.iter_mut().enumerate() {
        let of_step = quality.iter().filter(|q| q.step == Some(i as u64));
        step.pesq_a_to_b = PesqSummary::of(of_step.clone(), "a_to_b");
        step.pesq_b_to_a = PesqSummary::of(of_step, "b_to_a");
    }
    let mut highest = 0;
    let mut stop = None;
    for i in 0..ramp.steps.len() {
        let step = &mut ramp.steps[i];
        let quality_ok = step.pesq_a_to_b.meets(sl.min_pesq_a_to_b)
            && step.pesq_b_to_a.meets(sl.min_pesq_b_to_a);
        if step.held && !quality_ok {
            step.held = false;
            if stop.is_none() {
                let (a, b) = (step.pesq_a_to_b, step.pesq_b_to_a);
                stop = Some(format!(
                    "PESQ NB below the floor at {} calls (G.711->Opus min {}, floor {}; Opus->G.711 min {}, floor {})",
                    step.calls,
                    fmt_score(a.nb_min),
                    sl.min_pesq_a_to_b,
                    fmt_score(b.nb_min),
                    sl.min_pesq_b_to_a
                ));
            }
        }
        let step = &ramp.steps[i];
        if stop.is_some() {
            break;
        }
        let rerun_next = ramp.steps.get(i + 1).is_some_and(|n| n.calls == step.calls);
        if step.held {
            highest = step.calls;
        } else if !rerun_next {
            break;
        }
    }
    if let Some(reason) = stop {
        ramp.highest_held = highest;
        ramp.stopped_because = reason;
    }
}

/// A score with two decimals, or `-`.
pub fn fmt_score(score: Option<f64>) -> String {
    score.map_or_else(|| "-".to_owned(), |s| format!("{s:.2}"))
}

/// Binds one leg's socket on `ip` (`--media-ip`), non-blocking (shared by the pacer and the
/// receiver).
fn bind_leg(ip: IpAddr) -> std::io::Result<(UdpSocket, SocketAddr)> {
    let socket = UdpSocket::bind((ip, 0))?;
    socket.set_nonblocking(true)?;
    let addr = socket.local_addr()?;
    Ok((socket, addr))
}

fn add_buckets(total: &mut Vec<u64>, add: &[u32]) {
    if total.len() < add.len() {
        total.resize(add.len(), 0);
    }
    total
        .iter_mut()
        .zip(add)
        .for_each(|(t, a)| *t += u64::from(*a));
}

/// Loss in percent over the buckets covering `[from, to)`.
fn loss_in(sent: &[u64], delivered: &[u64], from: Duration, to: Duration) -> f64 {
    let bucket = |d: Duration| (d.as_micros() as u64 / DELIVERY_BUCKET_US) as usize;
    let (a, b) = (bucket(from), bucket(to));
    let sum = |v: &[u64]| v.iter().skip(a).take(b.saturating_sub(a)).sum::<u64>();
    let (sent, delivered) = (sum(sent), sum(delivered));
    if sent == 0 {
        0.0
    } else {
        sent.saturating_sub(delivered) as f64 * 100.0 / sent as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceLevel;
    use crate::quality::QualityResult;
    use crate::report::RampStep;

    fn step(calls: u64, held: bool) -> RampStep {
        RampStep {
            calls,
            held,
            ..RampStep::default()
        }
    }

    fn sample(step: u64, direction: &str, nb: f64) -> QualityResult {
        QualityResult {
            direction: direction.into(),
            step: Some(step),
            pesq_nb: Some(nb),
            ..QualityResult::default()
        }
    }

    #[test]
    fn a_step_below_the_quality_floor_ends_the_ramp_there() {
        let mut ramp = RampOutcome {
            highest_held: 30,
            stopped_because: "reached --max-calls".into(),
            steps: vec![step(10, true), step(20, true), step(30, true)],
        };
        let quality = [
            sample(0, "a_to_b", 4.0),
            sample(0, "b_to_a", 3.9),
            sample(1, "a_to_b", 3.9),
            sample(1, "b_to_a", 3.1),
            sample(2, "b_to_a", 3.9),
        ];
        apply_quality_to_ramp(&mut ramp, &quality, &ServiceLevel::default());
        assert_eq!(ramp.highest_held, 10, "{ramp:?}");
        assert!(!ramp.steps[1].held && ramp.steps[0].held);
        assert!(ramp.stopped_because.contains("PESQ"), "{ramp:?}");
        assert_eq!(ramp.steps[1].pesq_b_to_a.nb_min, Some(3.1));
        assert_eq!(ramp.steps[0].pesq_a_to_b.streams, 1);
    }

    #[test]
    fn a_ramp_whose_samples_meet_the_floor_keeps_its_outcome() {
        let mut ramp = RampOutcome {
            highest_held: 20,
            stopped_because: "loss".into(),
            steps: vec![step(10, true), step(20, true), step(30, false)],
        };
        let quality = [sample(0, "a_to_b", 4.0), sample(1, "a_to_b", 3.7)];
        apply_quality_to_ramp(&mut ramp, &quality, &ServiceLevel::default());
        assert_eq!(
            (ramp.highest_held, ramp.stopped_because.as_str()),
            (20, "loss")
        );
    }
}
