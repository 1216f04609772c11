//! The ng server: rtpengine's control protocol over UDP (`--ng-listen`), so a relay (rtpengine
//! mr13.3+ `transform`) or a jambonz-style poller can use the pool unmodified.
//!
//! Run loop: read a datagram; an undecodable one is answered `error` when it has a cookie, else
//! dropped, and counted either way; otherwise the cookie cache decides: a resend of an answered
//! request gets the stored reply, a resend of one still in flight is remembered (and answered once
//! per distinct source when the reply is ready), a new one is handled on its own task. Commands:
//! `ping`, `offer`, `answer` (bridgepool as an rtpengine set, [`calls`]), `transform`, `delete`,
//! `query`, `list`, `statistics`.

pub mod calls;
mod commands;
pub mod legs;
pub mod limit;
pub mod metrics;
mod offer;
pub mod pairs;
mod place;
pub mod pool;
mod state;
mod stats;

use std::future::Future as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bridgepool_ng::frame::{MAX_DATAGRAM, split_cookie};
use bridgepool_ng::reply::{self, reasons};
use bridgepool_ng::{CookieCache, Encoding, Lookup, Message};
use tokio::net::UdpSocket;

use crate::service::SchedulerState;
use calls::CallPool;
use pool::JobPool;

/// Counters of the ng front door.
#[derive(Debug, Default)]
pub struct NgCounters {
    /// Requests handled (first sightings).
    pub requests: AtomicU64,
    /// Resends answered from the cache.
    pub resends: AtomicU64,
    /// Datagrams that did not decode.
    pub malformed: AtomicU64,
    /// Replies with `result: error`.
    pub errors: AtomicU64,
    /// Datagrams dropped because their source was over its rate.
    pub rate_limited: AtomicU64,
}

/// The ng server's shared state.
pub struct NgServer {
    pool: JobPool,
    calls: CallPool,
    instance: String,
    cache: Mutex<CookieCache<SocketAddr>>,
    /// Its counters.
    pub counters: NgCounters,
    /// Test hook: a request with command [`TEST_PANIC_COMMAND`] panics. Debug builds only, and
    /// only with `BRIDGEPOOL_TEST_PANIC_HOOK` set when the server was built.
    panic_hook: bool,
    /// When a panic was last logged (ERROR lines are rate-limited).
    panic_logged: Mutex<Option<Instant>>,
    /// Per-source request rate; `None`: unlimited.
    limiter: Option<Mutex<limit::SourceLimiter>>,
}

thread_local! {
    /// Set while a request is handled under `catch_unwind`: the panic hook leaves the report to
    /// [`NgServer::panicked`]'s rate-limited ERROR line.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that stays quiet for panics the ng server catches and passes
/// every other panic to the previous hook.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
}

