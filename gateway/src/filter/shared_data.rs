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

/// Values and CAS tokens by (VM id, key).
type Entries = HashMap<(String, String), (Bytes, u32)>;

/// Key-value data shared by every instance of a VM id.
#[derive(Default)]
pub struct SharedData {
    /// Entries, and the bytes of keys and values they hold.
    entries: Mutex<(Entries, usize)>,
}

impl SharedData {
    /// The value and its CAS token.
    pub fn get(&self, vm_id: &str, key: &str) -> Option<(Bytes, u32)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .0
            .get(&(vm_id.to_string(), key.to_string()))
            .cloned()
    }

    /// Sets `key`; a non-zero `cas` must match the current token.
    pub fn set(&self, vm_id: &str, key: &str, value: Bytes, cas: u32) -> Result<(), CasError> {
        if value.len() > MAX_VALUE {
            return Err(CasError::TooLarge);
        }
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (entries, total) = &mut *guard;
        let id = (vm_id.to_string(), key.to_string());
        let (old_len, old_cas) = entries
            .get(&id)
            .map_or((0, 0), |(v, c)| (v.len() + key.len(), *c));
        if cas != 0 && cas != old_cas {
            return Err(CasError::Mismatch);
        }
        let new_total = *total - old_len + value.len() + key.len();
        if new_total > MAX_TOTAL {
            return Err(CasError::TooLarge);
        }
        *total = new_total;
        // Tokens start at 1 so that 0 keeps meaning "no check".
        entries.insert(id, (value, old_cas.wrapping_add(1).max(1)));
        Ok(())
    }
}

struct Queue {
    vm_id: String,
    name: String,
    items: VecDeque<Bytes>,
    waker: Option<QueueWaker>,
}

/// Shared queues: registered by one instance, fed by any.
#[derive(Default)]
pub struct Queues {
    queues: Mutex<Vec<Queue>>,
}

/// Most messages waiting in one queue; enqueue beyond it fails.
const QUEUE_CAPACITY: usize = 10_000;

impl Queues {
    /// Registers (or re-registers) `name` under `vm_id`; ids start at 1.
    pub fn register(&self, vm_id: &str, name: &str, waker: Option<QueueWaker>) -> u32 {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
        {
            queues[i].waker = waker;
            return i as u32 + 1;
        }
        queues.push(Queue {
            vm_id: vm_id.into(),
            name: name.into(),
            items: VecDeque::new(),
            waker,
        });
        queues.len() as u32
    }

    pub fn resolve(&self, vm_id: &str, name: &str) -> Option<u32> {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
            .map(|i| i as u32 + 1)
    }

    /// `Ok(false)` when the queue is full, `Err` when it does not exist.
    pub fn enqueue(&self, id: u32, item: Bytes) -> Result<bool, ()> {
        if item.len() > MAX_VALUE {
            return Ok(false);
        }
        let waker = {
            let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            let q = queues.get_mut((id as usize).wrapping_sub(1)).ok_or(())?;
            if q.items.len() >= QUEUE_CAPACITY {
                return Ok(false);
            }
            q.items.push_back(item);
            q.waker.clone()
        };
        if let Some(wake) = waker {
            wake(id);
        }
        Ok(true)
    }

    /// `Err` when the queue does not exist, `Ok(None)` when it is empty.
    pub fn dequeue(&self, id: u32) -> Result<Option<Bytes>, ()> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let q = queues.get_mut((id as usize).wrapping_sub(1)).ok_or(())?;
        Ok(q.items.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_and_queues() {
        let d = SharedData::default();
        assert!(d.get("vm", "k").is_none());
        d.set("vm", "k", Bytes::from_static(b"1"), 0)
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
        assert!(
            (60..=64).contains(&stored),
            "total capped at 64 MiB: {stored}"
        );
        // Overwriting frees the old value's bytes.
        assert!(d.set("vm", "k0", Bytes::new(), 0).is_ok());
        assert!(d.set("vm", "again", mb.clone(), 0).is_ok());

        let q = Queues::default();
        let id = q.register("vm", "q", None);
        assert_eq!(q.resolve("vm", "q"), Some(id));
        assert_eq!(q.resolve("vm", "nope"), None);
        assert_eq!(q.enqueue(id, Bytes::from_static(b"m")), Ok(true));
        assert_eq!(q.dequeue(id), Ok(Some(Bytes::from_static(b"m"))));
        assert_eq!(q.dequeue(id), Ok(None));
        assert!(q.dequeue(99).is_err());
    }
}
