//! Route lookup in a table of 1 route and of 10,000 (exact paths,
//! prefixes, exact and wildcard hosts), the matching route last; the
//! index against the ordered scan it replaced.
//! Run: `cargo bench -p gateway --bench route_lookup`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gateway::config::RouteConfig;
use gateway::filter::FilterChain;
use gateway::http::route::{Route, RouteTable};
use http::Method;

fn route(text: &str) -> Route {
    let config: RouteConfig = toml::from_str(text).expect("route config");
    Route::from_config(&config, FilterChain::empty())
}

/// `before` routes that do not match `/ping`, then `/ping`.
fn table(before: usize) -> RouteTable {
    let mut routes: Vec<Route> = (0..before)
        .map(|i| {
            route(&match i % 4 {
                0 => format!("path = \"/svc/{i}/items\"\ncluster = \"c\""),
                1 => format!("path_prefix = \"/api/v{i}\"\ncluster = \"c\""),
                2 => format!("path_prefix = \"/\"\nhost = \"h{i}.example.com\"\ncluster = \"c\""),
                _ => format!("path_prefix = \"/\"\nhost = \"*.w{i}.example.com\"\ncluster = \"c\""),
            })
        })
        .collect();
    routes.push(route("path = \"/ping\"\ncluster = \"c\""));
    RouteTable::new(routes)
}

fn lookups(c: &mut Criterion) {
    let get = Method::GET;
    let host = Some("gateway.example.net");
    for (name, table) in [("1 route", table(0)), ("10,000 routes", table(9_999))] {
        c.bench_function(&format!("find /ping, {name}"), |b| {
            b.iter(|| black_box(&table).find(&get, black_box(host), black_box("/ping")))
        });
        c.bench_function(&format!("find /api/v5/x/y, {name}"), |b| {
            b.iter(|| black_box(&table).find(&get, black_box(host), black_box("/api/v5/x/y")))
        });
        c.bench_function(&format!("ordered scan /ping, {name}"), |b| {
            b.iter(|| black_box(&table).scan(&get, black_box(host), black_box("/ping")))
        });
    }
}

criterion_group!(benches, lookups);
criterion_main!(benches);
