//! Reading the gateway's Prometheus metrics from its admin listener.

use std::net::SocketAddr;

use crate::{Gateway, Http1Client};

/// The gateway's metrics as scraped now.
pub struct Scrape(String);

impl Scrape {
    /// Scrapes `/metrics` on the admin listener at `admin`.
    pub async fn take(admin: SocketAddr) -> Scrape {
        let mut client = Http1Client::connect(admin).await;
        let reply = client.get("/metrics").await;
        assert_eq!(reply.status, 200, "/metrics: {}", reply.text());
        Scrape(reply.text())
    }

    /// Scrapes the admin listener of `gateway` (which must have one).
    pub async fn of(gateway: &Gateway) -> Scrape {
        Scrape::take(gateway.admin.expect("the gateway has an admin listener")).await
    }

    /// The value of one series, written as in the text format
    /// (`name{label="v",...}`); 0 when it is not there yet.
    pub fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .find_map(|line| {
                let rest = line.strip_prefix(series)?;
                rest.strip_prefix(' ')?.trim().parse().ok()
            })
            .unwrap_or(0.0)
    }

    /// The whole text, for failure messages.
    pub fn text(&self) -> &str {
        &self.0
    }
}
