//! The access log's writer, off the request path: a worker formats each
//! line into its own buffer; full buffers (and, every 100 ms, partial
//! ones) go through a bounded queue to one writer thread, which writes
//! them to stderr or to a file reopened on `SIGUSR1` (logrotate). When the
//! queue is full the lines are dropped and counted, never a request slowed.

use std::cell::RefCell;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::{AccessLogField, TemplatePiece};

/// A buffer is handed to the writer once it holds this much.
const FLUSH_AT: usize = 32 * 1024;
/// Buffers waiting for the writer; beyond them lines are dropped.
const QUEUE: usize = 256;

/// How lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// What a line holds: the chosen fields, or (text only) a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub fields: Vec<AccessLogField>,
    /// A text line as literal text and fields: the template, or the
    /// `name=value` line of `fields`, worked out once here rather than
    /// for every line.
    pub text: Vec<TemplatePiece>,
}

impl Default for Layout {
    fn default() -> Self {
        Layout::new(AccessLogField::DEFAULT.to_vec(), None)
    }
}

impl Layout {
    pub fn new(fields: Vec<AccessLogField>, template: Option<Vec<TemplatePiece>>) -> Self {
        let text = template.unwrap_or_else(|| name_value_line(&fields));
        Layout { fields, text }
    }
}

/// `[time] access name=value ...` as pieces. The `access` marker sets
/// these lines apart from the gateway's own log lines on stderr; it
/// follows the time when the time comes first.
fn name_value_line(fields: &[AccessLogField]) -> Vec<TemplatePiece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut marked = false;
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        if *field == AccessLogField::Time {
            if !text.is_empty() {
                pieces.push(TemplatePiece::Text(std::mem::take(&mut text)));
            }
            pieces.push(TemplatePiece::Field(*field));
            if !marked {
                text.push_str(" access");
                marked = true;
            }
            continue;
        }
        if !marked {
            text.push_str("access ");
            marked = true;
        }
        text.push_str(field.name());
        text.push('=');
        pieces.push(TemplatePiece::Text(std::mem::take(&mut text)));
        pieces.push(TemplatePiece::Field(*field));
    }
    if !text.is_empty() {
        pieces.push(TemplatePiece::Text(text));
    }
    pieces
}

struct Writer {
    tx: SyncSender<Chunk>,
    /// Chunks handed over and not yet written.
    queued: AtomicUsize,
    dropped: AtomicU64,
    format: AtomicU8,
    layout: ArcSwap<Layout>,
    path: Mutex<Option<PathBuf>>,
    reopen: AtomicBool,
}

struct Chunk {
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: u64,
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

fn writer() -> &'static Writer {
    static WRITER: OnceLock<Writer> = OnceLock::new();
    WRITER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let _ = std::thread::Builder::new()
            .name("gateway-access-log".into())
            .spawn(move || write_loop(rx));
        Writer {
            tx,
            queued: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            format: AtomicU8::new(0),
            layout: ArcSwap::from_pointee(Layout::default()),
            path: Mutex::new(None),
            reopen: AtomicBool::new(false),
        }
    })
}

/// Sets the format and destination from the config (a new path is
/// opened before the next write).
pub fn configure(config: &crate::config::AccessLogConfig) {
    let format = match config.format {
        crate::config::AccessLogFormat::Text => Format::Text,
        crate::config::AccessLogFormat::Json => Format::Json,
    };
    set(format, config.path.clone());
    set_layout(Layout::new(
        config.fields.clone(),
        config.template.as_ref().map(|t| t.pieces.clone()),
    ));
}

/// Sets what lines hold (from the next line on).
pub fn set_layout(layout: Layout) {
    let w = writer();
    if **w.layout.load() != layout {
        w.layout.store(std::sync::Arc::new(layout));
    }
}

/// What lines hold now.
pub fn layout() -> arc_swap::Guard<std::sync::Arc<Layout>> {
    writer().layout.load()
}

