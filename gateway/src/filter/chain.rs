//! The public face the HTTP core uses: a `FilterChain` of loaded filters
//! and a `ChainRun` walking one request through it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use http_body::Body as _;

use super::body::{drive_body, resume_body, Driven, FilteredBody};
use super::convert;
use super::core::{Bound, Dir, OwnCall, Phase, RunCore, Step};
use super::engine::FilterHost;
use super::pool::{FilterStatus, LoadedFilter};
use super::state::{RequestMeta, StreamState};
use super::CalloutResult;
use crate::config::filter::FilterConfig;
use crate::http::body::Body;

/// Ordered filters; cheap to clone.
#[derive(Clone)]
pub struct FilterChain {
    filters: Arc<[Arc<LoadedFilter>]>,
}

/// A request's callouts in flight: (filter, token, answer).
type Callouts = FuturesUnordered<BoxFuture<'static, (usize, u32, CalloutResult)>>;

/// A request's walk through the chain; binds it to one instance of each
/// filter for its whole life.
pub struct ChainRun {
    core: Arc<Mutex<RunCore>>,
    /// This request's callouts in flight; made on the first one.
    calls: Option<Callouts>,
    finished: bool,
    /// The request's span, parent of the filter call spans (tracing on).
    trace: Option<opentelemetry::Context>,
    /// The filter that answered the request itself, if one did.
    answered_by: Option<usize>,
}

impl std::fmt::Debug for FilterChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.filters.iter().map(|x| x.name()))
            .finish()
    }
}

impl FilterChain {
    pub fn empty() -> FilterChain {
        FilterChain {
            filters: Arc::from(Vec::new()),
        }
    }

    /// Compiles (off the async workers, a few at once), instantiates and
    /// starts every filter. Never fails as a whole: a filter that fails to
    /// load stays in the chain as unavailable, and its failure policy
    /// applies to requests.
    pub async fn load(host: &Arc<FilterHost>, filters: &[FilterConfig]) -> FilterChain {
        let loaded = super::loading::load_all(host, filters.iter().cloned()).await;
        FilterChain {
            filters: loaded.into_iter().map(Arc::new).collect(),
        }
    }

    /// As [`load`](Self::load), carrying over the filters of `previous`
    /// (the configuration in force) that did not change.
    pub async fn load_reusing(
        host: &Arc<FilterHost>,
        filters: &[FilterConfig],
        previous: &super::loading::LoadedSet,
    ) -> FilterChain {
        FilterChain {
            filters: previous.load_all(host, filters).await.into(),
        }
    }

