//! A filter's declared callbacks: the `gateway.callbacks` custom section an
//! SDK writes so the host skips the stream callbacks whose hooks do nothing.

/// The name of the custom section (docs/abi.md, "Declared callbacks").
pub(crate) const SECTION: &str = "gateway.callbacks";

/// The callbacks a declaration governs: per-request stream callbacks and
/// `proxy_on_done` (left out, it counts as having returned true: the
/// context is finished at once, as our SDK's answers). The others (context
/// creation and deletion, callout answers, ticks, queues) are always
/// called when exported.
pub(crate) const GOVERNED: &[&str] = &[
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_log",
    "proxy_on_done",
];

/// The option a module lists in the section when it creates an HTTP
/// context's state itself, at the first callback that names the context:
/// the host then does not call `proxy_on_context_create` for HTTP contexts
/// (one guest call less per filter and request). Root contexts are created
/// as before.
pub(crate) const LAZY_HTTP_CONTEXTS: &str = "lazy_http_contexts";

/// The option a module lists in the section when it keeps no state for an
/// HTTP context once its callbacks have returned, unless the context
/// dispatched a callout: with no stream callback declared but the
/// request's headers, the host then skips `proxy_on_delete` for a context
/// that made no callout (one guest call less per filter and request).
pub(crate) const TRANSIENT_HTTP_CONTEXTS: &str = "transient_http_contexts";

/// What a module declared: `None` without the section (every exported
/// callback is called, as before), else the governed callbacks it listed;
/// and whether it creates its HTTP contexts itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Declared {
    listed: Option<Vec<&'static str>>,
    lazy_http_contexts: bool,
    transient_http_contexts: bool,
}

impl Declared {
    /// Reads the section from a binary module; text (WAT) modules and
    /// modules without it declare nothing. Unknown names are ignored, so
    /// a newer SDK's declaration still loads here.
    pub fn read(wasm: &[u8]) -> Declared {
        if !wasm.starts_with(b"\0asm") {
            return Declared::default();
        }
        for payload in wasmparser::Parser::new(0).parse_all(wasm) {
            let Ok(payload) = payload else {
                // Compiling reports a malformed module with its reason.
                return Declared::default();
            };
            if let wasmparser::Payload::CustomSection(section) = payload {
                if section.name() == SECTION {
                    return parse(section.data());
                }
            }
        }
        Declared::default()
    }

    /// Whether the host may call export `name`.
    pub fn allows(&self, name: &str) -> bool {
        match &self.listed {
            None => true,
            Some(listed) => !GOVERNED.contains(&name) || listed.contains(&name),
        }
    }

    /// Whether the module creates its HTTP contexts itself
    /// ([`LAZY_HTTP_CONTEXTS`]).
    pub fn lazy_http_contexts(&self) -> bool {
        self.lazy_http_contexts
    }

    /// Whether the module keeps no state for a finished HTTP context that
    /// made no callout ([`TRANSIENT_HTTP_CONTEXTS`]).
    pub fn transient_http_contexts(&self) -> bool {
        self.transient_http_contexts
    }
}

/// Names, one per line (spaces and commas also separate them).
fn parse(data: &[u8]) -> Declared {
    let text = String::from_utf8_lossy(data);
    let names: Vec<&str> = text
        .split(|c: char| c == '\n' || c == ',' || c.is_whitespace())
        .collect();
    Declared {
        listed: Some(
            names
                .iter()
                .filter_map(|name| GOVERNED.iter().find(|g| **g == *name).copied())
                .collect(),
        ),
        lazy_http_contexts: names.contains(&LAZY_HTTP_CONTEXTS),
        transient_http_contexts: names.contains(&TRANSIENT_HTTP_CONTEXTS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module_with(section: Option<&[u8]>) -> Vec<u8> {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        if let Some(data) = section {
            let mut payload = vec![SECTION.len() as u8];
            payload.extend_from_slice(SECTION.as_bytes());
            payload.extend_from_slice(data);
            wasm.push(0);
            wasm.push(payload.len() as u8);
            wasm.extend_from_slice(&payload);
        }
        wasm
    }

    #[test]
    fn a_declaration_governs_stream_callbacks_only() {
        let d = Declared::read(&module_with(Some(
            b"proxy_on_request_headers\nproxy_on_future\n",
        )));
        assert!(d.allows("proxy_on_request_headers"));
        assert!(!d.allows("proxy_on_response_body"));
        assert!(!d.allows("proxy_on_log"));
        assert!(!d.allows("proxy_on_done"));
        assert!(d.allows("proxy_on_delete"));
        assert!(d.allows("proxy_on_http_call_response"));
    }

    #[test]
    fn without_a_declaration_everything_is_called() {
        for wasm in [
            module_with(None),
            b"(module)".to_vec(),
            b"\0asm\x01\0\0\0\0\xff".to_vec(),
        ] {
            let d = Declared::read(&wasm);
            assert!(GOVERNED.iter().all(|c| d.allows(c)), "{wasm:?}");
        }
        let empty = Declared::read(&module_with(Some(b"")));
        assert!(!GOVERNED.iter().any(|c| empty.allows(c)));
        assert!(!empty.lazy_http_contexts());
    }

    #[test]
    fn lazy_http_contexts_is_an_option_not_a_callback() {
        let d = Declared::read(&module_with(Some(
            b"proxy_on_request_headers,lazy_http_contexts",
        )));
        assert!(d.lazy_http_contexts());
        assert!(d.allows("proxy_on_request_headers"));
        assert!(!d.allows("proxy_on_log"));
        assert!(d.allows("proxy_on_context_create"));
        let alone = Declared::read(&module_with(Some(b"lazy_http_contexts")));
        assert!(alone.lazy_http_contexts());
        assert!(!GOVERNED.iter().any(|c| alone.allows(c)));
        assert!(!Declared::read(&module_with(None)).lazy_http_contexts());
    }

    #[test]
    fn transient_http_contexts_is_an_option_not_a_callback() {
        let d = Declared::read(&module_with(Some(
            b"proxy_on_request_headers\nlazy_http_contexts\ntransient_http_contexts\n",
        )));
        assert!(d.transient_http_contexts() && d.lazy_http_contexts());
        assert!(d.allows("proxy_on_request_headers"));
        assert!(!d.allows("proxy_on_log"));
        assert!(d.allows("proxy_on_delete"));
        let without = Declared::read(&module_with(Some(b"proxy_on_request_headers")));
        assert!(!without.transient_http_contexts());
        assert!(!Declared::read(&module_with(None)).transient_http_contexts());
    }
}
