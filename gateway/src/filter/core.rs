//! One request's synchronous core: which instance and context each filter
//! uses, the stream state, and one guest callback at a time with its
//! outcome (continue, pause, answer) decided by the filter's failure policy.

use std::sync::Arc;

use bytes::Bytes;

use super::answers::{failure_response, local_response, status_response};
use super::exports::Wants;
use super::instance::{FilterInstance, GuestFault, InstanceCell};
use super::pool::LoadedFilter;
use super::state::{Effects, LocalResponse, PendingCall, StreamState, ROOT_CONTEXT};
use crate::config::filter::FailurePolicy;
use crate::http::body::Body;

/// A filter's binding for this request.
pub(crate) enum Bound {
    /// Not reached yet.
    Unbound,
    /// Skipped (failed open, or finished).
    Skipped,
    Active {
        cell: Arc<InstanceCell>,
        ctx: u32,
        /// The context dispatched a callout: its module keeps state for
        /// it until `proxy_on_delete`, transient contexts included.
        called_out: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dir {
    Request,
    Response,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Phase {
    Headers(usize, bool),
    Body(usize, bool),
    Trailers(usize),
}

pub(crate) enum Step {
    Continue,
    Pause,
    Respond(http::Response<Body>),
}

pub(crate) enum BodyStep {
    Emit(Bytes),
    Hold,
    Fail(http::Response<Body>),
    /// Filter `filter` paused at the end of the body; the walk resumes at
    /// position `next` once it continues.
    PausedAtEnd {
        filter: usize,
        next: usize,
    },
}

/// A callout of this request, owned by the request's task.
pub(crate) struct OwnCall {
    pub filter: usize,
    pub call: PendingCall,
}

pub(crate) struct RunCore {
    pub filters: Arc<[Arc<LoadedFilter>]>,
    pub stream: Option<Box<StreamState>>,
    pub bound: Vec<Bound>,
    pub calls: Vec<OwnCall>,
}

fn run_phase(
    inst: &mut FilterInstance,
    ctx: u32,
    dir: Dir,
    phase: Phase,
) -> Result<i32, GuestFault> {
    let c = ctx as i32;
    let r = match (dir, phase) {
        (Dir::Request, Phase::Headers(n, eos)) => inst
            .callback(
                |cb| cb.request_headers.as_ref(),
                (c, n as i32, i32::from(eos)),
            )
            // As the reference host, headers' ContinueAndEndStream (2) continues.
            .map(|a| a.map(|a| if a == 2 { 0 } else { a })),
        (Dir::Response, Phase::Headers(n, eos)) => inst
            .callback(
                |cb| cb.response_headers.as_ref(),
                (c, n as i32, i32::from(eos)),
            )
            .map(|a| a.map(|a| if a == 2 { 0 } else { a })),
        (Dir::Request, Phase::Body(n, eos)) => {
            inst.callback(|cb| cb.request_body.as_ref(), (c, n as i32, i32::from(eos)))
        }
        (Dir::Response, Phase::Body(n, eos)) => inst.callback(
            |cb| cb.response_body.as_ref(),
            (c, n as i32, i32::from(eos)),
        ),
        (Dir::Request, Phase::Trailers(n)) => {
            inst.callback(|cb| cb.request_trailers.as_ref(), (c, n as i32))
        }
        (Dir::Response, Phase::Trailers(n)) => {
            inst.callback(|cb| cb.response_trailers.as_ref(), (c, n as i32))
        }
    };
    r.map(|a| a.unwrap_or(0))
}

impl RunCore {
    /// Binds filter `i` to an instance and creates its HTTP context.
    /// `Some(response)` when the filter is unavailable and fails closed.
    pub fn bind(&mut self, i: usize) -> Option<http::Response<Body>> {
        let filter = self.filters[i].clone();
        let cell = match filter.acquire() {
            Ok(cell) => cell,
            Err(reason) => {
                tracing::debug!(filter = %filter.name(), "filter unavailable: {reason}");
                self.bound[i] = Bound::Skipped;
                return match filter.config.failure {
                    FailurePolicy::Closed => Some(failure_response(filter.name())),
                    FailurePolicy::Open => None,
                };
            }
        };
        let r = {
            let mut inst = cell.lock();
            let ctx = inst.next_context();
            inst.store.data_mut().signals.insert(ctx, None);
            if inst.cb.lazy_http_contexts {
                // The guest makes the context at its first callback.
                drop(inst);
                self.bound[i] = Bound::Active {
                    cell,
                    ctx,
                    called_out: false,
                };
                return None;
            }
            let r = inst.root_call(|i| {
                i.callback(
                    |cb| cb.context_create.as_ref(),
                    (ctx as i32, ROOT_CONTEXT as i32),
                )
                .map(drop)
            });
            r.map(|()| ctx).map_err(|fault| (fault, ctx))
        };
        match r {
            Ok(ctx) => {
                self.bound[i] = Bound::Active {
                    cell,
                    ctx,
                    called_out: false,
                };
                None
            }
            // The instance's very first HTTP context: the module has none.
            Err((fault, ctx)) if ctx == ROOT_CONTEXT + 1 => {
                filter.no_http_context(&cell, &fault);
                self.bound[i] = Bound::Skipped;
                match filter.config.failure {
                    FailurePolicy::Closed => Some(failure_response(filter.name())),
                    FailurePolicy::Open => None,
                }
            }
            Err((fault, _)) => self.fail(i, &cell, &fault),
        }
    }

    /// A guest fault: the instance goes, the policy decides the request.
    fn fail(
        &mut self,
        i: usize,
        cell: &Arc<InstanceCell>,
        fault: &GuestFault,
    ) -> Option<http::Response<Body>> {
        let filter = &self.filters[i];
        filter.fault(cell, fault);
        self.bound[i] = Bound::Skipped;
        match filter.config.failure {
            FailurePolicy::Closed => Some(failure_response(filter.name())),
            FailurePolicy::Open => None,
        }
    }

    pub fn active(&self, i: usize) -> Option<(Arc<InstanceCell>, u32)> {
        match &self.bound[i] {
            Bound::Active { cell, ctx, .. } => Some((cell.clone(), *ctx)),
            _ => None,
        }
    }

    /// Whether an active filter's module has a callback `want` picks.
    pub fn any_active(&self, want: impl Fn(&Wants) -> bool) -> bool {
        (0..self.filters.len()).any(|i| self.active_wants(i).is_some_and(&want))
    }

    /// What filter `i`'s module implements, if it is active.
    fn active_wants(&self, i: usize) -> Option<&Wants> {
        match self.bound.get(i) {
            Some(Bound::Active { .. }) => self.filters[i].code.as_deref().map(|c| &c.wants),
            _ => None,
        }
    }

    /// Whether [`call`](Self::call) would run a callback of filter `i`. A
    /// missing callback continues with no effect, so a request skips the
    /// step, the instance's lock and the stream's hand-over. Body and
    /// trailer phases are gated as a whole by `wants_body`.
    pub fn calls(&self, i: usize, dir: Dir, phase: Phase) -> bool {
        let Some(wants) = self.active_wants(i) else {
            return false;
        };
        match (phase, dir) {
            (Phase::Headers(..), Dir::Request) => wants.request_headers,
            (Phase::Headers(..), Dir::Response) => wants.response_headers,
            _ => true,
        }
    }

    /// Runs one callback of filter `i` with the stream attached.
    pub fn call(&mut self, i: usize, dir: Dir, phase: Phase) -> Step {
        let Some((cell, ctx)) = self.active(i) else {
            return Step::Continue;
        };
        let (r, effects) = {
            let mut inst = cell.lock();
            inst.enter(ctx, self.stream.take());
            let r = run_phase(&mut inst, ctx, dir, phase);
            let (stream, effects) = inst.leave();
            self.stream = stream;
            (r, effects)
        };
        self.after(i, &cell, ctx, dir, r, effects)
    }

    /// Delivers a callout answer to filter `i`'s context.
    pub fn deliver(
        &mut self,
        i: usize,
        dir: Dir,
        token: u32,
        result: crate::filter::CalloutResult,
    ) -> Step {
        let Some((cell, ctx)) = self.active(i) else {
            return Step::Pause;
        };
        let (r, effects) = {
            let mut inst = cell.lock();
            inst.enter(ctx, self.stream.take());
            let r = inst.deliver_call(ctx, token, result).map(|()| 1);
            let (stream, effects) = inst.leave();
            self.stream = stream;
            (r, effects)
        };
        self.after(i, &cell, ctx, dir, r, effects)
    }

    /// Turns a callback's result and requests into the next step.
    pub fn after(
        &mut self,
        i: usize,
        cell: &Arc<InstanceCell>,
        ctx: u32,
        dir: Dir,
        r: Result<i32, GuestFault>,
        effects: Effects,
    ) -> Step {
        let action = match r {
            Ok(a) => a,
            Err(fault) => {
                return self
                    .fail(i, cell, &fault)
                    .map_or(Step::Continue, Step::Respond)
            }
        };
        let host = self.filters[i].host();
        if effects.tick_period.is_some() {
            super::tasks::apply_root_effects(
                host,
                cell,
                Effects {
                    tick_period: effects.tick_period,
                    ..Effects::default()
                },
            );
        }
        if !effects.calls.is_empty() {
            if let Some(Bound::Active { called_out, .. }) = self.bound.get_mut(i) {
                *called_out = true;
            }
        }
        for call in effects.calls {
            if call.context_id == ctx {
                self.calls.push(OwnCall { filter: i, call });
            } else {
                super::tasks::spawn_root_call(host, Arc::downgrade(cell), call);
            }
        }
        self.resolve(
            dir,
            action,
            effects.local_response,
            effects.close,
            effects.continue_request,
            effects.continue_response,
        )
    }

    pub fn resolve(
        &self,
        dir: Dir,
        action: i32,
        local: Option<LocalResponse>,
        close: bool,
        cont_req: bool,
        cont_resp: bool,
    ) -> Step {
        if let Some(lr) = local {
            return Step::Respond(local_response(lr));
        }
        if close {
            return Step::Respond(status_response(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "request closed by a filter\n",
            ));
        }
        let resumed = if dir == Dir::Request {
            cont_req
        } else {
            cont_resp
        };
        if action != 0 && !resumed {
            Step::Pause
        } else {
            Step::Continue
        }
    }

    /// Filter indexes in the order a direction visits them (responses in
    /// reverse, as Envoy runs encoder filters).
    pub fn order(&self, dir: Dir) -> impl Iterator<Item = usize> + use<> {
        let n = self.filters.len();
        (0..n).map(move |k| if dir == Dir::Request { k } else { n - 1 - k })
    }

    /// Sends callouts made while the body streams (no task of the request
    /// waits for them): answers reach the context without its stream.
    pub fn detach_calls(&mut self) {
        for OwnCall { filter, call } in std::mem::take(&mut self.calls) {
            if let Some((cell, _)) = self.active(filter) {
                super::tasks::spawn_root_call(
                    self.filters[filter].host(),
                    Arc::downgrade(&cell),
                    call,
                );
            }
        }
    }

    /// `proxy_on_done`, `proxy_on_log`, `proxy_on_delete` for every context.
    pub fn finish(&mut self) {
        for i in 0..self.bound.len() {
            let Bound::Active {
                cell,
                ctx,
                called_out,
            } = std::mem::replace(&mut self.bound[i], Bound::Skipped)
            else {
                continue;
            };
            let mut inst = cell.lock();
            if inst.cb.transient_http_contexts && !called_out {
                // The module kept nothing for this context (docs/abi.md).
                inst.store.data_mut().signals.remove(&ctx);
                drop(inst);
                self.filters[i].succeeded();
                continue;
            }
            inst.enter(ctx, self.stream.take());
            let c = ctx as i32;
            let r = inst
                .callback(|cb| cb.done.as_ref(), c)
                .and_then(|_| inst.callback(|cb| cb.log.as_ref(), c))
                .and_then(|_| inst.callback(|cb| cb.delete.as_ref(), c))
                .map(drop);
            let (stream, _) = inst.leave();
            self.stream = stream;
            inst.store.data_mut().signals.remove(&ctx);
            drop(inst);
            match r {
                Ok(()) => self.filters[i].succeeded(),
                Err(fault) => self.filters[i].fault(&cell, &fault),
            }
        }
    }
}
