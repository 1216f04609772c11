//! An ng datagram from the network never panics the decoder, and whatever decodes re-encodes and
//! decodes to the same typed transform request (the same property runs under proptest in
//! `ng/src/codec.rs`).
#![no_main]

use bridgepool_ng::{Message, TransformRequest, client};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::parse(data) else {
        return;
    };
    if let Ok(request) = TransformRequest::from_body(&message.body) {
        let again = client::frame("c", &request.to_body());
        let parsed = Message::parse(&again).expect("our own encoding decodes");
        assert_eq!(TransformRequest::from_body(&parsed.body).ok(), Some(request));
    }
});