/// Sets the format and destination (`None`: stderr).
pub fn set(format: Format, path: Option<PathBuf>) {
    let w = writer();
    w.format.store(format as u8, Ordering::Relaxed);
    let mut current = w.path.lock().unwrap_or_else(|p| p.into_inner());
    if *current != path {
        *current = path;
        w.reopen.store(true, Ordering::Release);
    }
}

pub fn format() -> Format {
    match writer().format.load(Ordering::Relaxed) {
        1 => Format::Json,
        _ => Format::Text,
    }
}

/// Reopens the file before the next write (after logrotate moved it).
pub fn reopen() {
    writer().reopen.store(true, Ordering::Release);
}

/// Lines dropped because the writer could not keep up.
pub fn dropped() -> u64 {
    writer().dropped.load(Ordering::Relaxed)
}

/// Appends one line, written by `line` into the calling thread's buffer.
pub fn write(line: impl FnOnce(&mut Vec<u8>)) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        line(&mut p.bytes);
        p.bytes.push(b'\n');
        p.lines += 1;
        if p.bytes.len() >= FLUSH_AT {
            hand_over(&mut p);
        }
    });
}

/// Hands the calling thread's partial buffer to the writer.
pub fn flush() {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if !p.bytes.is_empty() {
            hand_over(&mut p);
        }
    });
}

/// Waits (at most `limit`) until every handed-over buffer is written; for
/// the end of the process.
pub fn drain(limit: Duration) {
    let until = std::time::Instant::now() + limit;
    while writer().queued.load(Ordering::Acquire) > 0 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Flushes the calling worker's buffer every 100 ms, forever.
pub async fn flush_periodically() {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        flush();
    }
}

fn hand_over(p: &mut Pending) {
    let bytes = std::mem::replace(&mut p.bytes, Vec::with_capacity(FLUSH_AT + 1024));
    let lines = std::mem::take(&mut p.lines);
    let w = writer();
    w.queued.fetch_add(1, Ordering::AcqRel);
    match w.tx.try_send(Chunk { bytes }) {
        Ok(()) => {}
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
            w.queued.fetch_sub(1, Ordering::AcqRel);
            w.dropped.fetch_add(lines, Ordering::Relaxed);
        }
    }
}

enum Sink {
    Stderr,
    File(std::fs::File),
}

fn open(path: Option<&PathBuf>) -> Sink {
    match path {
        None => Sink::Stderr,
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => Sink::File(file),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot open the access log; writing it to stderr");
                Sink::Stderr
            }
        },
    }
}

fn write_loop(rx: Receiver<Chunk>) {
    let mut sink = Sink::Stderr;
    while let Ok(chunk) = rx.recv() {
        let w = writer();
        if w.reopen.swap(false, Ordering::Acquire) {
            let path = w.path.lock().unwrap_or_else(|p| p.into_inner()).clone();
            sink = open(path.as_ref());
        }
        let written = match &mut sink {
            Sink::Stderr => std::io::stderr().lock().write_all(&chunk.bytes),
            Sink::File(f) => f.write_all(&chunk.bytes),
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot write the access log");
        }
        w.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessLogField as F;
    use TemplatePiece::{Field, Text};

    fn text(t: &str) -> TemplatePiece {
        Text(t.to_string())
    }

    #[test]
    fn a_field_list_becomes_name_value_pieces_with_the_marker() {
        assert_eq!(
            Layout::new(vec![F::Time, F::Listener, F::Status], None).text,
            vec![
                Field(F::Time),
                text(" access listener="),
                Field(F::Listener),
                text(" status="),
                Field(F::Status),
            ]
        );
        assert_eq!(
            Layout::new(vec![F::Listener, F::Time], None).text,
            vec![
                text("access listener="),
                Field(F::Listener),
                text(" "),
                Field(F::Time)
            ]
        );
        assert_eq!(
            Layout::new(vec![F::Time], None).text,
            vec![Field(F::Time), text(" access")]
        );
    }

    #[test]
    fn a_template_is_kept_as_given() {
        let pieces = vec![text("> "), Field(F::Path)];
        assert_eq!(
            Layout::new(vec![F::Status], Some(pieces.clone())).text,
            pieces
        );
    }
}
