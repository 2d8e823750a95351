//! Process-wide state filters share: key-value data with compare-and-swap,
//! and message queues, both scoped by VM id (the filter's name).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Called with a queue id when a message lands in it (schedules
/// `proxy_on_queue_ready` on the instance that registered the queue).
pub type QueueWaker = Arc<dyn Fn(u32) + Send + Sync>;

/// Why a shared-data write was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum CasError {
    Mismatch,
    /// Over the size limits below.
    TooLarge,
}

/// Largest value (shared data or queue message) a guest may store.
pub const MAX_VALUE: usize = 1 << 20;
/// Most bytes of shared data in the process, all filters together.
const MAX_TOTAL: usize = 64 << 20;
/// Most bytes of shared data one VM id may hold, so that one filter cannot
/// take the whole process budget from the others.
pub const MAX_PER_VM: usize = 16 << 20;
/// What an entry costs beyond its key and value, so that empty keys and
/// values still count.
const ENTRY_OVERHEAD: usize = 64;

/// Values and CAS tokens by (VM id, key).
type Entries = HashMap<(String, String), (Bytes, u32)>;

#[derive(Default)]
struct Store {
    entries: Entries,
    total: usize,
    per_vm: HashMap<String, usize>,
}

/// Key-value data shared by every instance of a VM id.
#[derive(Default)]
pub struct SharedData {
    store: Mutex<Store>,
}

impl SharedData {
    /// The value and its CAS token.
    pub fn get(&self, vm_id: &str, key: &str) -> Option<(Bytes, u32)> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store
            .entries
            .get(&(vm_id.to_string(), key.to_string()))
            .cloned()
    }

    /// Sets `key`; a non-zero `cas` must match the current token of an
    /// existing key (for a new key it is ignored, as in the reference host).
    pub fn set(&self, vm_id: &str, key: &str, value: Bytes, cas: u32) -> Result<(), CasError> {
        if value.len() > MAX_VALUE {
            return Err(CasError::TooLarge);
        }
        let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let store = &mut *guard;
        let id = (vm_id.to_string(), key.to_string());
        let cost = |v: &Bytes| v.len() + key.len() + ENTRY_OVERHEAD;
        let (old_cost, old_cas) = match store.entries.get(&id) {
            Some((v, c)) => {
                if cas != 0 && cas != *c {
                    return Err(CasError::Mismatch);
                }
                (cost(v), *c)
            }
            None => (0, 0),
        };
        let vm_total = store.per_vm.get(vm_id).copied().unwrap_or(0) - old_cost + cost(&value);
        let new_total = store.total - old_cost + cost(&value);
        if new_total > MAX_TOTAL || vm_total > MAX_PER_VM {
            return Err(CasError::TooLarge);
        }
        store.total = new_total;
        store.per_vm.insert(vm_id.to_string(), vm_total);
        // Tokens start at 1 so that 0 keeps meaning "no check".
        store
            .entries
            .insert(id, (value, old_cas.wrapping_add(1).max(1)));
        Ok(())
    }
}

#[cfg(test)]
impl SharedData {
    /// The bytes `vm_id` has used of its budget.
    fn used(&self, vm_id: &str) -> usize {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store.per_vm.get(vm_id).copied().unwrap_or(0)
    }
}

struct Queue {
    vm_id: String,
    name: String,
    items: VecDeque<Bytes>,
    bytes: usize,
    waker: Option<QueueWaker>,
}

/// Why a queue call failed.
#[derive(Debug, PartialEq, Eq)]
pub enum QueueError {
    /// No such queue (or not the caller's to drain).
    NotFound,
    /// Over one of the bounds below.
    Full,
}

/// Shared queues: registered by one instance, fed by any filter that
/// resolved them, drained only by instances of the VM id that registered them.
#[derive(Default)]
pub struct Queues {
    queues: Mutex<Vec<Queue>>,
}

/// Most messages waiting in one queue; enqueue beyond it fails.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Most bytes waiting in one queue.
pub const QUEUE_BYTES: usize = 8 << 20;
/// Most queues one VM id may register.
pub const QUEUES_PER_VM: usize = 64;

