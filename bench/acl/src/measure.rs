//! Latency percentiles, and round trips measured as sequential depth through the delaying proxy.

use std::time::{Duration, Instant};

use chatgate_tests::dynamo::FaultProxy;

use crate::BenchError;

/// Latency samples of one operation.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    samples: Vec<Duration>,
}

impl Latency {
    pub fn push(&mut self, sample: Duration) {
        self.samples.push(sample);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Nearest-rank percentile in milliseconds (`p` in 0..=1).
    pub fn percentile_ms(&self, p: f64) -> f64 {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1].as_secs_f64() * 1000.0
    }
}

/// How deep one operation's chain of requests is, from the proxy's counts and from timing.
#[derive(Debug, Clone, Copy)]
pub struct Depth {
    /// Fastest delayed run minus fastest undelayed run: the waves times the proxy's hold.
    pub extra: Duration,
    /// Requests the proxy saw per run (the largest over the runs).
    pub requests: usize,
    /// Most requests the proxy held at once, over all delayed runs.
    pub max_in_flight: usize,
    /// The round trips the counts alone prove, when every run proves the same number: all of a
    /// run's requests in flight at one instant is one round trip (none waited for another's
    /// answer); never more than one in flight is one round trip per request.
    pub counted: Option<u64>,
}

impl Depth {
    /// The timing in waves of `wave`, the measured cost of one round trip through the proxy.
    pub fn waves(&self, wave: Duration) -> f64 {
        self.extra.as_secs_f64() / wave.as_secs_f64()
    }

    /// Round trips: what the counts prove, else the timing rounded.
    pub fn round_trips(&self, wave: Duration) -> u64 {
        self.counted.unwrap_or_else(|| self.waves(wave).round().max(0.0) as u64)
    }
}

/// Measures the sequential depth of `op` through `proxy`. The proxy holds every request for `delay`
/// before forwarding it, so requests sent together wait together and a chain of k dependent waves
/// takes about k × `delay` longer than without the hold, however many requests each wave holds.
/// The undelayed time through the same proxy is subtracted, so neither DynamoDB Local's own time
/// nor the proxy's forwarding counts; the fastest of `runs` runs is taken on both sides, since a
/// busy machine only ever adds time.
pub async fn depth(
    proxy: &FaultProxy,
    delay: Duration,
    runs: usize,
    mut op: impl AsyncFnMut() -> Result<(), BenchError>,
) -> Result<Depth, BenchError> {
    proxy.set_delay(Duration::ZERO);
    op().await?;
    let mut base = Duration::MAX;
    for _ in 0..runs {
        let began = Instant::now();
        op().await?;
        base = base.min(began.elapsed());
    }

    proxy.set_delay(delay);
    let result = delayed_runs(proxy, runs, &mut op).await;
    proxy.set_delay(Duration::ZERO);
    let (fastest, requests, max_in_flight, counted) = result?;
    Ok(Depth { extra: fastest.saturating_sub(base), requests, max_in_flight, counted })
}

async fn delayed_runs(
    proxy: &FaultProxy,
    runs: usize,
    op: &mut impl AsyncFnMut() -> Result<(), BenchError>,
) -> Result<(Duration, usize, usize, Option<u64>), BenchError> {
    // Opens the extra connections that concurrent requests need, outside the timing.
    op().await?;
    let mut fastest = Duration::MAX;
    let (mut requests, mut max_in_flight) = (0, 0);
    let mut proofs = Vec::with_capacity(runs);
    for _ in 0..runs {
        proxy.reset_counts();
        let began = Instant::now();
        op().await?;
        fastest = fastest.min(began.elapsed());
        let (seen, most) = (proxy.requests(None), proxy.max_in_flight());
        proofs.push(match (seen, most) {
            (0, _) => Some(0),
            (r, m) if m == r => Some(1),
            (r, 1) => Some(r as u64),
            _ => None,
        });
        requests = requests.max(seen);
        max_in_flight = max_in_flight.max(most);
    }
    let counted = proofs.first().copied().flatten().filter(|c| proofs.iter().all(|p| *p == Some(*c)));
    Ok((fastest, requests, max_in_flight, counted))
}
