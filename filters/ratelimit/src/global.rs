//! The global mode: one limit per key for every gateway on the same Redis,
//! without a Redis round trip per request.
//!
//! Each filter instance (a participant: one per worker of each gateway)
//! keeps, per key and per fixed window, a local *allowance*: how many
//! requests it may still admit before it hears from Redis again. Every
//! `sync_ms` the timer sends what it admitted and saw since the last sync
//! (`HINCRBY` on the window's hash, in one script) and gets back the
//! fleet's totals. The new allowance is a part ([`HANDOUT`]) of the
//! remaining budget of the window times this participant's share of the
//! fleet's traffic (`my seen / fleet seen`), so participants split what is
//! left in proportion to their load without their allowances adding up to
//! more than is left. Fractions of a request are admitted by chance, so
//! nothing is lost to rounding on average. See README.md for the error
//! bound and the figures measured.

use crate::{GlobalConfig, Unavailable};
use gateway_sdk::metrics::{Counter, Gauge};
use gateway_sdk::redis::{self, RedisReply};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// Adds what a participant admitted (`a`) and saw (`s`) to the window's
/// totals, keeps the hash two windows, answers the totals.
const SYNC_SCRIPT: &str = "local a = redis.call('HINCRBY', KEYS[1], 'a', ARGV[1]) \
local s = redis.call('HINCRBY', KEYS[1], 's', ARGV[2]) \
redis.call('PEXPIRE', KEYS[1], ARGV[3]) return {a, s}";

/// One key's state in this participant, for one window.
#[derive(Debug, Default)]
struct KeyState {
    window: u64,
    /// Requests this participant may still admit before the next reply.
    allowance: f64,
    /// Admitted and seen, not yet sent.
    admitted: u64,
    seen: u64,
    /// Everything this participant saw in the window (sent or not).
    mine_seen: u64,
    /// Admitted since the sync in flight left (not in its totals).
    admitted_since_send: u64,
    syncing: bool,
    /// Requests seen that the sync in flight carries.
    sent_seen: u64,
    /// This participant's share of the key's traffic, from the last reply
    /// (carried into the next window); `None` until Redis answered once.
    share: Option<f64>,
    /// The fleet's admissions in the window, as of the last reply.
    fleet_admitted: u64,
    /// Mine and the fleet's seen requests as of the last reply: this
    /// window's, and the previous window's last (the share is measured
    /// over both, so it is not noisy early in a window).
    measured: (f64, f64),
    previous: (f64, f64),
}

/// The part of its share of the remaining budget a participant may spend
/// before its next sync. The others still hold allowances computed from
/// older totals; handing out half at a time keeps their sum within what
/// is left even when every participant spends all of its allowance in one
/// sync period (at most half would do; a little less leaves room for late
/// timers), and the remainder is handed out at the following syncs.
const HANDOUT: f64 = 0.35;

thread_local! {
    static KEYS: RefCell<HashMap<String, KeyState>> = RefCell::new(HashMap::new());
    /// Whether Redis answered the last time this participant asked.
    static REDIS_DOWN: Cell<bool> = const { Cell::new(false) };
    static PROBING: Cell<bool> = const { Cell::new(false) };
}

/// What the global limit says about one request.
pub enum Verdict {
    Admit {
        remaining: u64,
    },
    Reject {
        remaining: u64,
    },
    /// Redis is unreachable: decide by the configured policy.
    Unavailable,
}

/// Whether Redis is currently taken as unreachable.
pub fn redis_down() -> bool {
    REDIS_DOWN.with(Cell::get)
}

fn set_redis_down(config: &GlobalConfig, down: bool) {
    if REDIS_DOWN.with(|d| d.replace(down)) == down {
        return;
    }
    Gauge::new("ratelimit_redis_down").set(u64::from(down));
    if down {
        let policy = match config.on_unavailable {
            Unavailable::Local => "limiting by the local bucket",
            Unavailable::Deny => "denying",
        };
        gateway_sdk::warn!("redis cluster {:?} unreachable: {policy}", config.cluster);
    } else {
        gateway_sdk::info!(
            "redis cluster {:?} reachable: global limit again",
            config.cluster
        );
    }
}

