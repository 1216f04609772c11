//! Any payload: parsing never panics, and a parsed event writes back to its first 4 bytes (with
//! the reserved bit cleared).
#![no_main]

use bridgepool_codecs::telephone_event::TelephoneEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check(data));

fn check(data: &[u8]) {
    let Ok(event) = TelephoneEvent::parse(data) else {
        assert!(data.len() < TelephoneEvent::LEN);
        return;
    };
    let mut out = [0u8; TelephoneEvent::LEN];
    event.write(&mut out).unwrap();
    let expected = [data[0], data[1] & !0x40, data[2], data[3]];
    assert_eq!(out, expected);
}
