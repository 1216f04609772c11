//! RTP cost for a 172-byte PCMU packet (12-byte header, 160-byte payload): parse, and build
//! (header write plus payload copy), plus an RTCP SR+SDES compound for scale.

use std::hint::black_box;

use bridgepool_codecs::rtcp::{self, ReportBlock, SenderInfo};
use bridgepool_codecs::rtp::{HEADER_LEN, RtpHeader, RtpPacket};
use criterion::{Criterion, criterion_group, criterion_main};

fn rtp(c: &mut Criterion) {
    let header = RtpHeader {
        marker: false,
        payload_type: 0,
        sequence_number: 4242,
        timestamp: 123_456,
        ssrc: 0xDEAD_BEEF,
    };
    let payload = [0xD5u8; 160];
    let mut packet = [0u8; 172];
    header.write(&mut packet).unwrap();
    packet[HEADER_LEN..].copy_from_slice(&payload);

    c.bench_function("rtp/parse_172", |b| {
        b.iter(|| {
            let parsed = RtpPacket::parse(black_box(&packet)).unwrap();
            black_box((
                parsed.sequence_number(),
                parsed.timestamp(),
                parsed.payload(),
            ));
        })
    });
    let mut out = [0u8; 1500];
    c.bench_function("rtp/build_172", |b| {
        b.iter(|| {
            let n = black_box(&header).write(&mut out).unwrap();
            out[n..n + payload.len()].copy_from_slice(black_box(&payload));
            black_box(&out);
        })
    });
    c.bench_function("rtp/parse+build_172", |b| {
        b.iter(|| {
            let parsed = RtpPacket::parse(black_box(&packet)).unwrap();
            let mut header = parsed.header();
            header.sequence_number = header.sequence_number.wrapping_add(1);
            let n = header.write(&mut out).unwrap();
            let body = parsed.payload();
            out[n..n + body.len()].copy_from_slice(body);
            black_box(&out);
        })
    });

    let info = SenderInfo::default();
    let block = ReportBlock::default();
    c.bench_function("rtcp/sr+sdes_build_parse", |b| {
        b.iter(|| {
            let n = rtcp::write_sender_report(&mut out, 1, black_box(&info), &[block]).unwrap();
            let m = rtcp::write_sdes_cname(&mut out[n..], 1, b"bridgepool@worker-1").unwrap();
            black_box(rtcp::compound(&out[..n + m]).filter(Result::is_ok).count());
        })
    });
}

criterion_group!(benches, rtp);
criterion_main!(benches);
