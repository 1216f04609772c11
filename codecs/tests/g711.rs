//! Exhaustive G.711 tests: all 256 codes and all 65,536 linear inputs of both laws, against a
//! straightforward implementation of the ITU-T G.191 reference algorithm (`g711.c`) written here
//! independently of the crate's tables.

use bridgepool_codecs::g711::{Law, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};

/// G.191 `ulaw_compress` for one sample: bias, segment search by shifting, nibble inversion.
fn reference_ulaw_compress(x: i16) -> u8 {
    let x = i32::from(x);
    // One's complement for negatives, then 14-bit magnitude plus the bias 33.
    let mut absno = if x < 0 {
        ((!x) >> 2) + 33
    } else {
        (x >> 2) + 33
    };
    if absno > 0x1FFF {
        absno = 0x1FFF;
    }
    let mut i = absno >> 6;
    let mut segno = 1;
    while i != 0 {
        segno += 1;
        i >>= 1;
    }
    let high_nibble = 0x8 - segno;
    let low_nibble = 0xF - ((absno >> segno) & 0xF);
    let mut code = (high_nibble << 4) | low_nibble;
    if x >= 0 {
        code |= 0x80;
    }
    code as u8
}

/// G.191 `alaw_compress` for one sample: 12-bit magnitude, mantissa normalised by shifting.
fn reference_alaw_compress(x: i16) -> u8 {
    let x = i32::from(x);
    let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
    if ix > 15 {
        let mut iexp = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            iexp += 1;
        }
        ix -= 16;
        ix += iexp << 4;
    }
    if x >= 0 {
        ix |= 0x80;
    }
    (ix ^ 0x55) as u8
}

/// G.191 `ulaw_expand`: the midpoint of the code's interval, 16-bit scale.
fn reference_ulaw_expand(code: u8) -> i16 {
    let sign = if code < 0x80 { -1 } else { 1 };
    let inverted = i32::from(!code);
    let exponent = (inverted >> 4) & 0x7;
    let segment = exponent + 1;
    let mantissa = inverted & 0xF;
    let step = 4 << segment;
    (sign * ((0x80 << exponent) + step * mantissa + step / 2 - 4 * 33)) as i16
}

/// G.191 `alaw_expand`.
fn reference_alaw_expand(code: u8) -> i16 {
    let ix = i32::from(code ^ 0x55) & 0x7F;
    let exponent = ix >> 4;
    let mut mantissa = ix & 0xF;
    if exponent > 0 {
        mantissa += 16;
    }
    mantissa = (mantissa << 4) + 8;
    if exponent > 1 {
        mantissa <<= exponent - 1;
    }
    (if code > 127 { mantissa } else { -mantissa }) as i16
}

#[test]
fn every_ulaw_code_decodes_like_the_reference() {
    for code in 0..=u8::MAX {
        assert_eq!(
            ulaw_decode(code),
            reference_ulaw_expand(code),
            "code {code:#04x}"
        );
    }
}

#[test]
fn every_alaw_code_decodes_like_the_reference() {
    for code in 0..=u8::MAX {
        assert_eq!(
            alaw_decode(code),
            reference_alaw_expand(code),
            "code {code:#04x}"
        );
    }
}

#[test]
fn decoded_values_from_the_g711_tables() {
    // Spot values of G.711 tables 1 and 2 (decoder outputs), scaled to 16 bits: mu-law x4, A-law x8
    // over the standard's 14-bit (mu) and 13-bit (A) values.
    for (code, value) in [
        (0xFF, 0),
        (0xFE, 8),
        (0xF0, 120),
        (0xEF, 132),
        (0x80, 32124),
        (0x00, -32124),
    ] {
        assert_eq!(ulaw_decode(code), value, "mu-law {code:#04x}");
    }
    for (code, value) in [
        (0xD5, 8),
        (0xD4, 24),
        (0xC5, 264),
        (0xAA, 32256),
        (0x55, -8),
        (0x2A, -32256),
    ] {
        assert_eq!(alaw_decode(code), value, "A-law {code:#04x}");
    }
}

#[test]
fn every_ulaw_code_reencodes_to_itself_except_negative_zero() {
    for code in 0..=u8::MAX {
        let again = ulaw_encode(ulaw_decode(code));
        if code == 0x7F {
            // The one non-bijective code: "negative zero" decodes to 0, and 0 encodes as 0xFF.
            assert_eq!(ulaw_decode(0x7F), 0);
            assert_eq!(again, 0xFF);
        } else {
            assert_eq!(again, code, "code {code:#04x}");
        }
    }
}

#[test]
fn every_alaw_code_reencodes_to_itself() {
    for code in 0..=u8::MAX {
        assert_eq!(alaw_encode(alaw_decode(code)), code, "code {code:#04x}");
    }
}

#[test]
fn all_linear_inputs_encode_like_the_reference() {
    for x in i16::MIN..=i16::MAX {
        assert_eq!(ulaw_encode(x), reference_ulaw_compress(x), "mu-law of {x}");
        assert_eq!(alaw_encode(x), reference_alaw_compress(x), "A-law of {x}");
    }
}

#[test]
fn both_laws_are_symmetric_under_ones_complement() {
    for x in i16::MIN..=i16::MAX {
        assert_eq!(ulaw_encode(!x), ulaw_encode(x) ^ 0x80, "mu-law of {x}");
        assert_eq!(alaw_encode(!x), alaw_encode(x) ^ 0x80, "A-law of {x}");
    }
}

#[test]
fn encoding_is_monotonic_and_lands_in_the_right_interval() {
    for law in [Law::Ulaw, Law::Alaw] {
        let mut previous = i16::MIN;
        for x in i16::MIN..=i16::MAX {
            let decoded = law.decode_sample(law.encode_sample(x));
            assert!(decoded >= previous, "{law:?}: {x} decodes below {}", x - 1);
            previous = decoded;
            // Largest interval: mu-law 1024, A-law 1024 (16-bit scale); the midpoint is within half.
            let error = (i32::from(decoded) - i32::from(x)).abs();
            let limit = if x.unsigned_abs() > 32_000 { 1024 } else { 512 };
            assert!(error <= limit, "{law:?}: {x} decodes to {decoded}");
        }
    }
}

#[test]
fn slice_api_matches_scalar_functions() {
    let pcm: Vec<i16> = (i16::MIN..=i16::MAX).step_by(7).collect();
    for law in [Law::Ulaw, Law::Alaw] {
        let mut codes = vec![0u8; pcm.len()];
        law.encode(&pcm, &mut codes);
        let mut decoded = vec![0i16; pcm.len()];
        law.decode(&codes, &mut decoded);
        for ((&x, &code), &y) in pcm.iter().zip(&codes).zip(&decoded) {
            assert_eq!(code, law.encode_sample(x));
            assert_eq!(y, law.decode_sample(code));
        }
    }
}

#[test]
fn silence_and_payload_types() {
    assert_eq!(Law::Ulaw.silence(), 0xFF);
    assert_eq!(Law::Alaw.silence(), 0xD5);
    for law in [Law::Ulaw, Law::Alaw] {
        assert_eq!(Law::from_payload_type(law.payload_type()), Some(law));
    }
    assert_eq!(Law::from_payload_type(9), None);
}
