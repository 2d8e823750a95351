//! The compile cache: compiled filter code kept in a directory of the
//! gateway's own, one entry per (module digest, engine configuration).
//! Loading an entry is an unsafe deserialize of machine code, so the
//! directory must be ours and writable by no one else, and every entry is
//! checked against the digest of its source and of its own bytes first.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use super::engine::wt;

const MAGIC: &[u8; 8] = b"gwcache1";
/// Magic, the source module's SHA-256, the payload's SHA-256.
const HEADER: usize = 8 + 32 + 32;

/// A cache directory that passed the ownership checks.
pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_key: u64,
}

impl CompileCache {
    /// Creates `dir` (mode 0700) if needed and checks that it belongs to
    /// this process's user and that neither group nor others can write it.
    pub fn open(dir: &Path, engine_key: u64) -> Result<CompileCache> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let meta = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
        if meta.mode() & 0o022 != 0 {
            bail!(
                "{} is writable by group or others (mode {:o}); compiled code is only cached in a directory no one else can write",
                dir.display(),
                meta.mode() & 0o777
            );
        }
        // Our uid, without libc: the owner of a file we just created.
        let probe = dir.join(format!(".owner-{}", std::process::id()));
        let mine = std::fs::File::create(&probe)
            .and_then(|f| f.metadata())
            .map(|m| m.uid());
        let _ = std::fs::remove_file(&probe);
        let mine = mine.with_context(|| format!("writing in {}", dir.display()))?;
        if meta.uid() != mine {
            bail!(
                "{} belongs to uid {}, not to the gateway's uid {mine}",
                dir.display(),
                meta.uid()
            );
        }
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            engine_key,
        })
    }

    fn entry(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{sha256}-{:016x}.cwasm", self.engine_key))
    }

    /// The cached code of the module whose SHA-256 is `sha256`, if a sound
    /// entry exists. A damaged or foreign entry is removed.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Module> {
        let path = self.entry(sha256);
        let bytes = std::fs::read(&path).ok()?;
        let payload = match check(&bytes, sha256) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::warn!(path = %path.display(), "removing a cache entry that fails its checks: {e:#}");
                let _ = std::fs::remove_file(&path);
                return None;
            }
        };
        // SAFETY: the entry is in a directory only this user can write,
        // names the engine configuration it was compiled for, and its bytes
        // are those `Module::serialize` wrote for this very source (both
        // digests checked above); never a file from the filter folder.
        match unsafe { Module::deserialize(engine, payload) } {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unreadable cache entry: {e:#}");
                None
            }
        }
    }

    /// Stores `module`, compiled from the source whose SHA-256 is `sha256`.
    pub fn store(&self, module: &Module, sha256: &str) -> Result<()> {
        let source = hex_digest(sha256).context("source digest")?;
        let payload = wt(module.serialize(), "serializing")?;
        let path = self.entry(sha256);
        let tmp = path.with_extension(format!("tmp{}", rand::random::<u32>()));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(MAGIC)?;
        file.write_all(&source)?;
        file.write_all(&Sha256::digest(&payload))?;
        file.write_all(&payload)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
}

/// The payload of a cache entry, if its header names `sha256` as its
/// source and its bytes are whole.
fn check<'a>(bytes: &'a [u8], sha256: &str) -> Result<&'a [u8]> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        bail!("not a cache entry");
    }
    if bytes[8..40] != hex_digest(sha256).context("source digest")? {
        bail!("compiled from another source");
    }
    let payload = &bytes[HEADER..];
    if bytes[40..72] != Sha256::digest(payload)[..] {
        bail!("damaged: its digest does not match");
    }
    Ok(payload)
}

fn hex_digest(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let dir = std::env::temp_dir().join(format!("gateway-cache-perm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = CompileCache::open(&dir, 1).expect("a fresh directory is ours");
        let mode = std::fs::metadata(&dir).expect("dir").mode() & 0o777;
        assert_eq!(mode, 0o700);
        drop(cache);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = CompileCache::open(&dir, 1).err().expect("refused");
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn entries_are_checked_against_their_source_and_bytes() {
        let sha = "ab".repeat(32);
        let payload = b"machine code";
        let mut entry = MAGIC.to_vec();
        entry.extend_from_slice(&hex_digest(&sha).expect("hex"));
        entry.extend_from_slice(&Sha256::digest(payload));
        entry.extend_from_slice(payload);
        assert_eq!(check(&entry, &sha).expect("sound"), payload);
        assert!(check(&entry, &"cd".repeat(32)).is_err(), "another source");
        let mut damaged = entry.clone();
        *damaged.last_mut().expect("byte") ^= 1;
        assert!(check(&damaged, &sha).is_err(), "flipped byte");
        assert!(check(&entry[..HEADER - 1], &sha).is_err(), "truncated");
        assert!(check(payload, &sha).is_err(), "no header");
    }
}
