//! Shared queues (`proxy_register_shared_queue` and friends): messages
//! between filters and services of one gateway. The module that registers
//! a queue owns it and is told when messages arrive
//! ([`crate::Service::on_queue_ready`]); anyone who resolves it by VM id and
//! name can enqueue.

use crate::abi::status;
use crate::host;

/// A shared queue, by the id the host gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Queue(pub(crate) u32);

impl Queue {
    /// Registers (or finds again) the queue `name` of this module's VM id;
    /// `Err` is the host's ABI status code.
    pub fn register(name: &str) -> Result<Queue, u32> {
        host::with(|h| h.register_queue(name)).map(Queue)
    }

    /// The queue `name` registered by VM id `vm_id` (empty: this module's
    /// own), if it exists yet.
    pub fn resolve(vm_id: &str, name: &str) -> Option<Queue> {
        match host::with(|h| h.resolve_queue(vm_id, name)) {
            Ok(id) => Some(Queue(id)),
            Err(status::NOT_FOUND) | Err(_) => None,
        }
    }

    /// The host's id of the queue.
    pub fn id(&self) -> u32 {
        self.0
    }

    /// Appends a message; `Err` is the host's ABI status code (for example
    /// when the queue is full).
    pub fn enqueue(&self, message: &[u8]) -> Result<(), u32> {
        host::with(|h| h.enqueue(self.0, message))
    }

    /// Takes the oldest message, if any (only the registering module may).
    pub fn dequeue(&self) -> Option<Vec<u8>> {
        host::with(|h| h.dequeue(self.0)).ok().flatten()
    }
}
