//! A real `redis-server` on a free loopback port, started and stopped by
//! the test (the Debian package; `.ci/run` installs it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::WAIT;

/// A running `redis-server`; killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port and waits until it answers.
    pub fn start() -> RedisServer {
        Self::start_with(Vec::new())
    }

    /// Like [`Self::start`] with more `redis-server` arguments. With the
    /// marker `--tls-port` (no value) among them, the port is the TLS one
    /// (plain TCP off) and readiness is the port accepting connections.
    pub fn start_with(args: Vec<String>) -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = RedisServer {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: tempfile::tempdir().expect("temp dir"),
            args,
        };
        server.restart();
        server
    }

    /// Starts the server again on the same port (empty: no persistence).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is running");
        let tls = self.args.iter().any(|a| a == "--tls-port");
        let port = self.addr.port().to_string();
        let ports = if tls {
            vec!["--port", "0", "--tls-port", &port]
        } else {
            vec!["--port", &port]
        };
        let args = self.args.iter().filter(|a| *a != "--tls-port");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1"])
            .args(ports)
            .args(args)
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let ready = if tls {
                TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok()
            } else {
                self.try_command(&["PING"])
                    .is_some_and(|r| r == "+PONG" || r.starts_with("-NOAUTH"))
            };
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on {} did not answer PING", self.addr);
    }

    /// Stops the server (the port stays reserved for [`Self::restart`]
    /// only by convention: nothing else in the test takes it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends one command; the reply's first line (`+OK`, `:3`, `$5`...),
    /// or for a bulk string its content.
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|| panic!("redis {} did not answer {args:?}", self.addr))
    }

    fn try_command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end().to_string();
        match line.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            Some(len) => {
                let mut bulk = vec![0; len + 2];
                reader.read_exact(&mut bulk).ok()?;
                Some(String::from_utf8_lossy(&bulk[..len]).into_owned())
            }
            None => Some(line),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A gateway config for rate-limit tests: `[runtime] workers`, an admin
/// listener, listener `web` answering 200 itself on every path behind the
/// bundled `ratelimit` filter configured with `filter_config` (JSON), and
/// the Redis cluster `redis` at `redis`.
pub fn ratelimit_config(redis: SocketAddr, filter_config: &str, workers: usize) -> String {
    format!(
        r#"
        [runtime]
        workers = {workers}
        [admin]
        address = "127.0.0.1:0"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.filter]]
        name = "ratelimit"
        path = "{wasm}"
        config = '''{filter_config}'''
        # A loaded test machine must not turn a slow guest call into a fault.
        deadline = "1s"
        [[listener.route]]
        path_prefix = "/"
        [listener.route.direct]
        status = 200
        body = "ok"
        [[cluster]]
        name = "redis"
        protocol = "redis"
        endpoints = ["{redis}"]
        connect_timeout = "200ms"
        request_timeout = "500ms"
        "#,
        wasm = crate::wasm::path("filter-ratelimit").display(),
    )
}
