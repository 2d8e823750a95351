//! Message bodies: whether a filter sees a body (streamed untouched, or
//! buffered whole up to a limit it names), and the buffered [`Body`] itself.

use crate::abi::BufferType;
use crate::host;

/// What happens when a body a filter asked to buffer outgrows its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverLimit {
    /// Stop buffering and let the whole body through unchanged: the body hook
    /// does not run for this message. For filters that only care about small
    /// bodies (rewrite small JSON documents, leave downloads alone).
    PassThrough,
    /// Refuse the message: a request is answered 413, a response is replaced
    /// by 502. For filters that must see every byte (signature checks).
    Reject,
}

/// How one message's body is handled, chosen in `on_request`/`on_response`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyPlan {
    /// Chunks go through as they arrive; the filter never sees them.
    Stream,
    /// Held until the end, then handed to the body hook.
    Buffer { limit: usize, over_limit: OverLimit },
    /// Was buffering, outgrew the limit with [`OverLimit::PassThrough`].
    PassingThrough,
}

impl BodyPlan {
    /// The plan a filter's `*_BODY_LIMIT` constant gives every message.
    pub(crate) fn from_default(limit: Option<usize>) -> Self {
        match limit {
            Some(limit) => BodyPlan::Buffer {
                limit,
                over_limit: OverLimit::Reject,
            },
            None => BodyPlan::Stream,
        }
    }
}

/// A whole, buffered request or response body. Changes are written back to the
/// host when the hook returns.
#[derive(Debug, Default)]
pub struct Body {
    bytes: Vec<u8>,
    changed: bool,
}

impl Body {
    pub(crate) fn read(buffer: BufferType, size: usize) -> Self {
        let bytes = host::with(|h| h.buffer(buffer, 0, size)).unwrap_or_default();
        Body {
            bytes,
            changed: false,
        }
    }

    pub(crate) fn write_back(self, buffer: BufferType, old_size: usize) {
        if self.changed {
            let _ = host::with(|h| h.set_buffer(buffer, 0, old_size, &self.bytes));
        }
    }

    /// The body bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The body as UTF-8 text, if it is.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }

    /// Replaces the whole body.
    pub fn replace(&mut self, bytes: impl Into<Vec<u8>>) {
        self.bytes = bytes.into();
        self.changed = true;
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when the body is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}
