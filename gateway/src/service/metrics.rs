//! Services in Prometheus text: whether each is up, its version, last tick,
//! failures and loads. Read from the process's service set at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::{ServiceSet, ServiceState};
use crate::metrics::requests::escape;

#[derive(Default)]
struct Counts {
    /// Instance failures (trap, deadline, memory) by service.
    failures: BTreeMap<String, u64>,
    /// Loads of a new version by (service, result).
    loads: BTreeMap<(String, &'static str), u64>,
}

struct Board {
    set: Mutex<Weak<ServiceSet>>,
    counts: Mutex<Counts>,
}

fn board() -> &'static Board {
    static BOARD: OnceLock<Board> = OnceLock::new();
    BOARD.get_or_init(|| Board {
        set: Mutex::new(Weak::new()),
        counts: Mutex::default(),
    })
}

/// Makes `set` the one the scrape reads (one per process).
pub(super) fn register(set: &Arc<ServiceSet>) {
    *lock(&board().set) = Arc::downgrade(set);
}

pub(super) fn failed(service: &str) {
    *lock(&board().counts)
        .failures
        .entry(service.to_string())
        .or_default() += 1;
}

pub(super) fn reloaded(service: &str, ok: bool) {
    let result = if ok { "ok" } else { "rejected" };
    *lock(&board().counts)
        .loads
        .entry((service.to_string(), result))
        .or_default() += 1;
}

/// Appends the service families to a scrape.
pub fn encode(out: &mut String) {
    let set = lock(&board().set).upgrade();
    let running = set.as_ref().map(|s| s.running()).unwrap_or_default();
    let never = set.as_ref().map(|s| s.never_started()).unwrap_or_default();
    let counts = lock(&board().counts);
    if running.is_empty() && never.is_empty() && counts.loads.is_empty() {
        return;
    }
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}.");
        let _ = writeln!(out, "# TYPE {name} {kind}");
    };
    family(
        out,
        "gateway_service_up",
        "gauge",
        "1 while the service's instance runs, 0 while it restarts or when no version started",
    );
    for name in &never {
        let _ = writeln!(out, "gateway_service_up{{service=\"{}\"}} 0", escape(name));
    }
    for r in &running {
        let up = u8::from(r.state() == ServiceState::Running);
        let _ = writeln!(
            out,
            "gateway_service_up{{service=\"{}\"}} {up}",
            escape(r.name())
        );
    }
    family(
        out,
        "gateway_service_info",
        "gauge",
        "The version of each service running (module sha256)",
    );
    for r in &running {
        let _ = writeln!(
            out,
            "gateway_service_info{{service=\"{}\",sha256=\"{}\"}} 1",
            escape(r.name()),
            r.sha256
        );
    }
    family(
        out,
        "gateway_service_last_tick_timestamp_seconds",
        "gauge",
        "When proxy_on_tick last returned (Unix time; 0: never)",
    );
    for r in &running {
        let _ = writeln!(
            out,
            "gateway_service_last_tick_timestamp_seconds{{service=\"{}\"}} {:.3}",
            escape(r.name()),
            r.last_tick() as f64 / 1000.0
        );
    }
    family(
        out,
        "gateway_service_failures",
        "counter",
        "Service instance failures (trap, deadline, memory), each followed by a restart",
    );
    for (name, n) in &counts.failures {
        let _ = writeln!(
            out,
            "gateway_service_failures_total{{service=\"{}\"}} {n}",
            escape(name)
        );
    }
    family(
        out,
        "gateway_service_loads",
        "counter",
        "Service versions loaded by result (ok, rejected)",
    );
    for ((name, result), n) in &counts.loads {
        let _ = writeln!(
            out,
            "gateway_service_loads_total{{service=\"{}\",result=\"{result}\"}} {n}",
            escape(name)
        );
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
