//! Any bytes that parse as RTP are written again by the builder to the same bytes (padding
//! content aside: the builder writes zeros before the count). Parsing never panics.
#![no_main]

use bridgepool_codecs::rtp::{RtpBuilder, RtpPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check(data));

fn check(data: &[u8]) {
    let Ok(packet) = RtpPacket::parse(data) else {
        return;
    };
    let csrcs: Vec<u32> = packet.csrcs().collect();
    let mut builder = RtpBuilder::new(packet.header())
        .csrcs(&csrcs)
        .payload(packet.payload())
        .padding(packet.padding());
    if let Some((profile, ext)) = packet.extension() {
        builder = builder.extension(profile, ext);
    }
    let mut out = vec![0u8; builder.len()];
    let n = builder
        .write(&mut out)
        .expect("a parsed packet can be rebuilt");
    let mut expected = data.to_vec();
    let padding_start = data.len() - usize::from(packet.padding());
    if packet.padding() > 0 {
        expected[padding_start..data.len() - 1].fill(0);
    }
    assert_eq!(&out[..n], &expected[..]);
}
