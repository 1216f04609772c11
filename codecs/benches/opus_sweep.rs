//! The transcoder's Opus encoder chosen by listening quality against cost (issue 10).
//!
//! Speech (six voices) -> 8 kHz -> G.711 mu-law -> the Opus encoder fed 8 kHz, as the worker
//! feeds it -> a 48 kHz Opus decoder, as a browser or phone decodes -> scored with ITU-T P.862
//! (`pesq` crate): NB MOS-LQO at 8 kHz against the speech before G.711, WB (P.862.2) at 16 kHz
//! against the same 8 kHz reference upsampled. Cost is the encoder's microseconds per 20 ms frame
//! (best of two passes). The grid is sampled, not crossed: every application x complexity at
//! 24 kbit/s, then bitrate, bandwidth, CBR, FEC and DTX around the cheapest complexity that meets
//! the goal (mean NB >= 3.9, every voice >= 3.8).
//!
//! The decoder side follows: what decoding real client streams (48 kHz fullband Opus from
//! `EncoderConfig::webrtc_client()` and `mobile_client()`) to 8 kHz costs per frame, straight to
//! 8 kHz as the worker does against 48 kHz plus a resampler, with the PESQ of each.
//!
//! ```sh
//! taskset -c 1 cargo bench -p bridgepool-codecs --bench opus_sweep
//! ```

use std::hint::black_box;
use std::time::Instant;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::opus::{
    self, Application, Bandwidth, EncoderConfig, OpusDecoder, OpusEncoder, SampleRate,
};
use bridgepool_codecs::resample::{Resampler, ResamplerKind, resample_all};

/// 20 ms at 8 kHz and 48 kHz.
const FRAME_8K: usize = 160;
const FRAME_48K: usize = 960;
/// Seconds of each voice scored (all of the 48 kHz ones, the first ten of `speech_8k.wav`).
const MAX_SECONDS: usize = 12;
const GOAL_MEAN: f32 = 3.9;
const GOAL_MIN: f32 = 3.8;
/// A voice whose G.711 alone scores below [`GOAL_MIN`] (the ceiling of this path) may lose at
/// most this much to Opus instead.
const MAX_LOSS_BELOW_CEILING: f32 = 0.05;

struct Voice {
    name: String,
    /// The speech as the G.711 gateway had it, 8 kHz (the NB reference).
    ref8: Vec<i16>,
    /// The same upsampled to 16 kHz (the WB reference).
    ref16: Vec<i16>,
    /// After G.711 mu-law: what the transcoder receives.
    g711: Vec<i16>,
    /// The original 48 kHz speech (the client's microphone), for the decoder side.
    pcm48: Option<Vec<i16>>,
    /// PESQ NB of G.711 alone: the ceiling of the G.711 -> Opus path for this voice.
    g711_nb: f32,
    /// This voice's floor: [`GOAL_MIN`], or its ceiling less [`MAX_LOSS_BELOW_CEILING`].
    floor: f32,
}