    /// A chain of filters loaded elsewhere (the filter folder).
    pub(crate) fn from_loaded(filters: Vec<Arc<LoadedFilter>>) -> FilterChain {
        FilterChain {
            filters: Arc::from(filters),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    pub fn status(&self) -> Vec<FilterStatus> {
        self.filters.iter().map(|f| f.status()).collect()
    }

    /// `None` when the chain is empty.
    pub fn start(&self, meta: RequestMeta) -> Option<ChainRun> {
        if self.filters.is_empty() {
            return None;
        }
        let (stream, mut bound) = spare::take();
        let stream = match stream {
            Some(mut stream) => {
                stream.meta = meta;
                stream
            }
            None => Box::new(StreamState::new(meta)),
        };
        bound.extend(self.filters.iter().map(|_| Bound::Unbound));
        let core = RunCore {
            filters: self.filters.clone(),
            stream: Some(stream),
            bound,
            calls: Vec::new(),
        };
        Some(ChainRun {
            core: Arc::new(Mutex::new(core)),
            calls: None,
            finished: false,
            trace: None,
            answered_by: None,
        })
    }
}

impl ChainRun {
    fn core(&self) -> std::sync::MutexGuard<'_, RunCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends the callouts the last callbacks made; their answers come back
    /// to this request's task.
    fn dispatch_calls(&mut self) {
        let own: Vec<OwnCall> = std::mem::take(&mut self.core().calls);
        self.dispatch(own);
    }

    /// Sends callouts `own`, taken from the run's core.
    fn dispatch(&mut self, own: Vec<OwnCall>) {
        for OwnCall { filter, call } in own {
            let host = self.core().filters[filter].host().clone();
            self.calls
                .get_or_insert_with(FuturesUnordered::new)
                .push(Box::pin(async move {
                    let r = host
                        .shared
                        .callouts
                        .call(&call.cluster, call.request, call.timeout)
                        .await;
                    (filter, call.token, r)
                }));
        }
    }

    /// Makes filter calls children of the request's span.
    pub fn set_trace(&mut self, trace: Option<&crate::trace::RequestTrace>) {
        self.trace = trace.map(|t| t.context().clone());
    }

    /// The name of the filter that answered the request itself, if any.
    pub fn answered_by(&self) -> Option<Arc<str>> {
        let i = self.answered_by?;
        Some(self.core().filters.get(i)?.shared_name().clone())
    }

    /// Runs `phase` on filter `i`, waiting out a pause.
    async fn step(&mut self, i: usize, dir: Dir, phase: Phase) -> Result<(), http::Response<Body>> {
        // One lock of the run for the check, the call and its callouts.
        let (mut span, step, own) = {
            let mut core = self.core();
            if !core.calls(i, dir, phase) {
                return Ok(());
            }
            let span = Self::call_span(self.trace.as_ref(), &core, i, dir, phase);
            let step = core.call(i, dir, phase);
            (span, step, std::mem::take(&mut core.calls))
        };
        if !own.is_empty() {
            self.dispatch(own);
        }
        let result = match step {
            Step::Continue => Ok(()),
            Step::Respond(r) => Err(r),
            // Boxed: the wait (a timer, a select) is built only by a request
            // that pauses, and the step of every other stays small to move.
            Step::Pause => Box::pin(self.wait(i, dir)).await,
        };
        if let Err(r) = &result {
            self.answered_by = Some(i);
            span.answered(r.status().as_u16());
        }
        result
    }

    /// The span of one callback of filter `i` (nothing when tracing is off).
    fn call_span(
        trace: Option<&opentelemetry::Context>,
        core: &RunCore,
        i: usize,
        dir: Dir,
        phase: Phase,
    ) -> crate::trace::FilterCall {
        let name = match trace {
            Some(_) => core.filters[i].name().to_string(),
            None => String::new(),
        };
        let phase = match (dir, phase) {
            (Dir::Request, Phase::Headers(..)) => "request_headers",
            (Dir::Request, Phase::Body(..)) => "request_body",
            (Dir::Request, Phase::Trailers(..)) => "request_trailers",
            (Dir::Response, Phase::Headers(..)) => "response_headers",
            (Dir::Response, Phase::Body(..)) => "response_body",
            (Dir::Response, Phase::Trailers(..)) => "response_trailers",
        };
        crate::trace::FilterCall::start(trace, &name, phase)
    }

    /// Waits until filter `i` resumes the stream (after a callout answer,
    /// a tick, a queue message), answers it, or fails.
    async fn wait(&mut self, i: usize, dir: Dir) -> Result<(), http::Response<Body>> {
        let (signal, limit, name) = {
            let core = self.core();
            let Bound::Active { cell, ctx, .. } = &core.bound[i] else {
                return Ok(());
            };
            let signal = cell
                .lock()
                .store
                .data_mut()
                .signals
                .entry(*ctx)
                .or_default()
                .get_or_insert_with(Default::default)
                .clone();
            let f = &core.filters[i];
            (
                signal,
                f.config.max_callout_timeout + Duration::from_secs(1),
                f.name().to_string(),
            )
        };
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let step = tokio::select! {
                Some((filter, token, result)) = next_call(&mut self.calls), if self.calls.as_ref().is_some_and(|c| !c.is_empty()) => {
                    let s = self.core().deliver(filter, dir, token, result);
                    self.dispatch_calls();
                    s
                }
                () = signal.notify.notified() => {
                    let e = std::mem::take(&mut *signal.effects.lock().unwrap_or_else(|p| p.into_inner()));
                    self.core().resolve(dir, 1, e.local_response, e.close, e.continue_request, e.continue_response)
                }
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(filter = %name, "filter paused the stream for longer than {limit:?}");
                    let core = self.core();
                    return match core.filters[i].config.failure {
                        crate::config::filter::FailurePolicy::Closed => Err(super::answers::failure_response(&name)),
                        crate::config::filter::FailurePolicy::Open => Ok(()),
                    };
                }
            };
            match step {
                Step::Continue => return Ok(()),
                Step::Respond(r) => return Err(r),
                Step::Pause => {}
            }
        }
    }

    /// Request phase: `proxy_on_request_headers` for each filter in order,
    /// then the body callbacks as the body streams.
    pub async fn on_request(
        &mut self,
        mut req: http::Request<Body>,
    ) -> Result<http::Request<Body>, http::Response<Body>> {
        self.filter_request(&mut req).await?;
        Ok(req)
    }

