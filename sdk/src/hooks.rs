//! Which hooks a filter implements, declared to the host so that it skips
//! the callbacks whose hooks would do nothing (`Filter::HOOKS`).

/// A set of [`Filter`](crate::Filter) hooks. Declare the ones your filter
/// implements with [`Filter::HOOKS`](crate::Filter::HOOKS); the gateway then
/// never calls into the filter for the others (a filter that only reads
/// request headers does not see response bodies pass through it).
///
/// A body hook brings the headers hook and the trailers of its direction
/// with it (the body plan is chosen in the headers hook, and a buffered body
/// completes at the trailers). Hooks left out do not run on any host: the
/// SDK skips them too, so the declaration never changes what a filter does.
///
/// ```
/// # use gateway_sdk::{Filter, Hooks, Decision, Request};
/// struct Deny;
/// impl Filter for Deny {
///     type Config = ();
///     const HOOKS: Hooks = Hooks::REQUEST;
///     fn new(_: &std::rc::Rc<()>) -> Self { Deny }
///     fn on_request(&mut self, _: &mut Request) -> Decision<Self> {
///         Decision::respond(403, "no\n")
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hooks(u8);

impl Hooks {
    /// No hook: the filter only runs [`Filter::new`](crate::Filter::new) per request.
    pub const NONE: Hooks = Hooks(0);
    /// [`Filter::on_request`](crate::Filter::on_request).
    pub const REQUEST: Hooks = Hooks(1);
    /// [`Filter::on_request_body`](crate::Filter::on_request_body), or a
    /// request body buffered with [`Request::buffer_body`](crate::Request::buffer_body).
    pub const REQUEST_BODY: Hooks = Hooks(2 | 1 | 4);
    /// [`Filter::on_request_trailers`](crate::Filter::on_request_trailers).
    pub const REQUEST_TRAILERS: Hooks = Hooks(4);
    /// [`Filter::on_response`](crate::Filter::on_response).
    pub const RESPONSE: Hooks = Hooks(8);
    /// [`Filter::on_response_body`](crate::Filter::on_response_body), or a
    /// response body buffered with [`Response::buffer_body`](crate::Response::buffer_body).
    pub const RESPONSE_BODY: Hooks = Hooks(16 | 8 | 32);
    /// [`Filter::on_response_trailers`](crate::Filter::on_response_trailers).
    pub const RESPONSE_TRAILERS: Hooks = Hooks(32);
    /// [`Filter::on_complete`](crate::Filter::on_complete).
    pub const COMPLETE: Hooks = Hooks(64);
    /// Every hook (the default: the host calls every callback).
    pub const ALL: Hooks = Hooks(127);

    /// Both sets: `Hooks::REQUEST.and(Hooks::RESPONSE)`.
    pub const fn and(self, other: Hooks) -> Hooks {
        Hooks(self.0 | other.0)
    }

    /// Whether every hook of `other` is in this set.
    pub const fn contains(self, other: Hooks) -> bool {
        self.0 & other.0 == other.0
    }
}

/// The proxy-wasm callbacks each hook bit needs, in bit order.
const CALLBACKS: [&str; 7] = [
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_log",
];

/// The callbacks a [`Hooks`] bit stands for, in bit order.
#[derive(Clone, Copy)]
pub(crate) enum Callback {
    RequestHeaders = 0,
    RequestBody = 1,
    RequestTrailers = 2,
    ResponseHeaders = 3,
    ResponseBody = 4,
    ResponseTrailers = 5,
    Log = 6,
}

impl Hooks {
    /// Whether the host is asked for `callback`.
    pub(crate) const fn calls(self, callback: Callback) -> bool {
        self.0 & (1 << callback as u8) != 0
    }

    /// Whether no callback but the request's headers is asked for: no
    /// hook of the filter runs after that one decided.
    pub(crate) const fn is_request_only(self) -> bool {
        self.0 & !Hooks::REQUEST.0 == 0
    }
}

