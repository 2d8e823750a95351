//! The route table's rules, and the property that the index always picks
//! the route the ordered scan picks.

use proptest::prelude::*;

use super::*;

fn route(toml_text: &str) -> Route {
    let config: RouteConfig = toml::from_str(toml_text).expect("route config");
    Route::from_config(&config, FilterChain::empty())
}

fn name<'a>(
    table: &'a RouteTable,
    method: &Method,
    host: Option<&str>,
    path: &str,
) -> Option<&'a str> {
    let found = table.find(method, host, path).map(|r| &*r.name);
    let scanned = table.scan(method, host, path).map(|r| &*r.name);
    assert_eq!(
        found, scanned,
        "index and scan differ on {method} {host:?} {path}"
    );
    found
}

#[test]
fn first_match_wins_and_unmatched_is_none() {
    let table = RouteTable::new(vec![
        route("path = \"/ping\"\ncluster = \"a\""),
        route("path_prefix = \"/api/\"\nmethod = \"POST\"\ncluster = \"b\""),
        route("path_prefix = \"/\"\nhost = \"example.com\"\ncluster = \"c\""),
    ]);
    let get = Method::GET;
    assert_eq!(name(&table, &get, None, "/ping"), Some("/ping"));
    assert_eq!(name(&table, &get, None, "/ping/x"), None);
    assert_eq!(name(&table, &get, None, "/api/x"), None);
    assert_eq!(name(&table, &Method::POST, None, "/api/x"), Some("/api/*"));
    assert_eq!(name(&table, &get, Some("EXAMPLE.com"), "/x"), Some("/*"));
    assert_eq!(name(&table, &get, Some("other.com"), "/x"), None);
}

#[test]
fn prefixes_match_whole_segments() {
    let table = RouteTable::new(vec![
        route("name = \"api\"\npath_prefix = \"/api\"\ncluster = \"a\""),
        route("name = \"docs/\"\npath_prefix = \"/docs/\"\ncluster = \"a\""),
        route("name = \"v1\"\npath_prefix = \"/api/v1\"\nmethod = \"PUT\"\ncluster = \"a\""),
    ]);
    let get = Method::GET;
    for path in ["/api", "/api/", "/api/x", "/api/v1/y", "/api//x"] {
        assert_eq!(name(&table, &get, None, path), Some("api"), "{path}");
    }
    for path in ["/apix", "/ap", "/", "/docs", "/docsx", "api"] {
        assert_eq!(name(&table, &get, None, path), None, "{path}");
    }
    for path in ["/docs/", "/docs/x", "/docs//"] {
        assert_eq!(name(&table, &get, None, path), Some("docs/"), "{path}");
    }
    // An earlier, shorter prefix wins over a later, longer one.
    assert_eq!(name(&table, &Method::PUT, None, "/api/v1"), Some("api"));
}

#[test]
fn a_slash_prefix_matches_every_path_and_a_later_exact_path_loses() {
    let table = RouteTable::new(vec![
        route("name = \"all\"\npath_prefix = \"/\"\ncluster = \"a\""),
        route("name = \"ping\"\npath = \"/ping\"\ncluster = \"a\""),
    ]);
    for path in ["/", "/ping", "//", "/a/b/c"] {
        assert_eq!(
            name(&table, &Method::GET, None, path),
            Some("all"),
            "{path}"
        );
    }
    assert_eq!(name(&table, &Method::OPTIONS, None, "*"), None);
}

#[test]
fn wildcard_hosts_match_subdomains_only() {
    let table = RouteTable::new(vec![
        route("name = \"exact\"\npath_prefix = \"/\"\nhost = \"api.example.com\"\nmethod = \"POST\"\ncluster = \"a\""),
        route("name = \"wild\"\npath_prefix = \"/\"\nhost = \"*.Example.com\"\ncluster = \"a\""),
        route("name = \"apex\"\npath_prefix = \"/\"\nhost = \"example.com\"\ncluster = \"a\""),
    ]);
    let get = Method::GET;
    assert_eq!(
        name(&table, &Method::POST, Some("api.example.com"), "/"),
        Some("exact")
    );
    assert_eq!(
        name(&table, &get, Some("api.example.com"), "/"),
        Some("wild")
    );
    assert_eq!(
        name(&table, &get, Some("a.b.EXAMPLE.com"), "/"),
        Some("wild")
    );
    assert_eq!(name(&table, &get, Some("example.com"), "/"), Some("apex"));
    assert_eq!(name(&table, &get, Some("badexample.com"), "/"), None);
    assert_eq!(name(&table, &get, Some(".example.com"), "/"), None);
    assert_eq!(name(&table, &get, None, "/"), None);
}

