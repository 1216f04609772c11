//! The session's outbox: datagrams written in place into preallocated slots, handed to the driver
//! in order. No allocation once the session is built, unless the driver stops polling.

use std::collections::VecDeque;

use super::Leg;

/// Largest datagram the session writes: what the driver receives at most (1500 bytes), since a
/// relayed datagram leaves whole (its own packets are smaller: 60 ms of G.711 is 492 bytes).
pub const MAX_DATAGRAM: usize = 1500;
const INITIAL_SLOTS: usize = 8;

/// Whether a datagram goes to the leg's RTP or RTCP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Media.
    Rtp,
    /// Control (the RTP port + 1, or the same port with rtcp-mux).
    Rtcp,
}

/// A datagram the driver is to send, copied into its buffer by [`super::Session::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Which peer it goes to.
    pub leg: Leg,
    /// RTP or RTCP.
    pub channel: Channel,
    /// Bytes written into the caller's buffer.
    pub len: usize,
}

struct Slot {
    leg: Leg,
    channel: Channel,
    len: usize,
    data: Box<[u8; MAX_DATAGRAM]>,
}

pub(crate) struct Outbox {
    queued: VecDeque<Slot>,
    free: Vec<Slot>,
}

impl Outbox {
    pub(crate) fn new() -> Self {
        let free = (0..INITIAL_SLOTS)
            .map(|_| Slot {
                leg: Leg::A,
                channel: Channel::Rtp,
                len: 0,
                data: Box::new([0; MAX_DATAGRAM]),
            })
            .collect();
        Self {
            queued: VecDeque::with_capacity(INITIAL_SLOTS),
            free,
        }
    }

    /// Writes one datagram with `write`, which fills the buffer and returns the length it used
    /// (or `None` to abandon the datagram).
    pub(crate) fn push(
        &mut self,
        leg: Leg,
        channel: Channel,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        let mut slot = self.free.pop().unwrap_or_else(|| Slot {
            leg,
            channel,
            len: 0,
            data: Box::new([0; MAX_DATAGRAM]),
        });
        match write(&mut slot.data[..]) {
            Some(len) if len <= MAX_DATAGRAM => {
                slot.leg = leg;
                slot.channel = channel;
                slot.len = len;
                self.queued.push_back(slot);
                true
            }
            _ => {
                self.free.push(slot);
                false
            }
        }
    }

    pub(crate) fn pop_into(&mut self, out: &mut [u8]) -> Option<Transmit> {
        let slot = self.queued.front()?;
        if out.len() < slot.len {
            return None;
        }
        let slot = self.queued.pop_front()?;
        out[..slot.len].copy_from_slice(&slot.data[..slot.len]);
        let t = Transmit {
            leg: slot.leg,
            channel: slot.channel,
            len: slot.len,
        };
        self.free.push(slot);
        Some(t)
    }
}
