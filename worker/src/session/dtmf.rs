//! RFC 4733 telephone-event relay between an 8 kHz and a 48 kHz leg.
//!
//! An event keeps ONE output timestamp for all its packets, the repeated end packets included:
//! the first packet of an event fixes it and later packets reuse it. Durations are rescaled with
//! the clock. A duration that no longer fits 16 bits after upscaling (events over 1.36 s at
//! 48 kHz) continues in a new segment, as RFC 4733 section 2.5.1.3 prescribes.
//!
//! Whatever the input says, the output moves forward: a new event never starts before the end
//! of the last one, and a duration that shrinks within an event (a confused or hostile sender)
//! is held at its longest, so no segment's timestamp goes back.

use bridgepool_codecs::telephone_event::TelephoneEvent;

/// Longest duration one segment can carry.
const MAX_SEGMENT: u64 = 0xFFFF;

/// The clock change between the legs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rescale {
    /// 8 kHz in, 48 kHz out.
    Up6,
    /// 48 kHz in, 8 kHz out.
    Down6,
}

impl Rescale {
    fn apply(self, units: u64) -> u64 {
        match self {
            Self::Up6 => units * 6,
            Self::Down6 => units / 6,
        }
    }
}

/// One event packet to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RelayedEvent {
    /// Output timestamp (our unwrapped timeline).
    pub(crate) ts: u64,
    pub(crate) event: TelephoneEvent,
    /// First packet of the event (RTP marker bit).
    pub(crate) marker: bool,
}

#[derive(Clone, Copy, Debug)]
struct Current {
    in_ts: u32,
    out_ts: u64,
    event: u8,
    /// Longest rescaled duration seen for this event.
    scaled: u64,
}

pub(crate) struct DtmfRelay {
    rescale: Rescale,
    current: Option<Current>,
    /// Where the last event ended on the output timeline: the next one starts no earlier.
    floor: u64,
}

impl DtmfRelay {
    pub(crate) fn new(rescale: Rescale) -> Self {
        Self {
            rescale,
            current: None,
            floor: 0,
        }
    }

    /// The input starts over (a transcoder started after passthrough): an event in progress is
    /// forgotten, but the next one still starts after the end of the last one sent.
    pub(crate) fn new_input(&mut self) {
        self.current = None;
    }

    /// Relays one received event packet. `start_ts` gives the output timestamp for a new event;
    /// it is only called for the first packet of an event.
    pub(crate) fn relay(
        &mut self,
        in_ts: u32,
        event: TelephoneEvent,
        start_ts: impl FnOnce() -> u64,
    ) -> RelayedEvent {
        let scaled = self.rescale.apply(u64::from(event.duration));
        let (out_ts, marker, scaled) = match self.current {
            Some(c) if c.in_ts == in_ts && c.event == event.event => {
                (c.out_ts, false, scaled.max(c.scaled))
            }
            _ => (start_ts().max(self.floor), true, scaled),
        };
        self.current = Some(Current {
            in_ts,
            out_ts,
            event: event.event,
            scaled,
        });
        self.floor = self.floor.max(out_ts + scaled);
        // Segments: each carries up to MAX_SEGMENT, the last the rest.
        let segment = if scaled > MAX_SEGMENT {
            (scaled - 1) / MAX_SEGMENT
        } else {
            0
        };
        let duration = scaled - segment * MAX_SEGMENT;
        RelayedEvent {
            ts: out_ts + segment * MAX_SEGMENT,
            event: TelephoneEvent {
                duration: duration as u16,
                ..event
            },
            marker,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: u8, duration: u16, end: bool) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    #[test]
    fn one_timestamp_per_event_and_rescaled_duration() {
        let mut r = DtmfRelay::new(Rescale::Up6);
        let first = r.relay(8000, ev(5, 160, false), || 1000);
        assert_eq!(
            (first.ts, first.marker, first.event.duration),
            (1000, true, 960)
        );
        let mid = r.relay(8000, ev(5, 800, false), || panic!("new event"));
        assert_eq!(
            (mid.ts, mid.marker, mid.event.duration),
            (1000, false, 4800)
        );
        for _ in 0..3 {
            let end = r.relay(8000, ev(5, 1280, true), || panic!("new event"));
            assert_eq!(
                (end.ts, end.event.duration, end.event.end),
                (1000, 7680, true)
            );
        }
        let next = r.relay(16000, ev(6, 160, false), || 50_000);
        assert_eq!((next.ts, next.marker), (50_000, true));
    }

    #[test]
    fn the_output_never_goes_back() {
        let mut r = DtmfRelay::new(Rescale::Up6);
        let first = r.relay(8000, ev(5, 800, true), || 10_000);
        assert_eq!(first.ts, 10_000);
        // The next event claims to start inside the last one: it starts at its end instead.
        let next = r.relay(8100, ev(6, 160, false), || 10_600);
        assert_eq!((next.ts, next.marker), (14_800, true));
        // A long event's duration shrinking back below one segment keeps the later segment.
        let long = r.relay(9000, ev(7, 12_000, false), || 20_000);
        assert_eq!(long.ts, 20_000 + 65_535);
        let shrunk = r.relay(9000, ev(7, 100, false), || panic!("same event"));
        assert_eq!(shrunk.ts, 20_000 + 65_535, "segment timestamp held");
    }

    #[test]
    fn downscale_divides() {
        let mut r = DtmfRelay::new(Rescale::Down6);
        let e = r.relay(48_000, ev(1, 4800, false), || 7);
        assert_eq!((e.ts, e.event.duration), (7, 800));
    }

    #[test]
    fn long_events_continue_in_segments() {
        let mut r = DtmfRelay::new(Rescale::Up6);
        let e = r.relay(0, ev(1, 12_000, false), || 0);
        // 72,000 ticks: one full segment of 65,535, then 6,465.
        assert_eq!((e.ts, e.event.duration), (65_535, 6_465));
    }
}
