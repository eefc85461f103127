//! The troubles a test schedules beyond the queued faults of [`crate::harness::FaultRules`]:
//! outages (faults by time), slow paths and lost responses. All of them concern the REST face
//! only; [`crate::StandIn::heal`] clears them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::harness::lock;
use crate::{Fault, filter_matches};

/// A window of time in which matching requests are answered with a fault.
#[derive(Debug)]
struct Window {
    /// `None` when it opens too far ahead to say (it never does, then).
    from: Option<Instant>,
    /// `None` when it lasts too long to say (`Duration::MAX`: until healed).
    until: Option<Instant>,
    fault: Fault,
    /// A [`filter_matches`] filter; `None` matches every request.
    filter: Option<String>,
}

impl Window {
    fn covers(&self, at: Instant) -> bool {
        self.from.is_some_and(|from| from <= at) && self.until.is_none_or(|until| at < until)
    }
}

/// The outage windows a test registered, and how many requests they answered.
#[derive(Debug, Default)]
pub(crate) struct Outages {
    windows: Mutex<Vec<Window>>,
    injected: AtomicUsize,
}

impl Outages {
    /// From `starts_in` after now, for `lasts`, matching requests get `fault`.
    pub fn add(&self, starts_in: Duration, lasts: Duration, fault: Fault, filter: Option<String>) {
        let from = Instant::now().checked_add(starts_in);
        let until = from.and_then(|from| from.checked_add(lasts));
        lock(&self.windows).push(Window { from, until, fault, filter });
    }

    /// The fault of the oldest window that `arrived` falls in and whose filter takes `method path`,
    /// counted as injected.
    pub fn pick(&self, arrived: Instant, method: &str, path: &str) -> Option<Fault> {
        let windows = lock(&self.windows);
        let window = windows
            .iter()
            .find(|w| w.covers(arrived) && w.filter.as_deref().is_none_or(|f| filter_matches(f, method, path)))?;
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some(window.fault)
    }

    pub fn clear(&self) {
        lock(&self.windows).clear();
    }

    /// Requests answered by an outage since the last reset.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    pub fn reset_injected(&self) {
        self.injected.store(0, Ordering::SeqCst);
    }
}

/// Which requests a slow-path or lost-response rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestFilter {
    /// Any method when `None`; compared without regard to case.
    method: Option<String>,
    /// A [`filter_matches`] filter on the path; any path when `None`.
    path_contains: Option<String>,
}

impl RequestFilter {
    pub fn new(method: Option<&str>, path_contains: Option<&str>) -> Self {
        Self { method: method.map(str::to_owned), path_contains: path_contains.map(str::to_owned) }
    }

    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path_contains.as_deref().is_none_or(|f| filter_matches(f, method, path))
    }
}

/// Extra pauses for chosen requests, on top of the global [`crate::harness::Delay`].
#[derive(Debug, Default)]
pub(crate) struct SlowPaths(Mutex<Vec<(RequestFilter, Duration)>>);

impl SlowPaths {
    pub fn add(&self, filter: RequestFilter, delay: Duration) {
        lock(&self.0).push((filter, delay));
    }

    pub fn clear(&self) {
        lock(&self.0).clear();
    }

    /// The pause of `method path`: every matching rule's delay, added up.
    pub fn delay_of(&self, method: &str, path: &str) -> Duration {
        lock(&self.0)
            .iter()
            .filter(|(filter, _)| filter.matches(method, path))
            .fold(Duration::ZERO, |total, (_, delay)| total.saturating_add(*delay))
    }

    /// Sleeps for the pause of `method path` (the lock is not held while sleeping).
    pub async fn wait(&self, method: &str, path: &str) {
        let delay = self.delay_of(method, path);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_applies_from_its_start_until_before_its_end() {
        let outages = Outages::default();
        outages.add(Duration::from_secs(10), Duration::from_secs(5), Fault::SERVICE_UNAVAILABLE, None);
        let start = Instant::now() + Duration::from_secs(10);
        assert_eq!(outages.pick(start - Duration::from_millis(100), "GET", "/v1/x"), None);
        assert_eq!(outages.pick(start + Duration::from_millis(100), "GET", "/v1/x"), Some(Fault::SERVICE_UNAVAILABLE));
        assert_eq!(outages.pick(start + Duration::from_secs(6), "GET", "/v1/x"), None);
        assert_eq!(outages.injected(), 1);
        outages.clear();
        assert_eq!(outages.pick(start + Duration::from_millis(100), "GET", "/v1/x"), None);
    }

    #[test]
    fn an_endless_outage_lasts_until_cleared_and_one_too_far_ahead_never_opens() {
        let outages = Outages::default();
        outages.add(Duration::MAX, Duration::ZERO, Fault::INTERNAL_ERROR, None);
        outages.add(Duration::ZERO, Duration::MAX, Fault::SERVICE_UNAVAILABLE, Some("/Users".to_owned()));
        let later = Instant::now() + Duration::from_secs(3600 * 24 * 365);
        assert_eq!(outages.pick(later, "GET", "/v1/Users"), Some(Fault::SERVICE_UNAVAILABLE));
        assert_eq!(outages.pick(later, "GET", "/v1/Roles"), None);
    }

    #[test]
    fn slow_rules_match_method_and_path_and_add_up() {
        let slow = SlowPaths::default();
        slow.add(RequestFilter::new(Some("post"), Some("/Participants")), Duration::from_millis(30));
        slow.add(RequestFilter::new(None, Some("/Conversations")), Duration::from_millis(20));
        assert_eq!(slow.delay_of("POST", "/v1/Services/IS1/Conversations/CH1/Participants"), Duration::from_millis(50));
        assert_eq!(slow.delay_of("GET", "/v1/Services/IS1/Conversations/CH1/Participants"), Duration::from_millis(20));
        assert_eq!(slow.delay_of("GET", "/v1/Services/IS1/Users"), Duration::ZERO);
    }
}