    /// [`on_request`](Self::on_request) on a request held by the caller:
    /// the request stays in one place (the exchange's) instead of being
    /// moved into and out of every future on the way.
    pub async fn filter_request(
        &mut self,
        req: &mut http::Request<Body>,
    ) -> Result<(), http::Response<Body>> {
        let eos = req.body().is_end_stream();
        let n = {
            let mut core = self.core();
            if let Some(s) = core.stream.as_deref_mut() {
                // Lent, not copied: a filter that only reads a field or
                // two costs no copy of the others.
                s.request_headers.lend(req, s.meta.scheme);
                s.protocol = req.version();
            }
            core.filters.len()
        };
        let headers_phase = self.request_headers_phase(n, eos).await;
        {
            let mut core = self.core();
            // Callbacks after this phase (bodies, the response, the log)
            // may still read the request's fields: they get a copy.
            let keep = core.any_active(|w| w.request_body || w.response);
            if let Some(s) = core.stream.as_deref_mut() {
                s.request_headers.give_back(req, keep);
                if headers_phase.is_ok() {
                    convert::apply_request(&s.request_headers, req);
                }
            }
        }
        headers_phase?;
        if self.body_may_change(req.body(), Dir::Request) {
            let body = std::mem::replace(req.body_mut(), crate::http::body::empty());
            // Boxed, as `wait`: only a request whose filters read bodies
            // carries the body's state.
            let body = Box::pin(self.body(body, Dir::Request)).await?;
            reframe_if_whole(req.headers_mut(), &body);
            *req.body_mut() = body;
        }
        Ok(())
    }

    /// `proxy_on_request_headers` of each of the `n` filters in order,
    /// each bound to an instance first.
    async fn request_headers_phase(
        &mut self,
        n: usize,
        eos: bool,
    ) -> Result<(), http::Response<Body>> {
        for i in 0..n {
            let count = {
                let mut core = self.core();
                if let Some(r) = core.bind(i) {
                    drop(core);
                    self.answered_by = Some(i);
                    return Err(r);
                }
                core.stream.as_ref().map_or(0, |s| s.request_headers.len())
            };
            self.step(i, Dir::Request, Phase::Headers(count, eos))
                .await?;
        }
        Ok(())
    }

    /// The cluster a filter chose through the property `gateway.upstream`.
    pub fn upstream_override(&self) -> Option<Arc<str>> {
        self.core().stream.as_ref().and_then(|s| s.upstream.clone())
    }

    /// A property a filter of this chain set (`proxy_set_property`), by
    /// its NUL-joined path (e.g. `gateway.hash_key`).
    pub fn property(&self, path: &[u8]) -> Option<Vec<u8>> {
        let core = self.core();
        let stream = core.stream.as_ref()?;
        stream
            .properties
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
    }

    /// Response phase: `proxy_on_response_headers` for each filter in
    /// reverse order (as Envoy runs encoder filters), then the body.
    pub async fn on_response(&mut self, mut resp: http::Response<Body>) -> http::Response<Body> {
        self.filter_response(&mut resp).await;
        resp
    }

    /// [`on_response`](Self::on_response) on a response held by the
    /// caller; a filter's own answer replaces it.
    pub async fn filter_response(&mut self, resp: &mut http::Response<Body>) {
        let order = {
            let mut core = self.core();
            // Copied for the filters only if one of them can read them.
            let read = core.any_active(|w| w.response);
            if let Some(s) = core.stream.as_deref_mut() {
                if read {
                    s.response_headers = convert::response_headers(resp);
                }
                s.response_code = Some(resp.status().as_u16());
            }
            // No filter of the chain has a response callback (most do not):
            // the response passes untouched, with no phase walked.
            let body = !resp.body().is_end_stream() && core.wants_body(Dir::Response);
            if !body && !core.any_active(|w| w.response_headers) {
                return;
            }
            core.order(Dir::Response)
        };
        let eos = resp.body().is_end_stream();
        for i in order {
            let count = self
                .core()
                .stream
                .as_ref()
                .map_or(0, |s| s.response_headers.pairs.len());
            if let Err(r) = self
                .step(i, Dir::Response, Phase::Headers(count, eos))
                .await
            {
                *resp = r;
                return;
            }
        }
        if let Some(s) = self.core().stream.as_deref_mut() {
            convert::apply_response(&s.response_headers, resp);
            s.response_code = Some(resp.status().as_u16());
        }
        if self.body_may_change(resp.body(), Dir::Response) {
            let body = std::mem::replace(resp.body_mut(), crate::http::body::empty());
            match Box::pin(self.body(body, Dir::Response)).await {
                Ok(body) => {
                    reframe_if_whole(resp.headers_mut(), &body);
                    *resp.body_mut() = body;
                }
                Err(r) => *resp = r,
            }
        }
    }

