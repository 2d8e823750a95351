//! A gateway configuration with an admin listener and one route per
//! cluster, and sending a run of requests on one connection.

// Each test file uses some of these helpers.
#![allow(dead_code)]

use gateway_tests::Http1Client;

/// A gateway with an admin listener, one route per cluster
/// (`/<cluster>/...`) and the clusters given.
pub fn config(clusters: &str) -> String {
    let names: Vec<&str> = clusters
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    let routes: String = names
        .iter()
        .map(|n| format!("[[listener.route]]\npath_prefix = \"/{n}\"\ncluster = \"{n}\"\n"))
        .collect();
    format!(
        r#"
[access_log]
enabled = false
[admin]
address = "127.0.0.1:0"
[[listener]]
name = "web"
protocol = "http"
address = "127.0.0.1:0"
{routes}
{clusters}
"#
    )
}

/// Sends `n` requests to `path` on one keep-alive connection; returns the
/// bodies (upstream names) with their statuses.
pub async fn send(client: &mut Http1Client, path: &str, n: usize) -> Vec<(u16, String)> {
    let mut replies = Vec::new();
    for _ in 0..n {
        let reply = client.get(path).await;
        replies.push((reply.status.as_u16(), reply.text()));
    }
    replies
}
