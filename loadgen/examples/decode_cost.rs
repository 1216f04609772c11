//! What the worker's Opus -> G.711 side pays per frame for each kind of client stream: the
//! loadgen's voices encoded by each client profile (as the loadgen sends them), decoded to 8 kHz
//! as the worker's session decodes them, timed per frame (best of five passes). libopus is built
//! with optimisation even in dev builds, so a debug build of this example times it fairly.
//!
//!     taskset -c 1 cargo run -p bridgepool-loadgen --example decode_cost

use std::path::PathBuf;
use std::time::Instant;

use bridgepool_codecs::opus::{OpusDecoder, OpusEncoder, SampleRate};
use bridgepool_loadgen::media::client::{ClientMix, ClientProfile};
use bridgepool_loadgen::media::{EncodedMedia, MediaCodec, Track};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/speech");
    let names = [
        "en_male_48k",
        "en_female_48k",
        "de_male_48k",
        "es_female_48k",
        "recorded_48k",
    ];
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(format!("{n}.wav"))).collect();
    let client = EncodedMedia::client_load(&paths, ClientMix::default())?;
    let legacy = EncodedMedia::legacy(&dir.join("speech_8k.wav"))?;
    println!("decode to 8 kHz, us per 20 ms frame (best of 5 passes), mean payload bytes");
    let mut rows = Vec::new();
    for (label, media, voices, profile) in [
        (
            "webrtc (48 kHz, 32k, c9)",
            &client,
            names.len(),
            ClientProfile::Webrtc,
        ),
        (
            "mobile (48 kHz, 24k, c5)",
            &client,
            names.len(),
            ClientProfile::Mobile,
        ),
        (
            "nb-legacy (8 kHz SILK, 24k)",
            &legacy,
            1,
            ClientProfile::Narrowband,
        ),
    ] {
        let (mut frames, mut best_ns, mut bytes) = (0usize, 0f64, 0usize);
        for voice in 0..voices {
            let track = Track {
                voice,
                client: profile,
            };
            let n = media.voice_frames(voice) as u64;
            let packets: Vec<&[u8]> = (0..n)
                .filter_map(|f| media.packet(track, MediaCodec::Opus, f).map(|(p, _)| p))
                .collect();
            let mut best = f64::MAX;
            for _ in 0..5 {
                let mut dec = OpusDecoder::new(SampleRate::Hz8000)?;
                let mut out = [0i16; 960];
                let t = Instant::now();
                for p in &packets {
                    dec.decode(p, &mut out)?;
                }
                best = best.min(t.elapsed().as_nanos() as f64);
            }
            frames += packets.len();
            best_ns += best;
            bytes += packets.iter().map(|p| p.len()).sum::<usize>();
        }
        rows.push((
            label,
            best_ns / frames as f64 / 1000.0,
            bytes / frames.max(1),
        ));
    }
    for (label, us, bytes) in &rows {
        println!("  {label:<28} {us:>6.1} us  {bytes:>4} B");
    }
    // The other direction's input does not change with the client: G.711 in, encoded by the
    // worker. Shown for scale: one 8 kHz SILK encode at the worker's default settings.
    let mut enc = OpusEncoder::new(&Default::default())?;
    let pcm = legacy.reference(500);
    let mut buf = [0u8; 1500];
    let t = Instant::now();
    for f in pcm.chunks_exact(160) {
        enc.encode(f, &mut buf)?;
    }
    println!(
        "  (for scale: an 8 kHz VoIP encode, 24k c5: {:.1} us per frame)",
        t.elapsed().as_nanos() as f64 / 500.0 / 1000.0
    );
    Ok(())
}
