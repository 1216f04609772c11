//! G.711 against an independent encoder: sox's output for a committed signal
//! (`testdata/g711/`, commands in its README).
//!
//! sox quantises differently from ITU-T G.191: it rounds to nearest at 14 bits (mu-law) or
//! 13 bits (A-law) before companding, and its Sun-derived mu-law folds negatives with `-x`. So this
//! test checks two things: sox's bytes are exactly what a model of that pipeline gives (so we know
//! why any byte differs), and our codes decode within one quantisation step of sox's.

use std::path::PathBuf;

use bridgepool_codecs::g711::Law;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/g711")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn input() -> Vec<i16> {
    fixture("input_s16le.raw")
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// sox's reduction of a 16-bit sample to `bits` bits: round half up, clip at the top.
fn sox_round(x: i16, bits: u32) -> i32 {
    let shift = 16 - bits;
    ((i32::from(x) + (1 << (shift - 1))) >> shift).min((1 << (bits - 1)) - 1)
}

/// Index of the first segment end not below `v`, or `ends.len()`.
fn segment(v: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&end| v <= end).unwrap_or(ends.len())
}

/// The Sun `g711.c` mu-law encoder on a 14-bit sample, as sox runs it.
fn sun_ulaw(v: i32) -> u8 {
    let (magnitude, mask) = if v < 0 { (-v, 0x7F) } else { (v, 0xFF) };
    let biased = magnitude.min(8159) + 33;
    let seg = segment(
        biased,
        &[0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF],
    );
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    (((seg as i32) << 4) | ((biased >> (seg + 1)) & 0xF)) as u8 ^ mask
}

/// The Sun `g711.c` A-law encoder on a 13-bit sample, as sox runs it.
fn sun_alaw(v: i32) -> u8 {
    let (magnitude, mask) = if v >= 0 { (v, 0xD5) } else { (-v - 1, 0x55) };
    let seg = segment(
        magnitude,
        &[0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF],
    );
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let shift = if seg < 2 { 1 } else { seg };
    (((seg as i32) << 4) | ((magnitude >> shift) & 0xF)) as u8 ^ mask
}

/// Position of `value` among the law's distinct decoded values, in increasing order.
fn level(law: Law, value: i16) -> usize {
    let mut levels: Vec<i16> = (0..=u8::MAX).map(|c| law.decode_sample(c)).collect();
    levels.sort_unstable();
    levels.dedup();
    levels.binary_search(&value).expect("a decoded value")
}

fn check(law: Law, sox: &[u8], model: fn(i16) -> u8) {
    let pcm = input();
    assert_eq!(pcm.len(), 4400);
    assert_eq!(sox.len(), pcm.len());
    let mut ours = vec![0u8; pcm.len()];
    law.encode(&pcm, &mut ours);
    let mut differing = 0;
    for (i, ((&x, &theirs), &mine)) in pcm.iter().zip(sox).zip(&ours).enumerate() {
        assert_eq!(
            theirs,
            model(x),
            "{law:?} sample {i} ({x}): sox is not what its model says"
        );
        if mine != theirs {
            differing += 1;
            let a = level(law, law.decode_sample(mine));
            let b = level(law, law.decode_sample(theirs));
            assert!(
                a.abs_diff(b) <= 1,
                "{law:?} sample {i} ({x}): {mine:#04x} vs sox {theirs:#04x}"
            );
        }
    }
    // Rounding to nearest moves roughly one sample in seven across a decision level.
    assert!(
        differing < pcm.len() / 4,
        "{law:?}: {differing} samples differ"
    );
}

#[test]
fn ulaw_matches_sox_within_one_step() {
    check(Law::Ulaw, &fixture("sox_ulaw.raw"), |x| {
        sun_ulaw(sox_round(x, 14))
    });
}

#[test]
fn alaw_matches_sox_within_one_step() {
    check(Law::Alaw, &fixture("sox_alaw.raw"), |x| {
        sun_alaw(sox_round(x, 13))
    });
}

#[test]
fn prerounded_positive_input_matches_sox_exactly() {
    // Where sox's rounding changes nothing (positive multiples of 8: exact at 13 and 14 bits, and
    // the Sun and G.191 folds agree for positives), the encoders must agree byte for byte.
    let pcm = input();
    let ulaw = fixture("sox_ulaw.raw");
    let alaw = fixture("sox_alaw.raw");
    let mut checked = 0;
    for (i, &x) in pcm.iter().enumerate() {
        if x >= 0 && x % 8 == 0 {
            assert_eq!(
                Law::Ulaw.encode_sample(x),
                ulaw[i],
                "mu-law sample {i} ({x})"
            );
            assert_eq!(
                Law::Alaw.encode_sample(x),
                alaw[i],
                "A-law sample {i} ({x})"
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} samples checked");
}
