//! Malformed input never panics: every truncation and many bit flips of every golden vector, and
//! random bytes, go through every parser and every accessor of what parses.

#[path = "rtp_vectors.rs"]
mod vectors;

use bridgepool_codecs::g711::Law;
use bridgepool_codecs::rtcp::{App, RtcpError, RtcpPacket, compound, compound_raw};
use bridgepool_codecs::rtp::{RtpError, RtpPacket, is_rtcp};
use bridgepool_codecs::telephone_event::TelephoneEvent;
use proptest::prelude::*;

use vectors::{EVENT_DIGIT_1, EVENT_HASH_END, RTCP_ALL, RTP_FULL, rtp_pcmu};

/// Parses as RTP and reads every field; returns the parse result.
fn exercise_rtp(bytes: &[u8]) -> Result<usize, RtpError> {
    let _ = is_rtcp(bytes);
    let packet = RtpPacket::parse(bytes)?;
    let mut touched = packet.csrcs().count() + packet.payload().len() + packet.header_len();
    if let Some((_, data)) = packet.extension() {
        touched += data.len();
    }
    let _ = (packet.header(), packet.padding(), packet.as_bytes());
    Ok(touched)
}

/// Walks a compound, reading every field of every view; returns each packet's result.
fn exercise_rtcp(bytes: &[u8]) -> Vec<Result<(), RtcpError>> {
    for raw in compound_raw(bytes).flatten() {
        let _ = App::parse(&raw);
    }
    compound(bytes)
        .map(|packet| {
            match packet? {
                RtcpPacket::SenderReport(sr) => {
                    let _ = (sr.ssrc(), sr.sender_info(), sr.extension());
                    assert_eq!(sr.report_blocks().count(), sr.report_count());
                }
                RtcpPacket::ReceiverReport(rr) => {
                    let _ = (rr.ssrc(), rr.extension());
                    assert_eq!(rr.report_blocks().count(), rr.report_count());
                }
                RtcpPacket::Sdes(sdes) => {
                    let mut chunks = 0;
                    for (_, items) in sdes.chunks() {
                        chunks += 1;
                        let _ = items.count();
                    }
                    assert_eq!(chunks, sdes.chunk_count());
                }
                RtcpPacket::Bye(bye) => {
                    let _ = (bye.ssrcs().count(), bye.reason());
                }
                RtcpPacket::Other { .. } => {}
            }
            Ok(())
        })
        .collect()
}

/// Packet boundaries of a valid compound.
fn boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut ends = vec![0];
    for raw in compound_raw(bytes) {
        at += raw.unwrap().as_bytes().len();
        ends.push(at);
    }
    ends
}

#[test]
fn every_truncation_of_the_rtp_vectors() {
    for golden in [RTP_FULL.to_vec(), rtp_pcmu()] {
        let header_len = RtpPacket::parse(&golden).unwrap().header_len();
        for len in 0..golden.len() {
            let result = exercise_rtp(&golden[..len]);
            if len < header_len {
                assert!(result.is_err(), "truncated to {len}: {result:?}");
            }
        }
    }
}

#[test]
fn every_truncation_of_the_rtcp_vectors() {
    for golden in RTCP_ALL {
        let ends = boundaries(golden);
        for len in 0..golden.len() {
            let results = exercise_rtcp(&golden[..len]);
            let errors = results.iter().filter(|r| r.is_err()).count();
            if ends.contains(&len) {
                assert_eq!(errors, 0, "cut at a packet boundary {len}");
            } else {
                assert_eq!(errors, 1, "truncated to {len}: {results:?}");
                assert!(results.last().unwrap().is_err(), "the error ends iteration");
            }
        }
    }
}

#[test]
fn every_truncation_of_the_telephone_events() {
    for golden in [EVENT_DIGIT_1, EVENT_HASH_END] {
        for len in 0..golden.len() {
            assert!(TelephoneEvent::parse(&golden[..len]).is_err());
        }
    }
}

#[test]
fn bit_flips_of_every_byte() {
    let mut goldens = vec![RTP_FULL.to_vec(), rtp_pcmu()];
    goldens.extend(RTCP_ALL.iter().map(|v| v.to_vec()));
    for golden in goldens {
        for i in 0..golden.len() {
            for mask in [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF] {
                let mut bytes = golden.clone();
                bytes[i] ^= mask;
                let _ = exercise_rtp(&bytes);
                let _ = exercise_rtcp(&bytes);
                let _ = TelephoneEvent::parse(&bytes);
            }
        }
    }
}

#[test]
fn g711_decode_into_a_short_buffer() {
    let mut out = [0i16; 8];
    Law::Ulaw.decode(&[0u8; 160], &mut out);
    Law::Alaw.decode(&[], &mut out);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_to_every_parser(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = exercise_rtp(&bytes);
        let _ = exercise_rtcp(&bytes);
        let _ = TelephoneEvent::parse(&bytes);
    }

    #[test]
    fn random_version_2_rtp(mut bytes in proptest::collection::vec(any::<u8>(), 1..400)) {
        bytes[0] = 0x80 | (bytes[0] & 0x3F);
        let _ = exercise_rtp(&bytes);
    }

    #[test]
    fn random_rtcp_with_consistent_lengths(
        packets in proptest::collection::vec(
            (0u8..64, 198u8..=206, proptest::collection::vec(any::<u8>(), 0..30)),
            1..5,
        ),
    ) {
        // Valid common headers around random bodies, so the body validation is what is tested.
        let mut bytes = Vec::new();
        for (flags, packet_type, words) in packets {
            let body: Vec<u8> = words.iter().flat_map(|&w| [w, w >> 1, w >> 2, w >> 3]).collect();
            bytes.push(0x80 | (flags & 0x3F));
            bytes.push(packet_type);
            bytes.extend(((body.len() / 4) as u16).to_be_bytes());
            bytes.extend(body);
        }
        let _ = exercise_rtcp(&bytes);
    }
}
