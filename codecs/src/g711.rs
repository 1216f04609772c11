//! ITU-T G.711 mu-law (PCMU) and A-law (PCMA), table-driven.
//!
//! Every conversion is one lookup in a table computed at compile time by a `const fn`: no runtime
//! initialisation, no branches per sample beyond the law.
//!
//! Linear samples are 16-bit. The quantisation follows the ITU-T G.191 reference implementation
//! (`g711.c`): mu-law looks at the top 14 bits of the sample, A-law at the top 12 (in the 13-bit
//! A-law scale, the 13th bit never changes the code), and negative samples are folded with the
//! one's complement (`!x`, not `-x`), which makes both laws exactly symmetric: `x` and `!x` give
//! codes that differ only in the sign bit. Some widely used encoders (the Sun Microsystems `g711.c`
//! used by sox) fold negatives with `-x` instead and so can land one step away for some negative
//! samples; see `testdata/g711/README.md`.
//!
//! Decoding gives the midpoint of each quantisation interval, in 16-bit scale: mu-law spans
//! `-32124..=32124`, A-law `-32256..=32256`.
//!
//! mu-law has one non-bijective code: 0x7F ("negative zero") decodes to 0, like 0xFF, and 0 encodes
//! to 0xFF. Every other mu-law code, and every A-law code, survives decode then encode unchanged.

/// Code for a zero sample in mu-law (0xFF; 0x7F also decodes to zero).
pub const ULAW_SILENCE: u8 = 0xFF;
/// Code for the smallest positive sample in A-law (0xD5); A-law has no zero code.
pub const ALAW_SILENCE: u8 = 0xD5;

/// mu-law code for a sample, indexed by the sample's top 14 bits (`(sample >> 2) & 0x3FFF`).
static ULAW_ENCODE: [u8; 1 << 14] = ulaw_encode_table();
/// A-law code for a sample, indexed by the sample's top 12 bits (`(sample >> 4) & 0x0FFF`).
static ALAW_ENCODE: [u8; 1 << 12] = alaw_encode_table();
/// Linear value of each mu-law code.
static ULAW_DECODE: [i16; 256] = ulaw_decode_table();
/// Linear value of each A-law code.
static ALAW_DECODE: [i16; 256] = alaw_decode_table();

/// Encodes one 16-bit linear sample to mu-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    ULAW_ENCODE[((sample >> 2) as u16 & 0x3FFF) as usize]
}

/// Decodes one mu-law code to a 16-bit linear sample.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// Encodes one 16-bit linear sample to A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    ALAW_ENCODE[((sample >> 4) as u16 & 0x0FFF) as usize]
}

/// Decodes one A-law code to a 16-bit linear sample.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// One of the two G.711 companding laws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// mu-law, RTP payload type 0 (PCMU): North America and Japan.
    Ulaw,
    /// A-law, RTP payload type 8 (PCMA): the rest of the world.
    Alaw,
}

impl Law {
    /// Encodes `pcm` into `out[..pcm.len()]`.
    ///
    /// The caller sizes `out` with `out.len() >= pcm.len()`; if it is shorter, only
    /// `out.len()` samples are encoded (never a panic).
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) {
        let pairs = out.iter_mut().zip(pcm);
        match self {
            Self::Ulaw => pairs.for_each(|(o, &s)| *o = ulaw_encode(s)),
            Self::Alaw => pairs.for_each(|(o, &s)| *o = alaw_encode(s)),
        }
    }

    /// Decodes `payload` into `out[..payload.len()]`.
    ///
    /// The caller sizes `out` with `out.len() >= payload.len()`; since payload lengths come from
    /// the network, a shorter `out` decodes only `out.len()` samples instead of panicking.
    pub fn decode(self, payload: &[u8], out: &mut [i16]) {
        let pairs = out.iter_mut().zip(payload);
        match self {
            Self::Ulaw => pairs.for_each(|(o, &c)| *o = ulaw_decode(c)),
            Self::Alaw => pairs.for_each(|(o, &c)| *o = alaw_decode(c)),
        }
    }

    /// Encodes one sample.
    #[inline]
    pub fn encode_sample(self, sample: i16) -> u8 {
        match self {
            Self::Ulaw => ulaw_encode(sample),
            Self::Alaw => alaw_encode(sample),
        }
    }

    /// Decodes one code.
    #[inline]
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            Self::Ulaw => ulaw_decode(code),
            Self::Alaw => alaw_decode(code),
        }
    }

    /// The code for silence: 0xFF for mu-law, 0xD5 for A-law.
    pub const fn silence(self) -> u8 {
        match self {
            Self::Ulaw => ULAW_SILENCE,
            Self::Alaw => ALAW_SILENCE,
        }
    }

    /// The static RTP payload type (RFC 3551): 0 for PCMU, 8 for PCMA.
    pub const fn payload_type(self) -> u8 {
        match self {
            Self::Ulaw => 0,
            Self::Alaw => 8,
        }
    }

    /// The law of a static RTP payload type, if it is 0 (PCMU) or 8 (PCMA).
    pub const fn from_payload_type(payload_type: u8) -> Option<Self> {
        match payload_type {
            0 => Some(Self::Ulaw),
            8 => Some(Self::Alaw),
            _ => None,
        }
    }
}

