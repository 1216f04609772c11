//! RTP/RTCP port pairs from a configured range: RTP on an even port, RTCP on the next odd one
//! (RFC 3550 section 11). Pairs go back to the pool when their session ends.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

/// Both sockets of one leg, and the lease that returns their ports to the pool.
#[derive(Debug)]
pub struct PortPair {
    /// The even RTP port.
    pub rtp: UdpSocket,
    /// The odd RTCP port (`rtp + 1`).
    pub rtcp: UdpSocket,
    /// Held as long as the sockets: drop it after them.
    pub lease: PortLease,
}

/// A port pair taken from the pool; dropping it gives the pair back.
#[derive(Debug)]
pub struct PortLease {
    /// The RTP port number.
    pub port: u16,
    pool: Arc<Mutex<PoolState>>,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        // Poisoning only means another thread panicked while holding the lock; the free list is
        // still consistent (every operation on it is a single push or pop).
        let mut state = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        state.free.push_back(self.port);
        state.in_use -= 1;
    }
}

#[derive(Debug)]
struct PoolState {
    free: VecDeque<u16>,
    in_use: usize,
}

/// The worker's port range. Cloning shares the pool.
#[derive(Clone, Debug)]
pub struct PortPool {
    ip: IpAddr,
    state: Arc<Mutex<PoolState>>,
}

/// No pair could be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// Every pair in the range is in use or taken by another program.
    #[error("no free RTP/RTCP port pair in the configured range ({in_use} pairs in use)")]
    Exhausted {
        /// Pairs this worker holds.
        in_use: usize,
    },
    /// The range holds no even/odd pair.
    #[error("port range {min}-{max} holds no RTP/RTCP pair")]
    EmptyRange {
        /// Lowest port.
        min: u16,
        /// Highest port.
        max: u16,
    },
}

impl PortPool {
    /// A pool of the pairs in `min..=max` on `ip`.
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Result<Self, PortError> {
        let first = min + (min % 2);
        let free: VecDeque<u16> = (first..max).step_by(2).collect();
        if free.is_empty() {
            return Err(PortError::EmptyRange { min, max });
        }
        Ok(Self {
            ip,
            state: Arc::new(Mutex::new(PoolState { free, in_use: 0 })),
        })
    }

    /// Binds the next free pair; pairs another program holds are skipped (and retried later).
    pub fn allocate(&self) -> Result<PortPair, PortError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..state.free.len() {
            let Some(port) = state.free.pop_front() else {
                break;
            };
            let rtp = UdpSocket::bind(SocketAddr::new(self.ip, port));
            let rtcp = UdpSocket::bind(SocketAddr::new(self.ip, port + 1));
            match (rtp, rtcp) {
                (Ok(rtp), Ok(rtcp)) => {
                    state.in_use += 1;
                    return Ok(PortPair {
                        rtp,
                        rtcp,
                        lease: PortLease {
                            port,
                            pool: self.state.clone(),
                        },
                    });
                }
                _ => state.free.push_back(port),
            }
        }
        Err(PortError::Exhausted {
            in_use: state.in_use,
        })
    }

    /// Pairs currently held by sessions.
    pub fn in_use(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).in_use
    }

    /// Pairs free to allocate.
    pub fn available(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .free
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_odd_and_come_back() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41_001, 41_010).unwrap();
        assert_eq!(pool.available(), 4);
        let a = pool.allocate().unwrap();
        assert_eq!(a.lease.port % 2, 0);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), a.lease.port + 1);
        let held: Vec<_> = (0..3).map(|_| pool.allocate().unwrap()).collect();
        assert!(matches!(
            pool.allocate(),
            Err(PortError::Exhausted { in_use: 4 })
        ));
        drop(held);
        drop(a);
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.available(), 4);
        assert!(pool.allocate().is_ok());
    }
}
