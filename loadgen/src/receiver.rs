//! A receiver per leg socket: a tokio task that timestamps each datagram on arrival and feeds the
//! stream's [`StreamStats`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bridgepool_codecs::rtp::{RtpPacket, is_rtcp};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::stats::{RtpFields, SendTimes, StreamStats};

/// The measurement of one received stream, shared between its receiver and the run's sampler.
pub type SharedStats = Arc<Mutex<StreamStats>>;

/// Spawns the receiver of `socket`; it runs until aborted (the stats stay in `stats`).
/// `input` is the send log of the stream whose transcoded output arrives here.
pub fn spawn(
    socket: UdpSocket,
    stats: SharedStats,
    input: Arc<dyn SendTimes + Send + Sync>,
    epoch: Instant,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let Ok((len, _from)) = socket.recv_from(&mut buf).await else {
                // ICMP port unreachable surfaces as an error on Linux: keep listening.
                continue;
            };
            let arrival_us = Instant::now().saturating_duration_since(epoch).as_micros() as u64;
            on_datagram(&stats, &buf[..len], arrival_us, input.as_ref());
        }
    })
}

/// Feeds one datagram: RTP to the measurement, RTCP and garbage only counted.
pub fn on_datagram(stats: &SharedStats, datagram: &[u8], arrival_us: u64, input: &dyn SendTimes) {
    let Ok(mut stats) = stats.lock() else { return };
    if is_rtcp(datagram) {
        stats.on_rtcp();
        return;
    }
    match RtpPacket::parse(datagram) {
        Ok(packet) => stats.on_packet(arrival_us, &RtpFields::from(&packet), input),
        Err(_) => stats.on_malformed(),
    }
}
