//! Sample-rate conversion with rubato, for rates libopus does not take or give itself.
//!
//! The worker's live path does not resample: libopus encodes from and decodes to 8 kHz directly,
//! and feeding it 48 kHz upsampled from 8 kHz costs about twice as much and spends bits on bands
//! that are empty. This module serves tools (the loadgen's reference audio, test fixtures) and any
//! future codec whose rate libopus cannot bridge. Which resampler is chosen by measured cost and
//! delay (docs/performance.md): polynomial is cheap with little delay, sinc is the best quality,
//! FFT is cheapest per sample but adds a block of delay each way.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, PolynomialDegree, SincInterpolationParameters,
    WindowFunction,
};

/// The rubato resampler family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResamplerKind {
    /// Cubic polynomial interpolation: cheap, short delay, some aliasing.
    Polynomial,
    /// Windowed sinc (256 taps): best quality, most expensive.
    Sinc,
    /// FFT based, synchronous: cheap per sample, but delays by a block.
    Fft,
}

/// A resampler could not be built or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResampleError {
    /// rubato refused the construction.
    #[error("cannot build a {kind:?} resampler {from_hz} -> {to_hz} Hz: {message}")]
    Construction {
        /// Family.
        kind: ResamplerKind,
        /// Input rate.
        from_hz: u32,
        /// Output rate.
        to_hz: u32,
        /// rubato's reason.
        message: String,
    },
    /// Input that is not one frame.
    #[error("expected {expected} input samples, got {actual}")]
    FrameSize {
        /// Samples per frame.
        expected: usize,
        /// Samples given.
        actual: usize,
    },
    /// Output buffer too small.
    #[error("output buffer holds {actual} samples, {needed} needed")]
    OutputTooSmall {
        /// Needed.
        needed: usize,
        /// Given.
        actual: usize,
    },
    /// rubato failed while processing.
    #[error("resampling failed: {0}")]
    Process(String),
}

/// A mono resampler with a fixed input frame. Buffers are allocated once, at construction.
pub struct Resampler {
    inner: Box<dyn rubato::Resampler<f32>>,
    frame_in: usize,
    frame_out: usize,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("frame_in", &self.frame_in)
            .field("frame_out", &self.frame_out)
            .finish()
    }
}

impl Resampler {
    /// A resampler from `from_hz` to `to_hz` taking `frame_in` samples per call.
    pub fn new(
        from_hz: u32,
        to_hz: u32,
        frame_in: usize,
        kind: ResamplerKind,
    ) -> Result<Self, ResampleError> {
        let fail = |message: String| ResampleError::Construction {
            kind,
            from_hz,
            to_hz,
            message,
        };
        if from_hz == 0 || to_hz == 0 || frame_in == 0 {
            return Err(fail("rates and frame must be positive".to_owned()));
        }
        let ratio = f64::from(to_hz) / f64::from(from_hz);
        let inner: Box<dyn rubato::Resampler<f32>> = match kind {
            ResamplerKind::Polynomial => Box::new(
                Async::<f32>::new_poly(
                    ratio,
                    1.0,
                    PolynomialDegree::Cubic,
                    frame_in,
                    1,
                    FixedAsync::Input,
                )
                .map_err(|e| fail(e.to_string()))?,
            ),
            ResamplerKind::Sinc => Box::new(
                Async::<f32>::new_sinc(
                    ratio,
                    1.0,
                    &SincInterpolationParameters::new(256, WindowFunction::BlackmanHarris2),
                    frame_in,
                    1,
                    FixedAsync::Input,
                )
                .map_err(|e| fail(e.to_string()))?,
            ),
            ResamplerKind::Fft => Box::new(
                Fft::<f32>::new(
                    from_hz as usize,
                    to_hz as usize,
                    frame_in,
                    1,
                    FixedSync::Input,
                )
                .map_err(|e| fail(e.to_string()))?,
            ),
        };
        if inner.input_frames_next() != frame_in {
            return Err(fail(format!(
                "rubato wants {} input samples per call",
                inner.input_frames_next()
            )));
        }
        let frame_out = inner.output_frames_max();
        Ok(Self {
            inner,
            frame_in,
            frame_out,
            input: vec![0.0; frame_in],
            output: vec![0.0; frame_out],
        })
    }

    /// Input samples per call.
    pub fn frame_in(&self) -> usize {
        self.frame_in
    }

    /// Most output samples one call gives.
    pub fn frame_out(&self) -> usize {
        self.frame_out
    }

    /// Delay the resampler adds, in output samples.
    pub fn delay(&self) -> usize {
        self.inner.output_delay()
    }