#[test]
fn a_route_behind_one_for_any_method_never_matches() {
    let table = RouteTable::new(vec![
        route("name = \"get\"\npath = \"/x\"\nmethod = \"GET\"\ncluster = \"a\""),
        route("name = \"any\"\npath = \"/x\"\ncluster = \"a\""),
        route("name = \"post\"\npath = \"/x\"\nmethod = \"POST\"\ncluster = \"a\""),
    ]);
    assert_eq!(name(&table, &Method::GET, None, "/x"), Some("get"));
    assert_eq!(name(&table, &Method::POST, None, "/x"), Some("any"));
}

#[test]
fn host_loses_its_port() {
    assert_eq!(host_without_port("example.com:8080"), "example.com");
    assert_eq!(host_without_port("example.com"), "example.com");
    assert_eq!(host_without_port("[::1]:80"), "[::1]");
}

// === the index against the ordered scan ===

/// Few distinct segments and hosts, so that random routes overlap and
/// random requests hit them.
const SEGMENTS: &[&str] = &["a", "b", "ab", "", "A"];
const HOSTS: &[&str] = &["x.com", "a.x.com", "b.a.x.com", "y.com", "com"];
const REQUEST_HOSTS: &[&str] = &[
    "x.com",
    "a.x.com",
    "A.X.Com",
    "b.a.x.com",
    "c.b.a.x.com",
    "y.com",
    "xx.com",
    "com",
    ".x.com",
    "x.com.",
    "xéabc",
    "é.x.com",
];
const METHODS: &[&str] = &["GET", "POST", "PURGE"];
const REQUEST_METHODS: &[&str] = &["GET", "POST", "PURGE", "PUT"];

fn pick(from: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    proptest::sample::select(from)
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(pick(SEGMENTS), 0..5).prop_map(|s| format!("/{}", s.join("/")))
}

#[derive(Debug, Clone)]
struct RouteSpec {
    prefix: bool,
    path: String,
    host: Option<String>,
    method: Option<String>,
}

fn route_spec() -> impl Strategy<Value = RouteSpec> {
    let host = prop_oneof![
        2 => Just(None),
        1 => pick(HOSTS).prop_map(|h| Some(h.to_string())),
        1 => pick(HOSTS).prop_map(|h| Some(format!("*.{h}"))),
    ];
    let method = prop_oneof![2 => Just(None), 1 => pick(METHODS).prop_map(|m| Some(m.to_string()))];
    (any::<bool>(), path(), host, method).prop_map(|(prefix, path, host, method)| RouteSpec {
        prefix,
        path,
        host,
        method,
    })
}

fn table_of(specs: &[RouteSpec]) -> RouteTable {
    let routes = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let config = RouteConfig {
                name: Some(i.to_string()),
                path: (!spec.prefix).then(|| spec.path.clone()),
                path_prefix: spec.prefix.then(|| spec.path.clone()),
                host: spec.host.clone().map(|h| toml::Spanned::new(0..0, h)),
                method: spec.method.clone(),
                cluster: Some(toml::Spanned::new(0..0, "c".into())),
                direct: None,
                timeout: None,
                retry: None,
                filters: Vec::new(),
            };
            Route::from_config(&config, FilterChain::empty())
        })
        .collect();
    RouteTable::new(routes)
}

fn request() -> impl Strategy<Value = (Method, Option<&'static str>, String)> {
    let method =
        pick(REQUEST_METHODS).prop_map(|m| Method::from_bytes(m.as_bytes()).expect("method"));
    let host = prop_oneof![1 => Just(None), 4 => pick(REQUEST_HOSTS).prop_map(Some)];
    let path = prop_oneof![8 => path(), 1 => Just("*".to_string()), 1 => Just(String::new())];
    (method, host, path)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_index_finds_what_the_ordered_scan_finds(
        specs in prop::collection::vec(route_spec(), 0..40),
        requests in prop::collection::vec(request(), 1..40),
    ) {
        let table = table_of(&specs);
        for (method, host, path) in &requests {
            let found = table.find(method, *host, path).map(|r| &*r.name);
            let scanned = table.scan(method, *host, path).map(|r| &*r.name);
            prop_assert_eq!(found, scanned, "{} {:?} {}", method, host, path);
        }
    }
}

#[test]
fn a_table_says_whether_any_route_names_a_host() {
    let paths_only = RouteTable::new(vec![
        route("path = \"/ping\"\ncluster = \"a\""),
        route("path_prefix = \"/\"\ncluster = \"b\""),
    ]);
    assert!(!paths_only.routes_by_host());
    // Without host routes the host changes nothing: the request's host
    // is not worked out for them.
    for host in [None, Some("example.com")] {
        assert_eq!(
            name(&paths_only, &Method::GET, host, "/ping"),
            Some("/ping")
        );
    }
    for host in ["host = \"example.com\"", "host = \"*.example.com\""] {
        let table = RouteTable::new(vec![route(&format!(
            "path_prefix = \"/\"\n{host}\ncluster = \"c\""
        ))]);
        assert!(table.routes_by_host(), "{host}");
    }
}
