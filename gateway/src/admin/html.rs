//! HTML building blocks of the admin page: escaping, tables, and the page's frame, style and script.

use std::fmt::Write as _;

use serde_json::Value;

/// How often the page refreshes itself when JavaScript runs.
const REFRESH_SECONDS: u32 = 5;

/// `<`, `>`, `&`, `"` and `'` as entities: safe in text and in quoted
/// attributes.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A table: header cells, then rows of already escaped cells.
pub(super) fn table(out: &mut String, id: &str, headers: &[&str], rows: &[Vec<String>]) {
    let _ = write!(out, "<table id=\"{id}\"><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"{}\" class=\"none\">none</td></tr>",
            headers.len()
        );
    }
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

pub(super) fn text(value: &Value, key: &str) -> String {
    match &value[key] {
        Value::String(s) => escape(s),
        Value::Null => String::new(),
        other => escape(&other.to_string()),
    }
}

pub(super) fn rate(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.2}"))
}

/// Everything before the content: head, style, the live-refresh line.
pub(super) fn open(out: &mut String) {
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>gateway admin</title><style>{STYLE}</style></head><body>\
         <header><h1>gateway admin</h1>\
         <p id=\"live\" data-state=\"static\">static view: reload the page to update</p></header>\
         <main id=\"content\">"
    );
}

/// Everything after the content: links to the JSON, the script.
pub(super) fn close(out: &mut String) {
    let _ = write!(
        out,
        "<p class=\"note\">JSON: <a href=\"/overview\">/overview</a> · <a href=\"/filters\">/filters</a> · <a href=\"/services\">/services</a> · \
         <a href=\"/config\">/config</a> · <a href=\"/metrics\">/metrics</a></p></main>\
         <script>{}</script></body></html>",
        SCRIPT.replace("{REFRESH}", &REFRESH_SECONDS.to_string())
    );
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}\
h1{font-size:1.4em;margin:0}h2{font-size:1.1em;margin:1.4em 0 .4em}\
header{display:flex;gap:2em;align-items:baseline}#live{color:#666;margin:0}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.2em .6em;border-bottom:1px solid #ddd;vertical-align:top}\
th{background:#f3f3f3}code{font-size:.9em}.digest{display:inline-block;max-width:12em;overflow:hidden;text-overflow:ellipsis;vertical-align:bottom}\
.healthy,.loaded,.ready{color:#176f2c;font-weight:600}.ejected,.failed,.error,.draining{color:#b00020;font-weight:600}\
.running{color:#176f2c;font-weight:600}.backed-off,.restarting,.starting{color:#a05a00;font-weight:600}.none,.note{color:#777}.error{white-space:pre-wrap;font:12px monospace}";

/// Re-fetches the page and swaps its content in place; says when it last
/// did, or why it could not.
const SCRIPT: &str = "(function(){var live=document.getElementById('live');\
function refresh(){fetch(location.pathname,{cache:'no-store',credentials:'same-origin'})\
.then(function(r){if(!r.ok){throw new Error('HTTP '+r.status);}return r.text();})\
.then(function(html){var fresh=new DOMParser().parseFromString(html,'text/html').getElementById('content');\
if(!fresh){throw new Error('unexpected page');}document.getElementById('content').replaceWith(fresh);\
live.textContent='live: refreshed '+new Date().toLocaleTimeString()+', every {REFRESH} s';live.dataset.state='on';})\
.catch(function(e){live.textContent='live refresh failed ('+e.message+'); retrying';live.dataset.state='error';});}\
refresh();setInterval(refresh,{REFRESH}000);})();";
