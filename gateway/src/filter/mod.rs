//! The filter host: proxy-wasm modules in wasmtime.
