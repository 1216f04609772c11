//! E-model (ITU-T G.107) MOS estimate from transport figures, simplified as usual for VoIP
//! monitoring: R = 93.2 - Id - Ie,eff, default values for everything not measured.
//!
//! - Id (delay): one-way mouth-to-ear delay `d` in ms; `0.024 d + 0.11 (d - 177.3)` above 177.3 ms.
//! - Ie,eff (loss): `Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl)`, random loss (BurstR = 1).
//! - The delay fed in is the added latency plus a jitter buffer of twice the jitter plus the frame.
//!
//! The defaults are G.711 with packet loss concealment (Ie 0, Bpl 25.1, G.113 Appendix I); the
//! figure rates the path through the pool, not the codecs at each end.

/// Codec parameters of the E-model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Equipment {
    /// Equipment impairment factor Ie.
    pub ie: f64,
    /// Packet-loss robustness factor Bpl.
    pub bpl: f64,
}

/// G.711 with packet loss concealment.
pub const G711_PLC: Equipment = Equipment { ie: 0.0, bpl: 25.1 };

/// The transmission rating factor R.
pub fn r_factor(one_way_delay_ms: f64, loss_pct: f64, equipment: Equipment) -> f64 {
    let d = one_way_delay_ms.max(0.0);
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let ppl = loss_pct.clamp(0.0, 100.0);
    let ie_eff = equipment.ie + (95.0 - equipment.ie) * ppl / (ppl + equipment.bpl);
    93.2 - id - ie_eff
}

/// MOS-CQE from R (G.107 Annex B), 1.0 to 4.5.
pub fn mos_from_r(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).clamp(1.0, 4.5)
    }
}

/// MOS from added latency, jitter and loss, with a jitter buffer of twice the jitter plus 20 ms of
/// packetization.
pub fn estimate(latency_ms: f64, jitter_ms: f64, loss_pct: f64) -> f64 {
    let delay = latency_ms + 2.0 * jitter_ms + 20.0;
    mos_from_r(r_factor(delay, loss_pct, G711_PLC))
}
