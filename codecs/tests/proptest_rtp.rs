//! Property tests for RTP: build then parse gives the same fields, parse then build gives the same
//! bytes, and sequence numbers extend correctly across wraparound and reordering.

use bridgepool_codecs::rtp::{RtpBuilder, RtpHeader, RtpPacket, SeqExtender};
use proptest::prelude::*;

fn header() -> impl Strategy<Value = RtpHeader> {
    (
        any::<bool>(),
        0u8..=127,
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(marker, payload_type, sequence_number, timestamp, ssrc)| RtpHeader {
                marker,
                payload_type,
                sequence_number,
                timestamp,
                ssrc,
            },
        )
}

fn extension() -> impl Strategy<Value = Option<(u16, Vec<u8>)>> {
    proptest::option::of((
        any::<u16>(),
        (0usize..8).prop_flat_map(|w| proptest::collection::vec(any::<u8>(), 4 * w)),
    ))
}

/// Rebuilds a parsed packet with the builder.
fn rebuild(packet: &RtpPacket<'_>) -> Vec<u8> {
    let csrcs: Vec<u32> = packet.csrcs().collect();
    let mut builder = RtpBuilder::new(packet.header())
        .csrcs(&csrcs)
        .payload(packet.payload())
        .padding(packet.padding());
    if let Some((profile, data)) = packet.extension() {
        builder = builder.extension(profile, data);
    }
    let mut out = vec![0u8; builder.len()];
    let n = builder.write(&mut out).expect("rebuild");
    assert_eq!(n, out.len());
    out
}

proptest! {
    #[test]
    fn build_then_parse_gives_the_same_fields(
        header in header(),
        csrcs in proptest::collection::vec(any::<u32>(), 0..=15),
        extension in extension(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        padding in any::<u8>(),
    ) {
        let mut builder = RtpBuilder::new(header).csrcs(&csrcs).payload(&payload).padding(padding);
        if let Some((profile, data)) = &extension {
            builder = builder.extension(*profile, data);
        }
        let mut out = vec![0u8; builder.len() + 5];
        let n = builder.write(&mut out).unwrap();
        prop_assert_eq!(n, builder.len());
        let packet = RtpPacket::parse(&out[..n]).unwrap();
        prop_assert_eq!(packet.header(), header);
        prop_assert_eq!(packet.csrcs().collect::<Vec<_>>(), csrcs);
        prop_assert_eq!(packet.extension(), extension.as_ref().map(|(p, d)| (*p, &d[..])));
        prop_assert_eq!(packet.payload(), &payload[..]);
        prop_assert_eq!(packet.padding(), padding);
        prop_assert_eq!(rebuild(&packet), &out[..n]);
    }

    #[test]
    fn header_write_then_parse(header in header()) {
        let mut out = [0u8; 12];
        prop_assert_eq!(header.write(&mut out), Ok(12));
        prop_assert_eq!(RtpPacket::parse(&out).unwrap().header(), header);
    }

    #[test]
    fn parse_then_build_gives_the_same_bytes(
        mut bytes in proptest::collection::vec(any::<u8>(), 12..200),
        extension_words in 0u16..4,
    ) {
        // Version 2 and a small extension length, so most inputs get past the header.
        bytes[0] = 0x80 | (bytes[0] & 0x3F);
        let csrc_end = 12 + 4 * usize::from(bytes[0] & 0x0F);
        if bytes[0] & 0x10 != 0 && bytes.len() >= csrc_end + 4 {
            bytes[csrc_end + 2..csrc_end + 4].copy_from_slice(&extension_words.to_be_bytes());
        }
        if let Ok(packet) = RtpPacket::parse(&bytes) {
            let mut expected = bytes.clone();
            // Padding content is not kept: the builder writes zeros before the count.
            let padding_start = bytes.len() - usize::from(packet.padding());
            expected[padding_start..bytes.len().saturating_sub(1).max(padding_start)].fill(0);
            prop_assert_eq!(rebuild(&packet), expected);
        }
    }

    #[test]
    fn sequence_numbers_extend_across_wraparound(
        start in any::<u64>().prop_map(|s| (1 << 16) + s % (1 << 40)),
        steps in proptest::collection::vec(1u64..3000, 1..200),
        swaps in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        // True extended numbers, increasing, then locally reordered.
        let mut truth = vec![start];
        for step in steps {
            truth.push(truth.last().unwrap() + step);
        }
        for swap in swaps {
            let i = swap.index(truth.len() - 1);
            truth.swap(i, i + 1);
        }
        let mut extender = SeqExtender::new();
        let offset = extender.extend(truth[0] as u16).get() as i128 - truth[0] as i128;
        for &value in &truth[1..] {
            let extended = extender.extend(value as u16).get();
            prop_assert_eq!(extended as i128 - offset, value as i128);
        }
        prop_assert_eq!(extender.highest().unwrap().get() as i128 - offset, *truth.iter().max().unwrap() as i128);
    }
}