/// Number of significant bits in `x` (0 for 0).
const fn bit_len(x: u32) -> u32 {
    u32::BITS - x.leading_zeros()
}

const fn ulaw_encode_table() -> [u8; 1 << 14] {
    let mut table = [0u8; 1 << 14];
    let mut i = 0;
    while i < table.len() {
        // Sign-extend the 14-bit index back to the sample's top 14 bits.
        let v = ((i << 2) as u16 as i16 >> 2) as i32;
        let (magnitude, sign_mask) = if v < 0 { (!v, 0x7F) } else { (v, 0xFF) };
        // Bias by 33 (132 in 16-bit scale) so segment boundaries fall on powers of two; clip.
        let biased = if magnitude + 33 > 0x1FFF {
            0x1FFF
        } else {
            magnitude + 33
        };
        // biased is in 33..=0x1FFF: 6 to 13 significant bits, segments 0 to 7.
        let segment = bit_len(biased as u32) - 6;
        let mantissa = (biased >> (segment + 1)) & 0x0F;
        table[i] = ((segment << 4) as u8 | mantissa as u8) ^ sign_mask;
        i += 1;
    }
    table
}

const fn alaw_encode_table() -> [u8; 1 << 12] {
    let mut table = [0u8; 1 << 12];
    let mut i = 0;
    while i < table.len() {
        let v = ((i << 4) as u16 as i16 >> 4) as i32;
        let (magnitude, sign_bit) = if v < 0 { (!v, 0x00) } else { (v, 0x80) };
        // magnitude is in 0..=2047; segment 0 is linear, segment s >= 1 spans 16 << (s - 1)..
        let (segment, mantissa) = if magnitude < 16 {
            (0, magnitude)
        } else {
            let segment = bit_len(magnitude as u32) - 4;
            (segment, (magnitude >> (segment - 1)) & 0x0F)
        };
        table[i] = ((segment << 4) as u8 | mantissa as u8 | sign_bit) ^ 0x55;
        i += 1;
    }
    table
}

const fn ulaw_decode_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        let u = !code & 0xFF;
        let exponent = (u >> 4) & 0x07;
        let mantissa = u & 0x0F;
        let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
        table[code] = if u & 0x80 != 0 {
            -(magnitude as i16)
        } else {
            magnitude as i16
        };
        code += 1;
    }
    table
}

const fn alaw_decode_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        let a = code ^ 0x55;
        let exponent = (a >> 4) & 0x07;
        let mantissa = a & 0x0F;
        let magnitude = if exponent == 0 {
            (mantissa << 4) + 8
        } else {
            ((mantissa << 4) + 0x108) << (exponent - 1)
        };
        table[code] = if a & 0x80 != 0 {
            magnitude as i16
        } else {
            -(magnitude as i16)
        };
        code += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes() {
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn silence_is_zero_or_smallest() {
        assert_eq!(ulaw_encode(0), Law::Ulaw.silence());
        assert_eq!(alaw_encode(0), Law::Alaw.silence());
        assert_eq!(ulaw_decode(Law::Ulaw.silence()), 0);
        assert_eq!(alaw_decode(Law::Alaw.silence()), 8);
    }

    #[test]
    fn short_output_truncates() {
        let mut out = [0u8; 2];
        Law::Ulaw.encode(&[0, 0, 0], &mut out);
        assert_eq!(out, [0xFF, 0xFF]);
        let mut pcm = [1i16; 1];
        Law::Alaw.decode(&[0xD5, 0xD5], &mut pcm);
        assert_eq!(pcm, [8]);
    }
}