    /// Whether a filter will see (and so may resize) this body.
    fn body_may_change(&self, body: &Body, dir: Dir) -> bool {
        !body.is_end_stream() && self.core().wants_body(dir)
    }

    /// Runs body callbacks: the first chunks here (so a buffering filter
    /// can still answer 413/502), the rest as the body streams. Called
    /// only for a body a filter will see ([`body_may_change`](Self::body_may_change)).
    async fn body(&mut self, body: Body, dir: Dir) -> Result<Body, http::Response<Body>> {
        let driven = drive_body(&self.core, body, dir).await;
        self.dispatch_calls();
        let mut driven = driven?;
        loop {
            match driven {
                Driven::Done(ready, rest) => {
                    return Ok(FilteredBody::body(self.core.clone(), dir, ready, rest))
                }
                Driven::PausedAtEnd {
                    filter,
                    next,
                    ready,
                } => {
                    self.dispatch_calls();
                    self.wait(filter, dir).await?;
                    driven = resume_body(&self.core, dir, next, ready)?;
                }
            }
        }
    }

    /// The request ended: `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`.
    pub fn finish(mut self) {
        self.finish_now();
    }

    /// Records the final status for `response.code` before finishing.
    pub fn set_response_code(&mut self, code: u16) {
        if let Some(s) = self.core().stream.as_deref_mut() {
            s.response_code = Some(code);
        }
    }

    fn finish_now(&mut self) {
        if !self.finished {
            self.finished = true;
            self.core().finish();
        }
    }
}

/// A body a filter saw and that is now whole (a filter buffered it) is
/// framed by its real length, whether or not the filter removed a stale
/// `content-length` as our SDK does: the header goes and the HTTP layer
/// writes the exact length. A body still streaming keeps the header; a
/// filter that resizes chunks as they pass must remove it (our SDK does),
/// or the mismatch ends the message in error instead of desynchronising
/// the connection.
fn reframe_if_whole(headers: &mut http::HeaderMap, body: &Body) {
    if body.size_hint().exact().is_some() {
        headers.remove(http::header::CONTENT_LENGTH);
    }
}

/// The next answer among `calls` (pending forever when there are none).
async fn next_call(calls: &mut Option<Callouts>) -> Option<(usize, u32, CalloutResult)> {
    match calls {
        Some(calls) => calls.next().await,
        None => std::future::pending().await,
    }
}

impl Drop for ChainRun {
    fn drop(&mut self) {
        self.finish_now();
        // A run no response body shares any more gives its stream state
        // and binding list to the next request of this thread.
        if let Some(core) = Arc::get_mut(&mut self.core) {
            let core = core.get_mut().unwrap_or_else(|p| p.into_inner());
            spare::put(core.stream.take(), std::mem::take(&mut core.bound));
        }
    }
}

/// Finished requests' stream states and binding lists, kept on each
/// worker thread for its next requests, which then allocate neither.
mod spare {
    use std::cell::RefCell;

    use super::{Bound, StreamState};

    /// Kept per thread, at most.
    const KEEP: usize = 32;

    #[derive(Default)]
    struct Spare {
        // Boxed as the run holds them: a kept one moves in as it is.
        #[allow(clippy::vec_box)]
        streams: Vec<Box<StreamState>>,
        bound: Vec<Vec<Bound>>,
    }

    thread_local! {
        static SPARE: RefCell<Spare> = RefCell::default();
    }

    /// A cleared stream state, if one is kept, and an empty binding list.
    pub(super) fn take() -> (Option<Box<StreamState>>, Vec<Bound>) {
        SPARE
            .try_with(|s| {
                let mut s = s.borrow_mut();
                (s.streams.pop(), s.bound.pop().unwrap_or_default())
            })
            .unwrap_or_default()
    }

    /// Keeps what a finished run leaves, emptied of its request.
    pub(super) fn put(stream: Option<Box<StreamState>>, mut bound: Vec<Bound>) {
        let stream = stream.and_then(|mut s| s.clear().then_some(s));
        bound.clear();
        let _ = SPARE.try_with(|s| {
            let mut s = s.borrow_mut();
            if let Some(stream) = stream {
                if s.streams.len() < KEEP {
                    s.streams.push(stream);
                }
            }
            if bound.capacity() != 0 && s.bound.len() < KEEP {
                s.bound.push(bound);
            }
        });
    }
}
