//! A scratch directory for a child's data and logs, removed when dropped so that neither a
//! passing nor a failing run leaves files behind.

use std::path::{Path, PathBuf};

use crate::HarnessError;

pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A new, empty directory `payledger-<label>-<uuid>` under the system's temporary
    /// directory.
    pub fn new(label: &str) -> Result<Self, HarnessError> {
        let path = std::env::temp_dir().join(format!("payledger-{label}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).map_err(|source| HarnessError::Io {
            what: format!("cannot create {}", path.display()),
            source,
        })?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