/// The window a time falls in, and the milliseconds left in it.
pub fn window_of(config: &GlobalConfig, now_ms: u64) -> (u64, u64) {
    let window = now_ms / config.window_ms;
    (window, config.window_ms - now_ms % config.window_ms)
}

/// Decides one request for `key` at `now_ms`. `None`: this participant
/// has never heard from Redis about the key; ask first ([`first_contact`]).
/// `counted`: the request was already counted as seen at Redis (by its
/// first contact).
pub fn decide(config: &GlobalConfig, key: &str, now_ms: u64, counted: bool) -> Option<Verdict> {
    if redis_down() {
        return Some(Verdict::Unavailable);
    }
    let (window, _) = window_of(config, now_ms);
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if !keys.contains_key(key) && keys.len() >= config.max_keys {
            evict(&mut keys, window);
            if keys.len() >= config.max_keys {
                // Too many keys this window: no room to track one more.
                return Some(Verdict::Unavailable);
            }
        }
        let state = keys.entry(key.to_string()).or_default();
        let share = state.share?;
        if state.window != window {
            // Only the window just gone by tells the share.
            let previous = if state.window + 1 == window {
                state.measured
            } else {
                (0.0, 0.0)
            };
            *state = KeyState {
                window,
                allowance: config.limit as f64 * share * HANDOUT,
                share: Some(share),
                previous,
                ..KeyState::default()
            };
        }
        if !counted {
            state.seen += 1;
        }
        state.mine_seen += 1;
        let admit = state.allowance >= 1.0
            || (state.allowance > 0.0 && gateway_sdk::random::chance(state.allowance));
        let remaining = config
            .limit
            .saturating_sub(state.fleet_admitted + state.admitted);
        if admit {
            state.allowance = (state.allowance - 1.0).max(0.0);
            state.admitted += 1;
            if state.syncing {
                state.admitted_since_send += 1;
            }
            Some(Verdict::Admit {
                remaining: remaining.saturating_sub(1),
            })
        } else {
            Some(Verdict::Reject { remaining: 0 })
        }
    })
}

fn evict(keys: &mut HashMap<String, KeyState>, window: u64) {
    keys.retain(|_, s| s.window + 1 >= window && s.share.is_some());
}

/// The command that adds `admitted`/`seen` to the key's window at Redis.
fn sync_command(
    config: &GlobalConfig,
    key: &str,
    window: u64,
    admitted: u64,
    seen: u64,
) -> redis::RedisCommand {
    let hash = format!("ratelimit:{}:{key}:{window}", config.name);
    redis::command(
        "EVAL",
        [
            serde_json::Value::from(SYNC_SCRIPT),
            1.into(),
            hash.into(),
            admitted.into(),
            seen.into(),
            (config.window_ms * 2).into(),
        ],
    )
    .cluster(&config.cluster)
    .timeout(std::time::Duration::from_millis(config.timeout_ms))
}

/// The first request of a key in this participant: the command that
/// counts it as seen and reads the fleet's totals of the window.
pub fn first_contact(config: &GlobalConfig, key: &str, now_ms: u64) -> redis::RedisCommand {
    let (window, _) = window_of(config, now_ms);
    sync_command(config, key, window, 0, 1)
}

/// Takes in the first-contact reply; then [`decide`] can answer. False
/// when Redis did not answer.
pub fn first_reply(config: &GlobalConfig, key: &str, now_ms: u64, reply: &RedisReply) -> bool {
    let Some((admitted, seen)) = totals(reply) else {
        set_redis_down(config, true);
        Counter::new("ratelimit_redis_unavailable").increment(1);
        return false;
    };
    set_redis_down(config, false);
    let (window, _) = window_of(config, now_ms);
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        let state = keys.entry(key.to_string()).or_default();
        if state.share.is_some() {
            return; // another request of the key got here first
        }
        // Alone in the window (this request is the only one seen): the
        // whole budget. Others active: until the first sync tells this
        // participant its real share, it may admit what the whole fleet
        // would in one sync period, so several gateways starting (or
        // recovering) at once cannot overshoot much.
        let remaining = config.limit.saturating_sub(admitted) as f64;
        let (share, allowance) = if seen <= 1 {
            (1.0, remaining)
        } else {
            let first_period = (config.limit * config.sync_ms / config.window_ms).max(1) as f64;
            let share = 1.0 / seen as f64;
            (share, (remaining * share).min(first_period))
        };
        *state = KeyState {
            window,
            fleet_admitted: admitted,
            allowance,
            share: Some(share),
            ..KeyState::default()
        };
    });
    true
}

