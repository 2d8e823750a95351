//! Fuzzes the gateway's edges for a given time, on stable Rust, with the
//! debug build (overflow checks on): mutations of seed inputs, every
//! target in turn, any host panic (on any thread) saved as a crash.
//!
//! ```sh
//! cargo run -p gateway-fuzz -- --seconds 600            # all targets, 10 minutes in all
//! cargo run -p gateway-fuzz -- --seconds 60 --target sni
//! cargo run -p gateway-fuzz -- --replay fuzz/crashes/guest-1f2e3d.bin
//! ```
//!
//! Targets: `config` (parser and validator), `sni` (the ClientHello
//! reader), `pairs` (the header-map wire format and its round trip),
//! `guest` (a wasm guest calling random hostcall sequences with random
//! pointers and lengths through a real filter chain). Crashes land in
//! `fuzz/crashes/<target>-<hash>.bin`; exit status 1 when any was found.

mod mutate;
mod targets;

use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

/// Set by the panic hook: a panic anywhere (also in a spawned task).
static PANICKED: AtomicBool = AtomicBool::new(false);
static PANIC_MESSAGE: Mutex<String> = Mutex::new(String::new());

struct Args {
    seconds: u64,
    target: Option<String>,
    seed: u64,
    replay: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 60,
        target: None,
        seed: rand::random(),
        replay: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--seconds" => a.seconds = value.parse().unwrap_or(60),
            "--target" => a.target = Some(value),
            "--seed" => a.seed = value.parse().unwrap_or(0),
            "--replay" => a.replay = Some(PathBuf::from(value)),
            other => {
                eprintln!("unknown flag {other}; see the header of fuzz/src/main.rs");
                std::process::exit(2);
            }
        }
    }
    a
}

fn main() {
    let args = args();
    std::panic::set_hook(Box::new(|info| {
        PANICKED.store(true, Ordering::SeqCst);
        *PANIC_MESSAGE.lock().unwrap_or_else(|p| p.into_inner()) = info.to_string();
    }));
    let mut all = targets::all();
    if let Some(path) = &args.replay {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('-').next())
            .unwrap_or_default()
            .to_string();
        let input = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let target = all
            .iter_mut()
            .find(|t| t.name == name)
            .expect("known target");
        let crashed = run_one(target, &input);
        println!(
            "{}: {}",
            path.display(),
            crashed.unwrap_or_else(|| "no crash".into())
        );
        return;
    }
    if let Some(only) = &args.target {
        all.retain(|t| t.name == only);
    }
    if all.is_empty() {
        eprintln!("no such target");
        std::process::exit(2);
    }
    let per_target = Duration::from_secs(args.seconds) / all.len() as u32;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    println!("seed {}, {:?} per target", args.seed, per_target);
    let mut crashes = 0;
    for target in &mut all {
        let started = Instant::now();
        let (mut runs, mut found) = (0u64, 0u64);
        let mut corpus: Vec<Vec<u8>> = target.seeds.clone();
        while started.elapsed() < per_target {
            let base = &corpus[rng.random_range(0..corpus.len())];
            let input = mutate::mutate(&mut rng, base, &corpus, target.max_len);
            runs += 1;
            if let Some(message) = run_one(target, &input) {
                found += 1;
                save(target.name, &input, &message);
            } else if corpus.len() < 4096 && rng.random_ratio(1, 64) {
                // Keep some survivors: later mutations start from them.
                corpus.push(input);
            }
        }
        println!(
            "{:>7}: {runs} inputs in {:.0?}, {found} crashes",
            target.name,
            started.elapsed()
        );
        crashes += found;
    }
    if crashes > 0 {
        std::process::exit(1);
    }
}

/// Runs `input`; `Some(message)` when the host panicked.
fn run_one(target: &mut targets::Target, input: &[u8]) -> Option<String> {
    PANICKED.store(false, Ordering::SeqCst);
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    if result.is_err() || PANICKED.load(Ordering::SeqCst) {
        return Some(
            PANIC_MESSAGE
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        );
    }
    None
}

fn save(target: &str, input: &[u8], message: &str) {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    input.hash(&mut h);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crashes");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{target}-{:016x}.bin", h.finish()));
    let _ = std::fs::write(&path, input);
    println!(
        "CRASH {target}: {} -> {}",
        message.lines().next().unwrap_or(""),
        path.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target survives its seeds and a few hundred mutations of a
    /// fixed seed: a short, deterministic run inside `cargo test`.
    #[test]
    fn every_target_survives_a_short_fixed_run() {
        std::panic::set_hook(Box::new(|info| {
            PANICKED.store(true, Ordering::SeqCst);
            *PANIC_MESSAGE.lock().unwrap_or_else(|p| p.into_inner()) = info.to_string();
        }));
        let mut rng = rand::rngs::StdRng::seed_from_u64(20261201);
        for mut target in targets::all() {
            let seeds = target.seeds.clone();
            let runs = if target.name == "guest" { 60 } else { 2000 };
            for i in 0..runs {
                let input = if i < seeds.len() {
                    seeds[i].clone()
                } else {
                    let base = &seeds[rng.random_range(0..seeds.len())];
                    mutate::mutate(&mut rng, base, &seeds, target.max_len)
                };
                if let Some(message) = run_one(&mut target, &input) {
                    panic!("{} crashed on {input:?}: {message}", target.name);
                }
            }
        }
        let _ = std::panic::take_hook();
    }
}
