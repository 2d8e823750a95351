//! Guest work that no request drives: tick timers, queue notifications and
//! callouts made from the root context. Each runs as a tokio task that
//! takes the instance's lock only for the guest call.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use super::engine::FilterHost;
use super::instance::{FilterInstance, GuestFault, InstanceCell};
use super::shared_data::QueueWaker;
use super::state::{Effects, PendingCall, ROOT_CONTEXT};

/// A root-context call trapped: the instance is marked dead, so the next
/// request gets a fresh one instead of failing on the poisoned one.
fn discard(cell: &InstanceCell, inst: &FilterInstance, callback: &str, fault: &GuestFault) {
    cell.dead.store(true, std::sync::atomic::Ordering::Relaxed);
    let filter = &inst.store.data().filter.config.name;
    tracing::warn!(%filter, "{callback} failed, instance discarded: {fault}");
    cell.watch.died(format!("{callback}: {fault}"));
}

fn runtime() -> Option<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().ok()
}

/// Acts on what a root-context call asked for: tick period, callouts.
pub(crate) fn apply_root_effects(
    host: &Arc<FilterHost>,
    cell: &Arc<InstanceCell>,
    effects: Effects,
) {
    if let Some(period) = effects.tick_period {
        set_ticker(host, cell, period);
    }
    for call in effects.calls {
        spawn_root_call(host, Arc::downgrade(cell), call);
    }
}

fn set_ticker(host: &Arc<FilterHost>, cell: &Arc<InstanceCell>, period: Duration) {
    let mut slot = cell.ticker.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(old) = slot.take() {
        old.abort();
    }
    if period.is_zero() {
        return;
    }
    let Some(rt) = runtime() else {
        tracing::warn!("no tokio runtime: proxy_on_tick will not run");
        return;
    };
    let weak = Arc::downgrade(cell);
    let host = Arc::downgrade(host);
    let task = rt.spawn(async move {
        let mut interval = tokio::time::interval(period.max(Duration::from_millis(1)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            let (Some(cell), Some(host)) = (weak.upgrade(), host.upgrade()) else {
                break;
            };
            let effects = {
                let mut inst = cell.lock();
                if inst.cb.tick.is_none() {
                    break;
                }
                let r = inst.root_call(|i| {
                    i.callback(|cb| cb.tick.as_ref(), ROOT_CONTEXT as i32)
                        .map(drop)
                });
                let (_, effects) = inst.leave();
                if let Err(fault) = r {
                    discard(&cell, &inst, "proxy_on_tick", &fault);
                    break;
                }
                cell.watch.ticked();
                effects
            };
            for call in effects.calls {
                spawn_root_call(&host, Arc::downgrade(&cell), call);
            }
            // A period change from inside on_tick replaces this task.
            if let Some(p) = effects.tick_period {
                set_ticker(&host, &cell, p);
                break;
            }
        }
    });
    *slot = Some(task.abort_handle());
}

/// Sends a callout made outside any request and delivers its answer to
/// the root context.
pub(crate) fn spawn_root_call(host: &Arc<FilterHost>, cell: Weak<InstanceCell>, call: PendingCall) {
    let Some(rt) = runtime() else { return };
    let host = host.clone();
    rt.spawn(async move {
        let PendingCall {
            context_id,
            token,
            cluster,
            request,
            timeout,
        } = call;
        let result = host.shared.callouts.call(&cluster, request, timeout).await;
        let Some(cell) = cell.upgrade() else { return };
        let effects = {
            let mut inst = cell.lock();
            let r = inst.root_call(|i| {
                i.store.data_mut().effective = context_id;
                i.deliver_call(context_id, token, result)
            });
            let (_, effects) = inst.leave();
            if let Err(fault) = r {
                discard(&cell, &inst, "proxy_on_http_call_response", &fault);
                return;
            }
            effects
        };
        apply_root_effects(&host, &cell, effects);
    });
}

/// Schedules `proxy_on_queue_ready` on the instance in `slot`.
pub(crate) fn queue_waker(
    host: Arc<FilterHost>,
    slot: Arc<OnceLock<Weak<InstanceCell>>>,
) -> QueueWaker {
    let host = Arc::downgrade(&host);
    // The runtime the instance was started on (the control runtime for
    // services and for filters started at load), so that the enqueuing
    // worker does not run another instance's guest code.
    let home = runtime();
    Arc::new(move |queue: u32| {
        let Some(weak) = slot.get().cloned() else {
            return;
        };
        let Some(rt) = home.clone().or_else(runtime) else {
            return;
        };
        let host = host.clone();
        rt.spawn(async move {
            let (Some(cell), Some(host)) = (weak.upgrade(), host.upgrade()) else {
                return;
            };
            let effects = {
                let mut inst = cell.lock();
                if inst.cb.queue_ready.is_none() {
                    return;
                }
                let r = inst.root_call(|i| {
                    i.callback(
                        |cb| cb.queue_ready.as_ref(),
                        (ROOT_CONTEXT as i32, queue as i32),
                    )
                    .map(drop)
                });
                let (_, effects) = inst.leave();
                if let Err(fault) = r {
                    discard(&cell, &inst, "proxy_on_queue_ready", &fault);
                    return;
                }
                effects
            };
            apply_root_effects(&host, &cell, effects);
        });
    })
}
