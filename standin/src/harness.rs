//! The pieces every loopback test server shares (the stand-in, the DynamoDB fault proxy, the JWKS
//! and AWS stubs of `chatgate-tests`): queued fault rules, an in-flight gauge, an injected delay
//! and an HTTP/1.1 accept loop that stops when its handle drops.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

/// A poisoned lock only means another request panicked; the data is still the best we have.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Rule<F, M> {
    fault: F,
    /// `None` matches every request.
    filter: Option<M>,
    /// Requests left to fail; `None` until healed.
    remaining: Option<usize>,
}

/// Faults queued by a test, each for the next `n` matching requests or until healed, and a count
/// of those injected: `F` is the answer a server fakes, `M` the filter it matches requests with.
#[derive(Debug)]
pub struct FaultRules<F, M = String> {
    rules: Mutex<Vec<Rule<F, M>>>,
    injected: AtomicUsize,
}

impl<F, M> Default for FaultRules<F, M> {
    /// No rules, so every request is served normally.
    fn default() -> Self {
        Self { rules: Mutex::new(Vec::new()), injected: AtomicUsize::new(0) }
    }
}

impl<F: Clone, M> FaultRules<F, M> {
    /// Answers the next `n` requests matching `filter` (any when `None`) with `fault`; rules queue
    /// up, and the oldest matching one with requests left applies.
    pub fn fail_next(&self, n: usize, fault: F, filter: Option<M>) {
        lock(&self.rules).push(Rule { fault, filter, remaining: Some(n) });
    }

    /// Like [`Self::fail_next`] for every matching request until [`Self::heal`].
    pub fn fail_always(&self, fault: F, filter: Option<M>) {
        lock(&self.rules).push(Rule { fault, filter, remaining: None });
    }

    /// Drops every pending fault, so requests are served normally again.
    pub fn heal(&self) {
        lock(&self.rules).clear();
    }

    /// The fault for a request whose filters `matches` accepts, with its ordinal (from 1) since
    /// the last reset; it uses up one request of its rule and counts as injected.
    pub fn pick(&self, matches: impl Fn(&M) -> bool) -> Option<(F, usize)> {
        let mut rules = lock(&self.rules);
        let rule = rules.iter_mut().find(|r| r.remaining != Some(0) && r.filter.as_ref().is_none_or(&matches))?;
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        Some((rule.fault.clone(), self.injected.fetch_add(1, Ordering::SeqCst) + 1))
    }

    /// Faults injected since the last reset.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    /// Zeroes the injected count (the rules stay).
    pub fn reset_injected(&self) {
        self.injected.store(0, Ordering::SeqCst);
    }
}

/// Requests being served now and the most at once, so tests can see whether calls overlapped.
#[derive(Debug, Default)]
pub struct InFlight {
    current: AtomicUsize,
    max: AtomicUsize,
}

impl InFlight {
    /// Counts a request in until the guard drops.
    pub fn enter(&self) -> InFlightGuard<'_> {
        let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        InFlightGuard(self)
    }

    /// Requests in flight now.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::SeqCst)
    }

    /// The most requests in flight at once since the last reset: 1 for sequential round trips.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }

    /// Starts the maximum over from the requests in flight now.
    pub fn reset_max(&self) {
        self.max.store(self.current(), Ordering::SeqCst);
    }
}

/// One request counted in an [`InFlight`]; dropping it counts the request out.
#[derive(Debug)]
#[must_use = "the request counts as in flight only while the guard lives"]
pub struct InFlightGuard<'a>(&'a InFlight);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A pause every request takes before it is answered, so concurrent requests overlap visibly.
#[derive(Debug, Default)]
pub struct Delay(Mutex<Duration>);

impl Delay {
    /// Sets the pause of the requests from now on; zero for none.
    pub fn set(&self, delay: Duration) {
        *lock(&self.0) = delay;
    }

    /// Sleeps for the current pause (the lock is not held while sleeping).
    pub async fn wait(&self) {
        let delay = *lock(&self.0);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

/// What a [`Server`] answers each request with: any shareable async function of the request.
pub trait Handler: Send + Sync + 'static {
    /// The response body hyper writes out.
    type Body: Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static;

    /// The answer in the making, owning what it needs (so it outlives the borrow of the handler).
    type Future: Future<Output = Response<Self::Body>> + Send + 'static;

    /// Answers one request.
    fn call(&self, request: Request<Incoming>) -> Self::Future;
}

impl<H, Fut, B> Handler for H
where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static,
{
    type Body = B;
    type Future = Fut;

    fn call(&self, request: Request<Incoming>) -> Fut {
        self(request)
    }
}

/// A running accept loop serving HTTP/1.1; it stops accepting when this handle drops (open
/// connections finish), so share it in an `Arc` to stop with the last clone of a server handle.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    accept_loop: AbortHandle,
}

impl Server {
    /// Serves every connection to `listener` with `handler`, one task per connection.
    pub fn spawn(listener: TcpListener, handler: impl Handler) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let handler = Arc::new(handler);
        let accept_loop = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors and the like: wait for some to free up.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let response = handler.call(request);
                        async move { Ok::<_, Infallible>(response.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, accept_loop: accept_loop.abort_handle() })
    }

    /// Like [`Self::spawn`] on an ephemeral port of 127.0.0.1: what a test server listens on.
    pub async fn loopback(handler: impl Handler) -> io::Result<Self> {
        Self::spawn(TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?, handler)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_matching_rule_with_requests_left_applies() {
        let rules = FaultRules::<u16, &str>::default();
        rules.fail_next(1, 429, Some("a"));
        rules.fail_always(503, None);
        assert_eq!(rules.pick(|f| *f == "b"), Some((503, 1)));
        assert_eq!(rules.pick(|f| *f == "a"), Some((429, 2)));
        assert_eq!(rules.pick(|f| *f == "a"), Some((503, 3)));
        assert_eq!(rules.injected(), 3);
        rules.heal();
        rules.reset_injected();
        assert_eq!((rules.pick(|_| true), rules.injected()), (None, 0));
    }

    #[test]
    fn the_gauge_keeps_the_most_at_once() {
        let gauge = InFlight::default();
        let first = gauge.enter();
        drop(gauge.enter());
        assert_eq!((gauge.current(), gauge.max()), (1, 2));
        gauge.reset_max();
        assert_eq!(gauge.max(), 1);
        drop(first);
        assert_eq!((gauge.current(), gauge.max()), (0, 1));
    }
}