fn totals(reply: &RedisReply) -> Option<(u64, u64)> {
    let pair = reply.value()?.as_array()?;
    let number = |i: usize| pair.get(i)?.as_u64();
    Some((number(0)?, number(1)?))
}

/// The timer: sends each key's counts of the current window, or a `PING`
/// while Redis is unreachable, so the mode comes back by itself.
pub fn sync(config: &GlobalConfig, now_ms: u64) {
    let config_for = || config.clone();
    if redis_down() {
        if PROBING.with(|p| p.replace(true)) {
            return;
        }
        let cfg = config_for();
        let sent = redis::command("PING", Vec::<String>::new())
            .cluster(&config.cluster)
            .timeout(std::time::Duration::from_millis(config.timeout_ms))
            .send(move |reply| {
                PROBING.with(|p| p.set(false));
                if !reply.is_unavailable() {
                    // Every key starts over from Redis: windows went by.
                    KEYS.with(|k| k.borrow_mut().clear());
                    set_redis_down(&cfg, false);
                }
            });
        if !sent {
            PROBING.with(|p| p.set(false));
        }
        return;
    }
    let (window, _) = window_of(config, now_ms);
    let due: Vec<(String, u64, u64)> = KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        evict(&mut keys, window);
        keys.iter_mut()
            .filter(|(_, s)| s.window == window && !s.syncing && s.seen > 0)
            .map(|(k, s)| {
                s.syncing = true;
                s.sent_seen = s.seen;
                s.admitted_since_send = 0;
                let sent = (k.clone(), s.admitted, s.seen);
                s.admitted = 0;
                s.seen = 0;
                sent
            })
            .collect()
    });
    for (key, admitted, seen) in due {
        let cfg = config_for();
        let k = key.clone();
        let sent = sync_command(config, &key, window, admitted, seen)
            .send(move |reply| on_sync_reply(&cfg, &k, window, &reply));
        if !sent {
            KEYS.with(|keys| {
                if let Some(s) = keys.borrow_mut().get_mut(&key) {
                    s.syncing = false;
                }
            });
        }
    }
}

fn on_sync_reply(config: &GlobalConfig, key: &str, window: u64, reply: &RedisReply) {
    let totals = totals(reply);
    if totals.is_none() {
        Counter::new("ratelimit_redis_unavailable").increment(1);
    }
    set_redis_down(config, totals.is_none());
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        let Some(state) = keys.get_mut(key) else {
            return;
        };
        state.syncing = false;
        let Some((admitted, seen)) = totals else {
            return;
        };
        if state.window != window {
            return; // a reply about a window gone by
        }
        // My share: what I saw of what the fleet saw. My figure is fresh
        // up to this sync, the others' lag by half a sync period on
        // average (they sync at other moments), so half of my latest
        // delta is left out of both: otherwise every participant counts
        // itself high and the shares add up to more than 1.
        let mine = (state.mine_seen - state.seen) as f64;
        let half_delta = state.sent_seen as f64 / 2.0;
        state.measured = (mine - half_delta, seen as f64 - half_delta);
        let (prev_mine, prev_fleet) = state.previous;
        let share = ((state.measured.0 + prev_mine) / (state.measured.1 + prev_fleet).max(1.0))
            .clamp(0.0, 1.0);
        state.share = Some(share);
        state.fleet_admitted = admitted;
        let remaining = config.limit.saturating_sub(admitted) as f64;
        state.allowance = (remaining * share * HANDOUT - state.admitted_since_send as f64).max(0.0);
    });
}
