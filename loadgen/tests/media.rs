//! The client-like load: the mix, voice rotation, and DTX leaving frames out without holes in the
//! sequence numbers.

use std::path::PathBuf;

use bridgepool_loadgen::media::client::{ClientMix, ClientProfile, OpusTrack};
use bridgepool_loadgen::media::{EncodedMedia, MediaCodec};

fn voice(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/speech")
        .join(name)
}

#[test]
fn the_mix_is_exact_over_every_run_of_calls() {
    let mix = ClientMix::default();
    let webrtc = (0..100)
        .filter(|&id| mix.profile_of(id) == ClientProfile::Webrtc)
        .count();
    assert_eq!(webrtc, 70);
    let first_ten = (0..10)
        .filter(|&id| mix.profile_of(id) == ClientProfile::Webrtc)
        .count();
    assert_eq!(first_ten, 7);
}

#[test]
fn voices_rotate_and_legs_play_different_voices() {
    let paths = [voice("en_male_48k.wav"), voice("es_female_48k.wav")];
    let media = EncodedMedia::client_load(&paths, ClientMix::default()).unwrap();
    let (a0, b0) = media.tracks_for_call(0);
    let (a1, b1) = media.tracks_for_call(1);
    assert_eq!((a0.voice, b0.voice, a1.voice, b1.voice), (1, 0, 0, 1));
    assert_eq!(media.voice_names(), ["en_male_48k", "es_female_48k"]);
    // Fullband clients: their packets are bigger than narrowband SILK's and all decode.
    let (p, seq) = media.packet(b1, MediaCodec::Opus, 3).unwrap();
    assert_eq!(seq, 3);
    assert!(p.len() > 10);
    assert!(media.describe().contains("70 % WebRTC"));
}

#[test]
fn dtx_leaves_silence_out_and_numbers_only_what_is_sent() {
    let t = OpusTrack::from_packets(
        ClientProfile::Webrtc,
        vec![vec![1], Vec::new(), Vec::new(), vec![4]],
    );
    assert_eq!(t.packet(0), Some((&[1u8][..], 0)));
    assert_eq!(t.packet(1), None);
    assert_eq!(t.packet(3), Some((&[4u8][..], 1)));
    // The next pass goes on numbering.
    assert_eq!(t.packet(4), Some((&[1u8][..], 2)));
    assert_eq!(t.packet(7), Some((&[4u8][..], 3)));
    // A real voice with pauses: DTX leaves frames out, without it none.
    let mix = |dtx| ClientMix {
        webrtc_share: 1.0,
        dtx,
        expected_loss_pct: None,
    };
    let on = EncodedMedia::client_load(&[voice("en_male_48k.wav")], mix(true)).unwrap();
    let off = EncodedMedia::client_load(&[voice("en_male_48k.wav")], mix(false)).unwrap();
    let track = on.tracks_for_call(0).1;
    assert!(on.silent_frames(track) > 10, "{}", on.silent_frames(track));
    assert_eq!(off.silent_frames(track), 0);
}

#[test]
fn clients_told_of_loss_send_fec_for_it() {
    let share = |expected_loss_pct| {
        let mix = ClientMix {
            webrtc_share: 1.0,
            dtx: false,
            expected_loss_pct,
        };
        let media = EncodedMedia::client_load(&[voice("en_female_48k.wav")], mix).unwrap();
        let track = media.tracks_for_call(0).1;
        let frames = 250;
        let with_fec = (0..frames)
            .filter_map(|f| media.packet(track, MediaCodec::Opus, f))
            .filter(|(p, _)| bridgepool_codecs::opus::packet_has_fec(p))
            .count();
        with_fec as f64 / frames as f64
    };
    // A WebRTC client on a clean path (expects no loss) sends little FEC; told of 10 % it does.
    let (clean, lossy) = (share(None), share(Some(10)));
    assert!(
        lossy > 0.5 && lossy > 2.0 * clean,
        "FEC in {:.0} % of packets told of 10 % loss, {:.0} % on a clean path",
        lossy * 100.0,
        clean * 100.0
    );
}

#[test]
fn client_loss_flag_reaches_the_mix_and_is_bounded() {
    use bridgepool_loadgen::cli::{Cli, Command};
    use clap::Parser;
    let mix_of = |args: &[&str]| {
        let argv = ["bridgepool-loadgen", "fixed"].iter().chain(args);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Fixed { common, .. }) => Ok(common.client_mix()),
            Ok(other) => panic!("parsed as {other:?}"),
            Err(e) => Err(e.kind()),
        }
    };
    assert_eq!(
        mix_of(&["--client-loss", "5"]).unwrap().expected_loss_pct,
        Some(5)
    );
    assert_eq!(mix_of(&[]).unwrap().expected_loss_pct, None);
    assert_eq!(
        mix_of(&["--client-loss", "101"]).unwrap_err(),
        clap::error::ErrorKind::ValueValidation
    );
}

#[test]
fn bad_voice_files_are_errors_not_panics() {
    assert!(EncodedMedia::client_load(&[voice("missing.wav")], ClientMix::default()).is_err());
    assert!(EncodedMedia::client_load(&[], ClientMix::default()).is_err());
    // The legacy load takes 8 kHz speech only.
    assert!(EncodedMedia::legacy(&voice("en_male_48k.wav")).is_err());
    assert!(EncodedMedia::legacy(&voice("speech_8k.wav")).is_ok());
}
