//! The filter host: proxy-wasm modules in wasmtime (placeholder surface
//! until the host lands: chains are always empty).

use std::net::SocketAddr;

use crate::http::body::Body;

#[derive(Clone, Default)]
pub struct FilterChain;

pub struct RequestMeta {
    pub id: String,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub scheme: &'static str,
    pub tls_version: Option<String>,
}

pub struct ChainRun;

impl FilterChain {
    pub fn empty() -> Self {
        FilterChain
    }
    pub fn is_empty(&self) -> bool {
        true
    }
    pub fn start(&self, _meta: RequestMeta) -> Option<ChainRun> {
        None
    }
}

impl ChainRun {
    pub async fn on_request(&mut self, req: http::Request<Body>) -> Result<http::Request<Body>, http::Response<Body>> {
        Ok(req)
    }
    pub fn upstream_override(&self) -> Option<String> {
        None
    }
    pub async fn on_response(&mut self, resp: http::Response<Body>) -> http::Response<Body> {
        resp
    }
    pub fn finish(self) {}
}
