//! What the unit tests of the program share: scratch directories and module trees.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory under the system's temporary directory, removed with everything in it when
/// dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory whose name says which test made it.
    pub fn new(test: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("depmod-unit-{}-{n}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The path as bytes, as the program takes paths.
    pub fn bytes(&self) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        self.0.as_os_str().as_bytes().to_vec()
    }

    /// The names in the directory, sorted.
    pub fn names(&self) -> Vec<String> {
        let entries = std::fs::read_dir(&self.0).unwrap();
        let mut names: Vec<String> =
            entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    /// Writes `data` at `rel` (parents created).
    pub fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A module's file: `.modinfo` strings `modinfo`, exporting `exports`, needing `imports`.
pub fn module(modinfo: &[&str], exports: &[&str], imports: &[&str]) -> Vec<u8> {
    depmod_core::output::fixture::spec(modinfo, exports, imports).build()
}

/// `data` compressed with xz (the encoder is a dev-dependency: any build can make xz files).
pub fn xz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}
