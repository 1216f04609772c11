//! Property tests for RFC 4733 telephone events.

use bridgepool_codecs::telephone_event::TelephoneEvent;
use proptest::prelude::*;

proptest! {
    #[test]
    fn write_then_parse_gives_the_same_fields(
        event in any::<u8>(),
        end in any::<bool>(),
        volume in 0u8..=63,
        duration in any::<u16>(),
    ) {
        let event = TelephoneEvent { event, end, volume, duration };
        let mut out = [0u8; TelephoneEvent::LEN];
        prop_assert_eq!(event.write(&mut out), Ok(TelephoneEvent::LEN));
        prop_assert_eq!(TelephoneEvent::parse(&out), Ok(event));
    }

    #[test]
    fn parse_then_write_gives_the_same_bytes(mut bytes in any::<[u8; 4]>()) {
        bytes[1] &= !0x40; // the reserved bit is written as zero
        let event = TelephoneEvent::parse(&bytes).unwrap();
        let mut out = [0u8; 4];
        event.write(&mut out).unwrap();
        prop_assert_eq!(out, bytes);
    }
}