fn read_wav(name: &str) -> (u32, Vec<i16>) {
    let path = format!("{}/../testdata/speech/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut r = hound::WavReader::open(&path).expect("speech sample");
    let hz = r.spec().sample_rate;
    let max = MAX_SECONDS * hz as usize;
    let pcm = r
        .samples::<i16>()
        .take(max)
        .map(|s| s.expect("sample"))
        .collect();
    (hz, pcm)
}

fn voices() -> Vec<Voice> {
    let names = [
        "speech_8k.wav",
        "en_male_48k.wav",
        "en_female_48k.wav",
        "de_male_48k.wav",
        "es_female_48k.wav",
        "recorded_48k.wav",
    ];
    names
        .iter()
        .map(|name| {
            let (hz, pcm) = read_wav(name);
            let (mut ref8, pcm48) = if hz == 8000 {
                (pcm, None)
            } else {
                (resample_all(&pcm, hz, 8000).expect("downsample"), Some(pcm))
            };
            ref8.truncate(ref8.len() / FRAME_8K * FRAME_8K);
            let mut codes = vec![0u8; ref8.len()];
            Law::Ulaw.encode(&ref8, &mut codes);
            let mut g711 = vec![0i16; ref8.len()];
            Law::Ulaw.decode(&codes, &mut g711);
            let g711_nb = nb(&ref8, &g711);
            Voice {
                name: name.trim_end_matches(".wav").to_owned(),
                ref16: resample_all(&ref8, 8000, 16_000).expect("upsample"),
                ref8,
                g711,
                pcm48,
                g711_nb,
                floor: GOAL_MIN.min(g711_nb - MAX_LOSS_BELOW_CEILING),
            }
        })
        .collect()
}

fn nb(reference: &[i16], degraded: &[i16]) -> f32 {
    let raw = pesq::pesq_8k(reference, degraded).expect("pesq nb");
    pesq::score::mos_lqo(f64::from(raw))
}

fn wb(reference: &[i16], degraded: &[i16]) -> f32 {
    pesq::pesq_wb(reference, degraded).expect("pesq wb")
}

/// One sweep point's result.
struct Point {
    label: String,
    config: EncoderConfig,
    nb_min: f32,
    nb_mean: f32,
    wb_min: f32,
    wb_mean: f32,
    us_per_frame: f64,
    kbps: f64,
    /// Every voice at or above its floor.
    floors_met: bool,
}

impl Point {
    fn meets_goal(&self) -> bool {
        self.nb_mean >= GOAL_MEAN && self.floors_met
    }
}

/// Encodes `pcm` (8 kHz) frame by frame; returns the packets (empty = not sent, DTX) and the
/// seconds spent encoding.
fn encode(config: &EncoderConfig, pcm: &[i16]) -> (Vec<Vec<u8>>, f64) {
    let mut enc = OpusEncoder::new(config).expect("encoder");
    let mut out = [0u8; 1500];
    let mut packets = Vec::with_capacity(pcm.len() / FRAME_8K);
    let start = Instant::now();
    for frame in pcm.chunks_exact(FRAME_8K) {
        let n = enc.encode(black_box(frame), &mut out).expect("encode");
        packets.push(if n <= 2 && config.dtx {
            Vec::new()
        } else {
            out[..n].to_vec()
        });
    }
    (packets, start.elapsed().as_secs_f64())
}

/// Decodes as a receiver does: 48 kHz, concealment where nothing was sent.
fn receive_48k(packets: &[Vec<u8>]) -> Vec<i16> {
    let mut dec = OpusDecoder::new(SampleRate::Hz48000).expect("decoder");
    let mut pcm = vec![0i16; packets.len() * FRAME_48K];
    for (p, out) in packets.iter().zip(pcm.chunks_exact_mut(FRAME_48K)) {
        if p.is_empty() {
            dec.conceal(out).expect("conceal");
        } else {
            dec.decode(p, out).expect("decode");
        }
    }
    pcm
}

fn run_point(label: String, config: EncoderConfig, voices: &[Voice]) -> Point {
    let (mut nbs, mut wbs) = (Vec::new(), Vec::new());
    let (mut secs, mut frames, mut bytes) = (0.0, 0usize, 0usize);
    for v in voices {
        let (packets, t1) = encode(&config, &v.g711);
        let (_, t2) = encode(&config, &v.g711);
        secs += t1.min(t2);
        frames += packets.len();
        bytes += packets.iter().map(Vec::len).sum::<usize>();
        let pcm48 = receive_48k(&packets);
        let deg8 = resample_all(&pcm48, 48_000, 8000).expect("to 8 kHz");
        let deg16 = resample_all(&pcm48, 48_000, 16_000).expect("to 16 kHz");
        nbs.push(nb(&v.ref8, &deg8[..v.ref8.len().min(deg8.len())]));
        wbs.push(wb(&v.ref16, &deg16[..v.ref16.len().min(deg16.len())]));
    }
    let mean = |x: &[f32]| x.iter().sum::<f32>() / x.len() as f32;
    let min = |x: &[f32]| x.iter().copied().fold(f32::INFINITY, f32::min);
    let p = Point {
        label,
        config,
        nb_min: min(&nbs),
        nb_mean: mean(&nbs),
        wb_min: min(&wbs),
        wb_mean: mean(&wbs),
        us_per_frame: secs * 1e6 / frames as f64,
        kbps: bytes as f64 * 8.0 / (frames as f64 * 0.02) / 1000.0,
        floors_met: voices.iter().zip(&nbs).all(|(v, s)| *s >= v.floor),
    };
    let per_voice: Vec<String> = voices
        .iter()
        .zip(&nbs)
        .map(|(v, s)| format!("{}={s:.2}", v.name))
        .collect();
    println!(
        "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} | {} |",
        p.label,
        p.nb_min,
        p.nb_mean,
        p.wb_min,
        p.wb_mean,
        p.us_per_frame,
        p.kbps,
        if p.meets_goal() { "yes" } else { "no" }
    );
    eprintln!("    {}", per_voice.join(" "));
    p
}

fn base(application: Application, complexity: u8) -> EncoderConfig {
    EncoderConfig {
        application,
        sample_rate: SampleRate::Hz8000,
        bitrate: 24_000,
        complexity,
        inband_fec: true,
        dtx: false,
        expected_loss_pct: 0,
        max_bandwidth: Bandwidth::Narrowband,
        cbr: false,
    }
}

fn header() {
    println!();
    println!(
        "| point | NB min | NB mean | WB min | WB mean | us/frame | kbit/s | goal |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
}

fn encoder_sweep(voices: &[Voice]) {
    // The ceiling: G.711 alone, decoded straight.
    let (mut g_nb, mut g_wb) = (Vec::new(), Vec::new());
    for v in voices {
        g_nb.push(nb(&v.ref8, &v.g711));
        let up = resample_all(&v.g711, 8000, 16_000).expect("upsample");
        g_wb.push(wb(&v.ref16, &up));
    }
    let min = |x: &[f32]| x.iter().copied().fold(f32::INFINITY, f32::min);
    let mean = |x: &[f32]| x.iter().sum::<f32>() / x.len() as f32;
    println!(
        "G.711 mu-law alone: NB min {:.3} mean {:.3}, WB min {:.3} mean {:.3}",
        min(&g_nb),
        mean(&g_nb),
        min(&g_wb),
        mean(&g_wb)
    );
    for v in voices {
        println!(
            "  {}: G.711 alone NB {:.3}, floor {:.3}",
            v.name, v.g711_nb, v.floor
        );
    }
    println!(
        "goal: NB mean >= {GOAL_MEAN}, every voice >= {GOAL_MIN} (or within {MAX_LOSS_BELOW_CEILING} of its G.711-alone score where that is lower)"
    );

    println!("\n### Application x complexity, 24 kbit/s VBR, narrowband, FEC allowed, no loss");
    header();
    let mut chosen: Option<Point> = None;
    for application in [Application::Voip, Application::Audio] {
        for complexity in 0..=10u8 {
            let p = run_point(
                format!("{application:?} c{complexity} 24k"),
                base(application, complexity),
                voices,
            );
            if p.meets_goal()
                && chosen
                    .as_ref()
                    .is_none_or(|c| p.us_per_frame < c.us_per_frame)
            {
                chosen = Some(p);
            }
        }
    }
    let Some(chosen) = chosen else {
        println!("\nno point meets the goal");
        return;
    };
    let c = chosen.config.clone();
    println!(
        "\ncheapest meeting the goal: {} ({:.1} us/frame)",
        chosen.label, chosen.us_per_frame
    );

    println!("\n### Bitrate at {:?} c{}", c.application, c.complexity);
    header();
    for kbps in [16, 20, 24, 28, 32, 40] {
        run_point(
            format!("{:?} c{} {kbps}k", c.application, c.complexity),
            EncoderConfig {
                bitrate: kbps * 1000,
                ..c.clone()
            },
            voices,
        );
    }
    // One step cheaper with more bits: does a lower complexity reach the goal at a higher rate?
    if c.complexity > 0 {
        for kbps in [32, 40] {
            run_point(
                format!("{:?} c{} {kbps}k", c.application, c.complexity - 1),
                EncoderConfig {
                    bitrate: kbps * 1000,
                    complexity: c.complexity - 1,
                    ..c.clone()
                },
                voices,
            );
        }
    }

    println!(
        "\n### Variants at {:?} c{} 24k",
        c.application, c.complexity
    );
    header();
    let variants: [(&str, EncoderConfig); 7] = [
        (
            "max bandwidth mediumband",
            EncoderConfig {
                max_bandwidth: Bandwidth::Mediumband,
                ..c.clone()
            },
        ),
        (
            "max bandwidth wideband (input is 8 kHz)",
            EncoderConfig {
                max_bandwidth: Bandwidth::Wideband,
                ..c.clone()
            },
        ),
        (
            "CBR",
            EncoderConfig {
                cbr: true,
                ..c.clone()
            },
        ),
        (
            "FEC sent (expected loss 5 %)",
            EncoderConfig {
                expected_loss_pct: 5,
                ..c.clone()
            },
        ),
        (
            "FEC sent (expected loss 15 %)",
            EncoderConfig {
                expected_loss_pct: 15,
                ..c.clone()
            },
        ),
        (
            "FEC off",
            EncoderConfig {
                inband_fec: false,
                ..c.clone()
            },
        ),
        (
            "DTX",
            EncoderConfig {
                dtx: true,
                ..c.clone()
            },
        ),
    ];
    for (label, config) in variants {
        run_point(label.to_owned(), config, voices);
    }
}

fn decoder_side(voices: &[Voice]) {
    println!("\n### Decoder side: client streams (48 kHz fullband) to 8 kHz G.711");
    println!(
        "\n| client stream | decode to 8 kHz us/frame | decode 48 kHz us/frame | + resample 48->8 (poly) us/frame | NB direct | NB 48k+sinc |\n| --- | ---: | ---: | ---: | ---: | ---: |"
    );
    for (name, client) in [
        ("webrtc_client", EncoderConfig::webrtc_client()),
        ("mobile_client", EncoderConfig::mobile_client()),
    ] {
        let (mut t8, mut t48, mut tres) = (0.0f64, 0.0f64, 0.0f64);
        let mut frames = 0usize;
        let (mut nb8, mut nb48) = (Vec::new(), Vec::new());
        for v in voices {
            let Some(pcm48) = &v.pcm48 else { continue };
            let mut enc = OpusEncoder::new(&client).expect("client encoder");
            let mut buf = [0u8; 1500];
            let packets: Vec<Vec<u8>> = pcm48
                .chunks_exact(FRAME_48K)
                .map(|f| {
                    let n = enc.encode(f, &mut buf).expect("encode");
                    buf[..n].to_vec()
                })
                .collect();
            frames += packets.len();
            // Best of two passes each.
            let mut best8 = f64::MAX;
            let mut direct = Vec::new();
            for _ in 0..2 {
                let mut dec = OpusDecoder::new(SampleRate::Hz8000).expect("decoder");
                let mut out = vec![0i16; packets.len() * FRAME_8K];
                let start = Instant::now();
                for (p, o) in packets.iter().zip(out.chunks_exact_mut(FRAME_8K)) {
                    dec.decode(black_box(p), o).expect("decode");
                }
                best8 = best8.min(start.elapsed().as_secs_f64());
                direct = out;
            }
            let (mut best48, mut best_res) = (f64::MAX, f64::MAX);
            let mut wide = Vec::new();
            for _ in 0..2 {
                let mut dec = OpusDecoder::new(SampleRate::Hz48000).expect("decoder");
                let mut out = vec![0i16; packets.len() * FRAME_48K];
                let start = Instant::now();
                for (p, o) in packets.iter().zip(out.chunks_exact_mut(FRAME_48K)) {
                    dec.decode(black_box(p), o).expect("decode");
                }
                best48 = best48.min(start.elapsed().as_secs_f64());
                let mut r = Resampler::new(48_000, 8000, FRAME_48K, ResamplerKind::Polynomial)
                    .expect("resampler");
                let mut o8 = vec![0i16; r.frame_out()];
                let start = Instant::now();
                for f in out.chunks_exact(FRAME_48K) {
                    r.process(black_box(f), &mut o8).expect("resample");
                }
                best_res = best_res.min(start.elapsed().as_secs_f64());
                wide = out;
            }
            t8 += best8;
            t48 += best48;
            tres += best_res;
            let n = v.ref8.len();
            nb8.push(nb(&v.ref8, &direct[..n.min(direct.len())]));
            let down = resample_all(&wide, 48_000, 8000).expect("downsample");
            nb48.push(nb(&v.ref8, &down[..n.min(down.len())]));
        }
        let us = |t: f64| t * 1e6 / frames as f64;
        let mean = |x: &[f32]| x.iter().sum::<f32>() / x.len() as f32;
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.3} | {:.3} |",
            us(t8),
            us(t48),
            us(tres),
            mean(&nb8),
            mean(&nb48)
        );
    }
    // What the loss path costs: FEC recovery and concealment of one 20 ms frame at 8 kHz.
    if let Some(pcm48) = voices.iter().find_map(|v| v.pcm48.as_ref()) {
        let mut enc = OpusEncoder::new(&EncoderConfig {
            expected_loss_pct: 10,
            ..EncoderConfig::mobile_client()
        })
        .expect("encoder");
        let mut buf = [0u8; 1500];
        let packets: Vec<Vec<u8>> = pcm48
            .chunks_exact(FRAME_48K)
            .map(|f| {
                let n = enc.encode(f, &mut buf).expect("encode");
                buf[..n].to_vec()
            })
            .collect();
        let fec_share = packets.iter().filter(|p| opus::packet_has_fec(p)).count() as f64
            / packets.len() as f64;
        let mut dec = OpusDecoder::new(SampleRate::Hz8000).expect("decoder");
        let mut out = [0i16; FRAME_8K];
        let start = Instant::now();
        for p in &packets {
            dec.decode_fec(black_box(p), &mut out).expect("fec");
        }
        let fec_us = start.elapsed().as_secs_f64() * 1e6 / packets.len() as f64;
        let start = Instant::now();
        for _ in &packets {
            dec.conceal(&mut out).expect("plc");
        }
        let plc_us = start.elapsed().as_secs_f64() * 1e6 / packets.len() as f64;
        println!(
            "\nmobile_client with 10 % expected loss: {:.0} % of packets carry FEC; FEC decode {fec_us:.1} us/frame, concealment {plc_us:.1} us/frame (8 kHz)",
            fec_share * 100.0
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    let start = Instant::now();
    println!("Opus backend: {}", opus::BACKEND);
    let voices = voices();
    let only_decoder = std::env::args().any(|a| a == "decoder");
    if !only_decoder {
        encoder_sweep(&voices);
    }
    decoder_side(&voices);
    println!("\n(sweep took {:.0} s)", start.elapsed().as_secs_f64());
}