/// The command that panics when the test hook is on.
pub const TEST_PANIC_COMMAND: &str = "bridgepool-test-panic";
/// Reply reason of a request whose handling panicked.
pub const INTERNAL_ERROR: &str = "Internal error";
/// At most one ERROR line about a panicking request in this long.
const PANIC_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl NgServer {
    /// A server over the scheduler's state; `instance` is this pool's id (a `transform` carrying
    /// it is a loop).
    pub fn new(state: Arc<SchedulerState>, instance: String) -> Self {
        install_panic_hook();
        Self {
            calls: CallPool::new(state.clone()),
            pool: JobPool::new(state),
            instance,
            cache: Mutex::new(CookieCache::new(
                CookieCache::<SocketAddr>::DEFAULT_PERIOD,
                Instant::now(),
            )),
            counters: NgCounters::default(),
            panic_hook: cfg!(debug_assertions)
                && std::env::var_os("BRIDGEPOOL_TEST_PANIC_HOOK").is_some(),
            panic_logged: Mutex::new(None),
            limiter: None,
        }
    }

    /// Limits each source IP to `per_second` datagrams per second (bursts of a quarter second's
    /// worth, at least 50); 0 leaves it unlimited.
    #[must_use]
    pub fn with_rate_limit(mut self, per_second: u32) -> Self {
        self.limiter = (per_second > 0).then(|| {
            Mutex::new(limit::SourceLimiter::new(
                per_second,
                (per_second / 4).max(50),
            ))
        });
        self
    }

    /// Keeps an offer/answer call `seconds` after a `delete` that names no `delete delay`
    /// (rtpengine's default, 30, when not called).
    #[must_use]
    pub fn with_delete_delay(mut self, seconds: u32) -> Self {
        self.calls.set_delete_delay(seconds);
        self
    }

    /// Whether a datagram from `from` is within its source's rate.
    fn within_rate(&self, from: SocketAddr) -> bool {
        let Some(limiter) = &self.limiter else {
            return true;
        };
        let allowed = limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(from.ip(), Instant::now());
        if !allowed {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            self.pool.state().ng.rate_limited();
        }
        allowed
    }

    /// Counts a panic and logs it at ERROR, at most once per [`PANIC_LOG_EVERY`].
    fn panicked(&self, what: &str, panic: &(dyn std::any::Any + Send)) {
        self.pool.state().ng.panicked();
        let now = Instant::now();
        let mut last = self.panic_logged.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < PANIC_LOG_EVERY) {
            return;
        }
        *last = Some(now);
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        tracing::error!(
            during = what,
            panic = message,
            "panic handling an ng request: answered error, the server goes on"
        );
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, CookieCache<SocketAddr>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A random 12-hex instance id, like rtpengine's.
pub fn random_instance() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// Serves ng on `socket` until the task is dropped.
pub async fn run(socket: UdpSocket, server: Arc<NgServer>) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "ng recv");
                continue;
            }
        };
        if !server.within_rate(from) {
            continue;
        }
        let datagram = &buf[..len];
        // A panic decoding one request costs that request only (answered as malformed).
        CATCHING.with(|c| c.set(true));
        let parsed = std::panic::catch_unwind(|| Message::parse(datagram));
        CATCHING.with(|c| c.set(false));
        let parsed = parsed.unwrap_or_else(|p| {
            server.panicked("decode", &*p);
            Err(bridgepool_ng::DecodeError::NotADict)
        });
        let message = match parsed {
            Ok(m) => m,
            Err(e) => {
                server.counters.malformed.fetch_add(1, Ordering::Relaxed);
                server.pool.state().ng.reply(metrics::MALFORMED, 1, None);
                tracing::debug!(%from, error = %e, "malformed ng datagram");
                if let Ok((cookie, _)) = split_cookie(datagram) {
                    let body = reply::error(reasons::MALFORMED);
                    let out = reply::frame_reply(cookie, &body, Encoding::Bencode, MAX_DATAGRAM);
                    let _ = socket.send_to(&out, from).await;
                }
                continue;
            }
        };
        let lookup = server.cache().lookup(&message.cookie, from, Instant::now());
        match lookup {
            Lookup::Cached(out) => {
                server.counters.resends.fetch_add(1, Ordering::Relaxed);
                let command = message.body.str("command").unwrap_or_default();
                server
                    .pool
                    .state()
                    .ng
                    .reply(metrics::NgMetrics::command_index(command), 2, None);
                let _ = socket.send_to(&out, from).await;
            }
            Lookup::InFlight => {
                server.counters.resends.fetch_add(1, Ordering::Relaxed);
            }
            Lookup::New => {
                server.counters.requests.fetch_add(1, Ordering::Relaxed);
                let (server, socket) = (server.clone(), socket.clone());
                tokio::spawn(async move { handle(&server, &socket, message, from).await });
            }
        }
    }
}

async fn handle(server: &NgServer, socket: &UdpSocket, message: Message, from: SocketAddr) {
    let command = message.body.str("command").unwrap_or_default().to_owned();
    let span = tracing::info_span!("ng", %command, call_id = message.body.str("call-id").unwrap_or_default());
    let started = Instant::now();
    let hook = server.panic_hook && command == TEST_PANIC_COMMAND;
    let mut work = Box::pin(tracing::Instrument::instrument(
        async {
            if hook {
                panic!("test panic injected through BRIDGEPOOL_TEST_PANIC_HOOK");
            }
            commands::dispatch(&server.pool, &server.calls, &server.instance, &message.body).await
        },
        span,
    ));
    // Each poll under catch_unwind: a panic in one request's handling answers it `error` (and
    // completes its cookie, so resends get that answer) instead of leaving it in flight forever.
    let handled = std::future::poll_fn(|cx| {
        CATCHING.with(|c| c.set(true));
        let polled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work.as_mut().poll(cx)));
        CATCHING.with(|c| c.set(false));
        match polled {
            Ok(std::task::Poll::Ready(body)) => std::task::Poll::Ready(Ok(body)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    })
    .await;
    drop(work);
    let body = handled.unwrap_or_else(|panic| {
        server.panicked(&command, &*panic);
        reply::error(INTERNAL_ERROR)
    });
    let failed = body.str("result") == Some("error");
    let outcome = match body.str("result") {
        Some("error") => 1,
        Some("load limit") => 3,
        _ => 0,
    };
    server.pool.state().ng.reply(
        metrics::NgMetrics::command_index(&command),
        outcome,
        Some(started.elapsed()),
    );
    if failed {
        server.counters.errors.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%command, reason = body.str("error-reason").unwrap_or_default(), "ng error reply");
    }
    tracing::debug!(%command, took_us = started.elapsed().as_micros() as u64, "ng reply");
    let out = reply::frame_reply(&message.cookie, &body, message.encoding, MAX_DATAGRAM);
    let waiters = server
        .cache()
        .complete(&message.cookie, out.clone(), Instant::now());
    let _ = socket.send_to(&out, from).await;
    // A resend from the same socket needs no second copy: a relay's pooled socket would read the
    // surplus as a stale reply to its next request.
    let mut sent = vec![from];
    for w in waiters {
        if !sent.contains(&w) {
            let _ = socket.send_to(&out, w).await;
            sent.push(w);
        }
    }
}