/// A filter's hooks as the host will call them: its declaration, plus the
/// body hooks its body limits need.
#[doc(hidden)]
pub const fn effective<F: crate::Filter>() -> Hooks {
    let mut hooks = F::HOOKS;
    if F::REQUEST_BODY_LIMIT.is_some() {
        hooks = hooks.and(Hooks::REQUEST_BODY);
    }
    if F::RESPONSE_BODY_LIMIT.is_some() {
        hooks = hooks.and(Hooks::RESPONSE_BODY);
    }
    hooks
}

/// The options every SDK filter declares after its callbacks (docs/abi.md):
/// it creates an HTTP context's state at the first callback naming it, so
/// the host may skip `proxy_on_context_create` for HTTP contexts; and a
/// filter whose only hook is the request's headers keeps no state for a
/// context once that hook decided without a callout, so the host may skip
/// `proxy_on_delete` for it (`Runtime::with_request_stream`).
const OPTIONS: [&str; 2] = ["lazy_http_contexts", "transient_http_contexts"];

/// Length of the `gateway.callbacks` custom section for `hooks`.
#[doc(hidden)]
pub const fn section_len(hooks: Hooks) -> usize {
    let mut len = OPTIONS[0].len() + 1 + OPTIONS[1].len() + 1;
    let mut bit = 0;
    while bit < CALLBACKS.len() {
        if hooks.0 & (1 << bit) != 0 {
            len += CALLBACKS[bit].len() + 1;
        }
        bit += 1;
    }
    len
}

/// The `gateway.callbacks` custom section: the callbacks to call, then
/// the options, one per line (docs/abi.md). `N` is
/// [`section_len`] of the same hooks.
#[doc(hidden)]
pub const fn section<const N: usize>(hooks: Hooks) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    let mut bit = 0;
    while bit < CALLBACKS.len() {
        if hooks.0 & (1 << bit) != 0 {
            at = put_line(&mut out, at, CALLBACKS[bit]);
        }
        bit += 1;
    }
    at = put_line(&mut out, at, OPTIONS[0]);
    put_line(&mut out, at, OPTIONS[1]);
    out
}

/// Writes `name` and a newline at `at`; returns where the next line starts.
const fn put_line<const N: usize>(out: &mut [u8; N], mut at: usize, name: &str) -> usize {
    let name = name.as_bytes();
    let mut i = 0;
    while i < name.len() {
        out[at] = name[i];
        at += 1;
        i += 1;
    }
    out[at] = b'\n';
    at + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_lists_the_callbacks_of_the_declared_hooks() {
        const H: Hooks = Hooks::REQUEST.and(Hooks::COMPLETE);
        let s: [u8; section_len(H)] = section(H);
        assert_eq!(
            &s[..],
            b"proxy_on_request_headers\nproxy_on_log\nlazy_http_contexts\ntransient_http_contexts\n"
        );
        let body = Hooks::RESPONSE_BODY;
        assert!(body.contains(Hooks::RESPONSE) && body.contains(Hooks::RESPONSE_TRAILERS));
        assert!(!body.contains(Hooks::REQUEST));
        let none: [u8; section_len(Hooks::NONE)] = section(Hooks::NONE);
        assert_eq!(&none[..], b"lazy_http_contexts\ntransient_http_contexts\n");
        assert_eq!(
            section_len(Hooks::ALL),
            CALLBACKS.iter().map(|c| c.len() + 1).sum::<usize>()
                + OPTIONS.iter().map(|o| o.len() + 1).sum::<usize>()
        );
    }

    #[test]
    fn only_the_request_hook_alone_is_request_only() {
        assert!(Hooks::REQUEST.is_request_only());
        assert!(Hooks::NONE.is_request_only());
        assert!(!Hooks::REQUEST.and(Hooks::COMPLETE).is_request_only());
        assert!(!Hooks::REQUEST_BODY.is_request_only());
        assert!(!Hooks::RESPONSE.is_request_only());
        assert!(!Hooks::ALL.is_request_only());
    }
}
