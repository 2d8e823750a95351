//! Starting and stopping the real gateway binary.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::{Http1Client, Http2Client, WAIT};

/// The gateway binary under test: built by cargo next to the test
/// executables (`target/<profile>/gateway-e2e`).
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile> directory");
    let binary = profile_dir.join("gateway-e2e");
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test`",
        binary.display()
    );
    binary
}

/// Runs `gateway check` on `config_text`; returns the process output.
pub fn check_config(config_text: &str) -> (Output, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config_text).expect("write config");
    let output = Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run gateway check");
    (output, path, dir)
}

#[derive(Default)]
struct Log {
    lines: Vec<String>,
    closed: bool,
}

/// A running gateway process; killed when dropped.
pub struct Gateway {
    child: Child,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    listeners: HashMap<String, SocketAddr>,
    pub admin: Option<SocketAddr>,
    log: Arc<(Mutex<Log>, Condvar)>,
}

impl Gateway {
    /// Writes `config_text` to a temp dir and starts the gateway on it,
    /// returning once it logged that it is ready.
    pub async fn start(config_text: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, config_text).await
    }

    /// Like [`Gateway::start`], in a directory the test prepared (with
    /// filter files, say).
    pub async fn start_in(dir: tempfile::TempDir, config_text: &str) -> Gateway {
        let config_path = dir.path().join("gateway.toml");
        std::fs::write(&config_path, config_text).expect("write config");
        let address_file = dir.path().join("addresses.json");
        let mut child = Command::new(binary())
            .arg("--config")
            .arg(&config_path)
            .arg("--address-file")
            .arg(&address_file)
            .env(
                "RUST_LOG",
                std::env::var("GATEWAY_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the gateway");
        let log = Arc::new((Mutex::new(Log::default()), Condvar::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("GATEWAY_TEST_ECHO").is_some() {
                    eprintln!("gateway: {line}");
                }
                let (lock, cv) = &*sink;
                lock.lock().expect("log lock").lines.push(line);
                cv.notify_all();
            }
            let (lock, cv) = &*sink;
            lock.lock().expect("log lock").closed = true;
            cv.notify_all();
        });
        let mut gateway = Gateway {
            child,
            dir,
            config_path,
            listeners: HashMap::new(),
            admin: None,
            log,
        };
        let ready = gateway.wait_for_log("gateway ready", WAIT);
        assert!(
            ready,
            "the gateway did not become ready; its log:\n{}",
            gateway.logs().join("\n")
        );
        gateway.read_addresses();
        gateway
    }

    /// Re-reads the address file (after a reload added listeners).
    pub fn read_addresses(&mut self) {
        let text =
            std::fs::read_to_string(self.dir.path().join("addresses.json")).expect("address file");
        let json: serde_json::Value = serde_json::from_str(&text).expect("address json");
        self.listeners.clear();
        if let Some(map) = json["listeners"].as_object() {
            for (name, addr) in map {
                let addr = addr
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .expect("listener address");
                self.listeners.insert(name.clone(), addr);
            }
        }
        self.admin = json["admin"].as_str().and_then(|a| a.parse().ok());
    }

    /// Replaces the config file the way an editor or deploy tool does
    /// (write a temp file, rename it over).
    pub fn rewrite_config(&self, text: &str) {
        let tmp = self.config_path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).expect("write config");
        std::fs::rename(&tmp, &self.config_path).expect("rename config");
    }

    /// Sends SIGHUP (reload).
    pub fn hangup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// The bound address of the listener called `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        *self
            .listeners
            .get(name)
            .unwrap_or_else(|| panic!("no listener `{name}`"))
    }

    /// A new HTTP/1.1 keep-alive connection to listener `name`.
    pub async fn http1(&self, name: &str) -> Http1Client {
        Http1Client::connect(self.addr(name)).await
    }

    /// A new TCP connection to listener `name`, for requests written by
    /// hand (malformed, slow, pipelined, raw L4 bytes).
    pub async fn raw(&self, name: &str) -> tokio::net::TcpStream {
        let addr = self.addr(name);
        tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect to `{name}` at {addr}: {e}"))
    }

    /// A new HTTP/2 (prior knowledge) connection to listener `name`.
    pub async fn http2(&self, name: &str) -> Http2Client {
        Http2Client::connect(self.addr(name)).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the gateway logged so far.
    pub fn logs(&self) -> Vec<String> {
        self.log.0.lock().expect("log lock").lines.clone()
    }

    /// Waits until a log line contains `needle` (true) or `timeout`
    /// passes or the process closes its log (false).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_log_count(needle, 1, timeout)
    }

    /// Waits until `count` log lines contain `needle`.
    pub fn wait_for_log_count(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        wait_log(&self.log, needle, count, timeout)
    }

    /// [`Gateway::wait_for_log_count`] without blocking the async runtime,
    /// for tests that run client tasks meanwhile.
    pub async fn log_count_reaches(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        let (log, needle) = (self.log.clone(), needle.to_owned());
        tokio::task::spawn_blocking(move || wait_log(&log, &needle, count, timeout))
            .await
            .unwrap_or(false)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid; no memory is shared.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// Waits for the process to exit (its stderr closes), then returns
    /// its exit code; `None` if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        {
            let (lock, cv) = &*self.log;
            let mut log = lock.lock().expect("log lock");
            while !log.closed {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                log = cv.wait_timeout(log, deadline - now).expect("log lock").0;
            }
        }
        self.child.wait().ok().and_then(|s| s.code())
    }

    /// Resident memory, in KiB (`VmRSS`) and its peak (`VmHWM`).
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// The directory holding the config file.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_log(
    log: &Arc<(Mutex<Log>, Condvar)>,
    needle: &str,
    count: usize,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    let (lock, cv) = &**log;
    let mut log = lock.lock().expect("log lock");
    loop {
        if log.lines.iter().filter(|l| l.contains(needle)).count() >= count {
            return true;
        }
        let now = Instant::now();
        if log.closed || now >= deadline {
            return false;
        }
        log = cv.wait_timeout(log, deadline - now).expect("log lock").0;
    }
}
