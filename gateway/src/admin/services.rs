//! `/services` and the page's services table: each service, its state,
//! version, last tick and last error.

use std::fmt::Write as _;

use super::html::{escape, table, text};
use super::AdminState;

/// The services' status; an empty list when the process runs none.
pub(super) fn status(admin: &AdminState) -> serde_json::Value {
    match admin.services.get() {
        Some(set) => set.status(),
        None => serde_json::json!({ "dir": null, "services": [] }),
    }
}

/// The "Services" table of the admin page, from [`status`]'s value.
pub(super) fn section(out: &mut String, services: &serde_json::Value) {
    out.push_str("<h2>Services</h2>");
    if let Some(dir) = services["dir"].as_str() {
        let _ = write!(
            out,
            "<p class=\"note\">folder <code>{}</code></p>",
            escape(dir)
        );
    }
    let rows: Vec<Vec<String>> = services["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let state = text(s, "state");
            let errors: Vec<String> = ["last_error", "pending_error"]
                .iter()
                .filter_map(|k| s[*k].as_str())
                .map(|e| format!("<span class=\"error\">{}</span>", escape(e)))
                .collect();
            vec![
                format!("<b>{}</b>", text(s, "name")),
                text(s, "source"),
                format!("<span class=\"{state}\">{state}</span>"),
                format!(
                    "<code class=\"digest\" title=\"{0}\">{0}</code>",
                    text(s, "sha256")
                ),
                text(s, "running_since"),
                text(s, "last_tick"),
                text(s, "restarts"),
                errors.join("<br>"),
            ]
        })
        .collect();
    table(
        out,
        "services",
        &[
            "service",
            "source",
            "state",
            "sha256",
            "running since",
            "last tick",
            "restarts",
            "last error",
        ],
        &rows,
    );
}