impl Queues {
    /// Registers (or re-registers) `name` under `vm_id`; ids start at 1.
    pub fn register(
        &self,
        vm_id: &str,
        name: &str,
        waker: Option<QueueWaker>,
    ) -> Result<u32, QueueError> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
        {
            queues[i].waker = waker;
            return Ok(i as u32 + 1);
        }
        if queues.iter().filter(|q| q.vm_id == vm_id).count() >= QUEUES_PER_VM {
            return Err(QueueError::Full);
        }
        queues.push(Queue {
            vm_id: vm_id.into(),
            name: name.into(),
            items: VecDeque::new(),
            bytes: 0,
            waker,
        });
        Ok(queues.len() as u32)
    }

    pub fn resolve(&self, vm_id: &str, name: &str) -> Option<u32> {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
            .map(|i| i as u32 + 1)
    }

    pub fn enqueue(&self, id: u32, item: Bytes) -> Result<(), QueueError> {
        let waker = {
            let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            let q = queues
                .get_mut((id as usize).wrapping_sub(1))
                .ok_or(QueueError::NotFound)?;
            if item.len() > MAX_VALUE
                || q.items.len() >= QUEUE_CAPACITY
                || q.bytes + item.len() > QUEUE_BYTES
            {
                return Err(QueueError::Full);
            }
            q.bytes += item.len();
            q.items.push_back(item);
            q.waker.clone()
        };
        if let Some(wake) = waker {
            wake(id);
        }
        Ok(())
    }

    /// `Ok(None)` when the queue is empty; `NotFound` when it does not
    /// exist or belongs to another VM id.
    pub fn dequeue(&self, vm_id: &str, id: u32) -> Result<Option<Bytes>, QueueError> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let q = queues
            .get_mut((id as usize).wrapping_sub(1))
            .filter(|q| q.vm_id == vm_id)
            .ok_or(QueueError::NotFound)?;
        let item = q.items.pop_front();
        if let Some(i) = &item {
            q.bytes -= i.len();
        }
        Ok(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_and_limits() {
        let d = SharedData::default();
        assert!(d.get("vm", "k").is_none());
        // A CAS on a key not yet there is ignored, as in the reference host.
        d.set("vm", "k", Bytes::from_static(b"1"), 77)
            .expect("first set");
        let (_, cas) = d.get("vm", "k").expect("present");
        d.set("vm", "k", Bytes::from_static(b"2"), cas)
            .expect("cas matches");
        assert_eq!(
            d.set("vm", "k", Bytes::from_static(b"3"), cas),
            Err(CasError::Mismatch)
        );
        assert!(d.get("other", "k").is_none());
        let big = Bytes::from(vec![0u8; MAX_VALUE + 1]);
        assert_eq!(d.set("vm", "big", big, 0), Err(CasError::TooLarge));
        let mb = Bytes::from(vec![0u8; MAX_VALUE]);
        let stored = (0..100)
            .take_while(|i| d.set("vm", &format!("k{i}"), mb.clone(), 0).is_ok())
            .count();
        assert_eq!(stored, 15, "one VM id holds at most 16 MiB");
        // Overwriting frees the old value's bytes.
        assert!(d.set("vm", "k0", Bytes::new(), 0).is_ok());
        assert!(d.set("vm", "again", mb.clone(), 0).is_ok());
        // Empty keys and values still cost: the count of entries is bounded.
        d.set("small", "", Bytes::new(), 0).expect("empty entry");
        assert_eq!(d.used("small"), ENTRY_OVERHEAD);
        // Other VM ids keep their own budget; the process total caps all.
        let others: usize = (0..8)
            .map(|v| {
                (0..20)
                    .take_while(|i| {
                        d.set(&format!("vm{v}"), &i.to_string(), mb.clone(), 0)
                            .is_ok()
                    })
                    .count()
            })
            .sum();
        assert!(
            (30..=60).contains(&others),
            "process total capped: {others}"
        );
    }

    #[test]
    fn queues_are_bounded_and_scoped_by_vm_id() {
        let q = Queues::default();
        let id = q.register("vm", "q", None).expect("registered");
        assert_eq!(q.resolve("vm", "q"), Some(id));
        assert_eq!(q.resolve("vm", "nope"), None);
        assert_eq!(q.resolve("other", "q"), None);
        assert_eq!(q.enqueue(id, Bytes::from_static(b"m")), Ok(()));
        // Another filter may feed the queue but not drain it.
        assert_eq!(q.dequeue("other", id), Err(QueueError::NotFound));
        assert_eq!(q.dequeue("vm", id), Ok(Some(Bytes::from_static(b"m"))));
        assert_eq!(q.dequeue("vm", id), Ok(None));
        assert!(q.dequeue("vm", 99).is_err());
        let mb = Bytes::from(vec![0u8; MAX_VALUE]);
        let queued = (0..20)
            .take_while(|_| q.enqueue(id, mb.clone()).is_ok())
            .count();
        assert_eq!(queued, QUEUE_BYTES / MAX_VALUE, "bytes per queue bounded");
        assert_eq!(
            q.dequeue("vm", id).map(|m| m.map(|m| m.len())),
            Ok(Some(MAX_VALUE))
        );
        assert_eq!(q.enqueue(id, mb), Ok(()), "draining frees room");
        let registered = (0..QUEUES_PER_VM + 5)
            .take_while(|i| q.register("many", &i.to_string(), None).is_ok())
            .count();
        assert_eq!(registered, QUEUES_PER_VM);
        assert!(
            q.register("fresh", "q", None).is_ok(),
            "other VM ids unaffected"
        );
    }
}
