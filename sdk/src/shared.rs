//! Data shared by every instance of every filter in the gateway
//! (`proxy_get_shared_data` / `proxy_set_shared_data`), with compare-and-swap.

use crate::abi::status;
use crate::host;

/// Version stamp of a shared value, for compare-and-swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cas(u32);

/// Why a shared-data write failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedError {
    /// Someone wrote the key since it was read: read again and retry.
    CasMismatch,
    /// The host refused, with this ABI status code.
    Host(u32),
}

/// Reads `key`: its value and version, or `None` if it was never written.
pub fn get(key: &str) -> Option<(Vec<u8>, Cas)> {
    match host::with(|h| h.shared_data(key)) {
        Ok((Some(value), cas)) => Some((value, Cas(cas))),
        _ => None,
    }
}

/// Writes `key`. With `Some(cas)` the write only happens if the value is still
/// at that version; with `None` it overwrites unconditionally.
pub fn set(key: &str, value: &[u8], cas: Option<Cas>) -> Result<(), SharedError> {
    match host::with(|h| h.set_shared_data(key, value, cas.map_or(0, |c| c.0))) {
        Ok(()) => Ok(()),
        Err(status::CAS_MISMATCH) => Err(SharedError::CasMismatch),
        Err(code) => Err(SharedError::Host(code)),
    }
}

/// Read-modify-write with compare-and-swap, retried up to 32 times on
/// conflicts. `update` gets the current value (if any) and returns the new one,
/// plus a result handed back to the caller.
pub fn update<R>(
    key: &str,
    mut update: impl FnMut(Option<&[u8]>) -> (Vec<u8>, R),
) -> Result<R, SharedError> {
    let mut last = SharedError::CasMismatch;
    for _ in 0..32 {
        let current = get(key);
        let (value, result) = update(current.as_ref().map(|(v, _)| v.as_slice()));
        // A first write must not clobber a concurrent first write: CAS 0 would
        // overwrite, so an absent key is only created if still absent.
        let outcome = match &current {
            Some((_, cas)) => set(key, &value, Some(*cas)),
            None => set_if_absent(key, &value),
        };
        match outcome {
            Ok(()) => return Ok(result),
            Err(SharedError::CasMismatch) => last = SharedError::CasMismatch,
            Err(other) => return Err(other),
        }
    }
    Err(last)
}

fn set_if_absent(key: &str, value: &[u8]) -> Result<(), SharedError> {
    // Hosts number versions from 1 after the first write, so "version 0" is
    // not a valid CAS; the best available is: re-check, then write.
    if get(key).is_some() {
        return Err(SharedError::CasMismatch);
    }
    set(key, value, None)
}

/// The host's wall clock. Moved to [`crate::time::now`].
#[deprecated(since = "0.1.0", note = "use gateway_sdk::time::now")]
pub fn now() -> std::time::SystemTime {
    crate::time::now()
}