    /// Resamples one frame; returns the samples written to `out`. No allocation.
    pub fn process(&mut self, input: &[i16], out: &mut [i16]) -> Result<usize, ResampleError> {
        if input.len() != self.frame_in {
            return Err(ResampleError::FrameSize {
                expected: self.frame_in,
                actual: input.len(),
            });
        }
        let next = self.inner.output_frames_next();
        if out.len() < next {
            return Err(ResampleError::OutputTooSmall {
                needed: next,
                actual: out.len(),
            });
        }
        for (dst, src) in self.input.iter_mut().zip(input) {
            *dst = f32::from(*src) / 32768.0;
        }
        let adapter_in = InterleavedSlice::new(&self.input[..], 1, self.frame_in)
            .map_err(|e| ResampleError::Process(e.to_string()))?;
        let frames_out = self.output.len();
        let mut adapter_out = InterleavedSlice::new_mut(&mut self.output[..], 1, frames_out)
            .map_err(|e| ResampleError::Process(e.to_string()))?;
        let (_, written) = self
            .inner
            .process_into_buffer(&adapter_in, &mut adapter_out, None)
            .map_err(|e| ResampleError::Process(e.to_string()))?;
        for (dst, src) in out.iter_mut().zip(&self.output[..written]) {
            *dst = (src * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        }
        Ok(written)
    }
}

/// Converts a whole recording (allocates; for tools and tests). The resampler's delay is removed,
/// so the output lines up with the input.
pub fn resample_all(input: &[i16], from_hz: u32, to_hz: u32) -> Result<Vec<i16>, ResampleError> {
    const FRAME: usize = 1024;
    let mut r = Resampler::new(from_hz, to_hz, FRAME, ResamplerKind::Sinc)?;
    let expected = (input.len() as u64 * u64::from(to_hz) / u64::from(from_hz)) as usize;
    let delay = r.delay();
    let mut out = Vec::with_capacity(expected + delay + r.frame_out());
    let mut chunk = vec![0i16; FRAME];
    let mut produced = vec![0i16; r.frame_out()];
    let mut fed = 0;
    while out.len() < expected + delay {
        chunk.fill(0);
        let take = input.len().saturating_sub(fed).min(FRAME);
        chunk[..take].copy_from_slice(&input[fed..fed + take]);
        fed += take;
        let n = r.process(&chunk, &mut produced)?;
        out.extend_from_slice(&produced[..n]);
    }
    out.drain(..delay.min(out.len()));
    out.truncate(expected);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, rate: f64, hz: f64) -> Vec<i16> {
        (0..n)
            .map(|i| ((i as f64 / rate * hz * std::f64::consts::TAU).sin() * 10_000.0) as i16)
            .collect()
    }

    #[test]
    fn every_kind_converts_8k_to_48k_frames() {
        for kind in [
            ResamplerKind::Polynomial,
            ResamplerKind::Sinc,
            ResamplerKind::Fft,
        ] {
            let mut r = Resampler::new(8000, 48_000, 160, kind).unwrap();
            let mut out = vec![0i16; r.frame_out()];
            let input = tone(160, 8000.0, 440.0);
            let mut total = 0;
            for _ in 0..10 {
                total += r.process(&input, &mut out).unwrap();
            }
            // Asynchronous resamplers fill their delay line first; the FFT one works in blocks.
            assert!(total.abs_diff(9600) <= r.frame_out(), "{kind:?}: {total}");
        }
    }

    #[test]
    fn round_trip_keeps_the_signal() {
        // A chirp, so that only one alignment fits.
        let input: Vec<i16> = (0..16_000)
            .map(|i| {
                let t = f64::from(i) / 8000.0;
                ((300.0 * t + 600.0 * t * t) * std::f64::consts::TAU).sin() as f32 * 10_000.0
            })
            .map(|x| x as i16)
            .collect();
        let up = resample_all(&input, 8000, 48_000).unwrap();
        assert_eq!(up.len(), 96_000);
        let down = resample_all(&up, 48_000, 8000).unwrap();
        assert_eq!(down.len(), 16_000);
        let s = crate::quality::align_and_compare(&input, &down, 200);
        assert!(s.lag.abs() <= 2, "{s:?}");
        assert!(s.correlation > 0.97, "{s:?}");
    }

    #[test]
    fn wrong_frame_is_an_error() {
        let mut r = Resampler::new(8000, 16_000, 160, ResamplerKind::Polynomial).unwrap();
        let mut out = vec![0i16; 1000];
        assert!(matches!(
            r.process(&[0; 100], &mut out),
            Err(ResampleError::FrameSize { .. })
        ));
    }
}
