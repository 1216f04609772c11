//! RFC 4733 golden vectors.

#[path = "rtp_vectors.rs"]
mod vectors;

use bridgepool_codecs::telephone_event::{TelephoneEvent, TelephoneEventError};

use vectors::{EVENT_DIGIT_1, EVENT_HASH_END};

#[test]
fn parses_and_writes_golden_events() {
    for (bytes, expected) in [
        (
            EVENT_DIGIT_1,
            TelephoneEvent {
                event: 1,
                end: false,
                volume: 10,
                duration: 400,
            },
        ),
        (
            EVENT_HASH_END,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 7,
                duration: 800,
            },
        ),
    ] {
        let event = TelephoneEvent::parse(bytes).unwrap();
        assert_eq!(event, expected);
        let mut out = [0u8; TelephoneEvent::LEN];
        assert_eq!(event.write(&mut out), Ok(4));
        assert_eq!(out, bytes);
    }
    assert_eq!(
        TelephoneEvent::parse(EVENT_HASH_END).unwrap().dtmf(),
        Some('#')
    );
}

#[test]
fn extra_payload_bytes_are_ignored() {
    let mut payload = EVENT_DIGIT_1.to_vec();
    payload.extend(EVENT_HASH_END);
    assert_eq!(TelephoneEvent::parse(&payload).unwrap().event, 1);
}

#[test]
fn errors_carry_context() {
    assert_eq!(
        TelephoneEvent::parse(&EVENT_DIGIT_1[..3]),
        Err(TelephoneEventError::Truncated {
            expected: 4,
            actual: 3
        })
    );
    let event = TelephoneEvent::parse(EVENT_DIGIT_1).unwrap();
    assert_eq!(
        event.write(&mut [0u8; 3]),
        Err(TelephoneEventError::BufferTooSmall {
            needed: 4,
            available: 3
        })
    );
    let loud = TelephoneEvent {
        volume: 64,
        ..event
    };
    assert_eq!(
        loud.write(&mut [0u8; 4]),
        Err(TelephoneEventError::VolumeOutOfRange { volume: 64 })
    );
}
