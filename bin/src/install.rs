//! Installing the indexes: all or nothing, and no writes when nothing changed; or, with `-n`,
//! printing them.
//!
//! Each output goes, as soon as it is generated, to a temporary file created exclusively in the
//! output directory, written completely, and handed to the [`Flusher`], a thread that flushes
//! the files one after the other (`fdatasync`) while the next outputs are made. When every
//! output is written and flushed, they are renamed over the old indexes, in kmod's order, and
//! the directory is synced. Any failure before the renames removes the temporary files and
//! leaves every old index as it was. An output identical to the file it would replace (same length, same bytes) is not
//! written at all, so repeated runs on an unchanged tree cost no flash writes;
//! an unchanged `modules.dep` still gets a new modification time, which `-A` compares.
//!
//! What survives a power cut: before the renames, the old indexes; after depmod returns, the new
//! ones. A cut during the renames (a few milliseconds) can leave some files old and some new,
//! each one complete.
//!
//! After the renames, each index's stamp is taken ([`Installed`]), for the module cache: only
//! an index that is still the file this run wrote or found equal gets one.
//!
//! [`write_unflushed`] writes the module cache the same way, without the flush: a cache cut
//! short by a crash fails its own checks and is not used.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use depmod_core::cache::{Stamp, Time};

use crate::load;
use crate::log::{Failed, Log, log};
use crate::par;

/// Suffix of temporary files: `.<name>.<pid>.<n>.depmod-tmp`.
const TMP_SUFFIX: &str = ".depmod-tmp";

/// Where the outputs go.
pub enum Sink<'l> {
    /// `-n`: the text outputs, one after the other, on stdout.
    Stdout(io::StdoutLock<'static>),
    /// Stdout was closed under us (a pipe reader that went away): nothing more is printed.
    Closed,
    /// Files in the output directory, installed together at the end.
    Files(Installer<'l>),
}

impl<'l> Sink<'l> {
    /// Stdout for `-n`, otherwise an installer into `dir`, which is created (with kmod's FATAL
    /// message when it cannot be).
    pub fn open(log: &'l Log, dry_run: bool, dir: &[u8]) -> Result<Self, Failed> {
        if dry_run {
            return Ok(Sink::Stdout(io::stdout().lock()));
        }
        if let Err(e) = create_dir(dir) {
            log!(log, Fatal, "could not create directory ", dir, ": ", e);
            return Err(Failed);
        }
        Ok(Sink::Files(Installer::new(log, dir)))
    }

    /// Takes one finished output.
    pub fn put(&mut self, name: &'static str, data: &[u8]) -> Result<(), Failed> {
        match self {
            Sink::Stdout(out) => {
                if out.write_all(data).is_err() {
                    *self = Sink::Closed;
                }
                Ok(())
            }
            Sink::Closed => Ok(()),
            Sink::Files(installer) => installer.add(name, data),
        }
    }

    /// Takes outputs known to equal the files in place, without their contents (a run that
    /// found nothing changed): as if each had been put with the same bytes.
    pub fn unchanged(&mut self, names: &[&'static str]) {
        if let Sink::Files(installer) = self {
            for &name in names {
                let target = installer.dir.join(name);
                let stamp = identity(&target);
                installer.pending.push(Pending { name, tmp: None, identity: stamp });
            }
        }
    }

    /// Installs the files (nothing to do for stdout); what was installed.
    pub fn finish(self) -> Result<Installed, Failed> {
        match self {
            Sink::Stdout(_) | Sink::Closed => Ok(Installed::default()),
            Sink::Files(installer) => installer.commit(),
        }
    }
}

/// The indexes as installed, for the module cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Installed {
    /// Each index and its stamp after the renames, when it is still the file this run wrote or
    /// found equal to its output (`None`: another process replaced it meanwhile, or it could
    /// not be looked at).
    pub stamps: Vec<(&'static str, Option<Stamp>)>,
    /// The CRC-32 of `modules.dep`'s contents.
    pub dep_crc: Option<u32>,
}

/// Creates `dir` and its parents (mode 0755), as kmod's `mkdir_p`.
fn create_dir(dir: &[u8]) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o755).create(Path::new(OsStr::from_bytes(dir)))
}

/// One output waiting for its rename.
struct Pending {
    name: &'static str,
    /// The temporary file (written, and handed to the flusher), or `None` when the existing file
    /// already has these contents.
    tmp: Option<PathBuf>,
    /// The stamp of the file with these contents (the temporary file, or the one in place).
    identity: Option<Stamp>,
}

/// Collects outputs in temporary files, then installs them all at once.
pub struct Installer<'l> {
    log: &'l Log,
    dir: PathBuf,
    dir_bytes: Vec<u8>,
    pending: Vec<Pending>,
    counter: u32,
    /// The mode a new index gets: 0644 less the umask.
    fresh_mode: u32,
    dep_crc: Option<u32>,
    flusher: Flusher,
}

impl<'l> Installer<'l> {
    /// An installer writing into the (existing) directory `dir`; removes temporary files that
    /// killed earlier runs left there.
    fn new(log: &'l Log, dir: &[u8]) -> Self {
        let installer = Installer {
            log,
            dir: PathBuf::from(OsStr::from_bytes(dir)),
            dir_bytes: dir.to_vec(),
            pending: Vec::new(),
            counter: 0,
            fresh_mode: fresh_mode(),
            dep_crc: None,
            flusher: Flusher::default(),
        };
        installer.remove_stale();
        installer
    }

    /// Writes `data` as the new `name`, unless the current file already holds exactly it.
    fn add(&mut self, name: &'static str, data: &[u8]) -> Result<(), Failed> {
        let target = self.dir.join(name);
        if name == "modules.dep" {
            self.dep_crc = Some(crc32fast::hash(data));
        }
        if let Some(identity) = same_contents(&target, data, self.fresh_mode) {
            self.pending.push(Pending { name, tmp: None, identity: Some(identity) });
            return Ok(());
        }
        match self.write_tmp(name, data) {
            Ok((tmp, file)) => {
                let identity = rustix::fs::fstat(&file).ok().map(|st| load::stamp(&st));
                self.flusher.flush(name, file);
                self.pending.push(Pending { name, tmp: Some(tmp), identity });
                Ok(())
            }
            Err((tmp, e)) => {
                if let Some(tmp) = tmp {
                    let _ = fs::remove_file(tmp);
                }
                self.write_error(name, &e);
                Err(Failed)
            }
        }
    }

    fn write_error(&self, name: &str, e: &io::Error) {
        log!(self.log, Error, "could not write ", &self.dir_bytes[..], "/", name, ": ", e);
    }

    /// Creates a fresh temporary file for `name` and writes `data` through it (not flushed).
    fn write_tmp(
        &mut self,
        name: &str,
        data: &[u8],
    ) -> Result<(PathBuf, File), (Option<PathBuf>, io::Error)> {
        write_tmp(&self.dir, name, &mut self.counter, &[data])
    }

    /// Waits for every written output to be flushed to disk, then renames each into place, in
    /// the order they were added, then syncs the directory. Returns each index's stamp after the
    /// renames.
    fn commit(mut self) -> Result<Installed, Failed> {
        if let Err((name, e)) = self.flusher.finish() {
            self.write_error(name, &e);
            return Err(Failed);
        }
        let pending = std::mem::take(&mut self.pending);
        for (i, p) in pending.iter().enumerate() {
            let target = self.dir.join(p.name);
            let Some(tmp) = &p.tmp else {
                if p.name == "modules.dep" {
                    // `-A` compares module times with this file's: keep it current, with the
                    // kernel's clock for file times (coarser than the system clock, so a module
                    // written just after this is never older than it).
                    let now = rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_NOW };
                    let omit = rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT };
                    let times =
                        rustix::fs::Timestamps { last_access: omit, last_modification: now };
                    let touched = File::options()
                        .write(true)
                        .open(&target)
                        .and_then(|f| rustix::fs::futimens(&f, &times).map_err(io::Error::from));
                    if let Err(e) = touched {
                        log!(
                            self.log,
                            Warning,
                            "could not update the modification time of ",
                            target.as_path(),
                            ": ",
                            e
                        );
                    }
                }
                continue;
            };
            if let Err(e) = fs::rename(tmp, &target) {
                log!(
                    self.log,
                    Error,
                    "could not rename ",
                    tmp.as_path(),
                    " to ",
                    target.as_path(),
                    ": ",
                    e
                );
                for later in &pending[i..] {
                    if let Some(t) = &later.tmp {
                        let _ = fs::remove_file(t);
                    }
                }
                return Err(Failed);
            }
        }
        // The renames made durable (a run that renamed nothing has nothing to sync).
        if pending.iter().any(|p| p.tmp.is_some()) {
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
        let stamps = pending.iter().map(|p| (p.name, self.installed(p))).collect();
        Ok(Installed { stamps, dep_crc: self.dep_crc })
    }

    /// The stamp of `p`'s index now, if it is still the file written or found equal: the same
    /// file, size and modification time (only `modules.dep`'s time was just set).
    fn installed(&self, p: &Pending) -> Option<Stamp> {
        let now = identity(&self.dir.join(p.name))?;
        let then = p.identity?;
        let time = |s: &Stamp| if p.name == "modules.dep" { Time::default() } else { s.mtime };
        let same = (now.dev, now.ino, now.size, time(&now))
            == (then.dev, then.ino, then.size, time(&then));
        same.then_some(now)
    }

    /// Removes `.modules.*.depmod-tmp` files whose process no longer exists.
    fn remove_stale(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(body) =
                name.strip_prefix(".modules.").and_then(|n| n.strip_suffix(TMP_SUFFIX))
            else {
                continue;
            };
            let mut parts = body.rsplit('.');
            let (_counter, pid) = (parts.next(), parts.next().and_then(|p| p.parse::<i32>().ok()));
            let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) else { continue };
            let gone =
                matches!(rustix::process::test_kill_process(pid), Err(rustix::io::Errno::SRCH));
            if gone {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

impl Drop for Installer<'_> {
    /// An installer dropped before `commit` (a later output failed) leaves nothing behind (its
    /// flusher is stopped first).
    fn drop(&mut self) {
        let _ = self.flusher.finish();
        for p in &self.pending {
            if let Some(t) = &p.tmp {
                let _ = fs::remove_file(t);
            }
        }
    }
}

/// Flushes written files (`fdatasync`) one after the other on a thread of its own
/// ([`par::Worker`], started with the first file), so that the disk writes one index while the
/// next is made: the flush before the renames then waits only for the last files. A flush costs
/// about the time the disk takes to write the file's bytes, whether the files are flushed
/// together or one after the other: 7-9 ms for four 1 MiB files either way, 3 ms for one (a
/// virtual disk, ext4). Flushing all of them at the end made a re-run that removes a module
/// wait 14-22 ms after its last index was written. Should no thread start, each file is flushed
/// as it is handed over.
#[derive(Default)]
struct Flusher {
    /// The thread, once started; `None` again after [`Flusher::finish`].
    worker: Option<par::Worker<(&'static str, File), Failure>>,
    /// The first failure of a flush made without the thread.
    failed: Option<Failure>,
}

/// A flush that failed: the index whose temporary file it was, and why.
type Failure = (&'static str, io::Error);

impl Flusher {
    /// Has `file`, the temporary file of index `name`, flushed.
    fn flush(&mut self, name: &'static str, file: File) {
        if self.failed.is_some() {
            return;
        }
        if self.worker.is_none() {
            let sync = |(name, file): (&'static str, File)| file.sync_data().map_err(|e| (name, e));
            self.worker = par::Worker::spawn("flush", sync).ok();
        }
        match &self.worker {
            Some(worker) => worker.push((name, file)),
            None => self.failed = file.sync_data().err().map(|e| (name, e)),
        }
    }

    /// Waits until every file handed over is flushed; the first failure, reported once.
    fn finish(&mut self) -> Result<(), Failure> {
        if let Some(Err(failure)) = self.worker.take().map(par::Worker::finish) {
            self.failed.get_or_insert(failure);
        }
        self.failed.take().map_or(Ok(()), Err)
    }
}

/// `O_NOFOLLOW`: an index that is a symbolic link is replaced, as kmod replaces it.
fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Creates a fresh temporary file for `name` in `dir` (numbered from `counter`) and writes
/// `parts` through it, one after the other (not flushed).
fn write_tmp(
    dir: &Path,
    name: &str,
    counter: &mut u32,
    parts: &[&[u8]],
) -> Result<(PathBuf, File), (Option<PathBuf>, io::Error)> {
    let pid = std::process::id();
    loop {
        *counter += 1;
        let tmp = dir.join(format!(".{name}.{pid}.{counter}{TMP_SUFFIX}"));
        let file = OpenOptions::new().write(true).create_new(true).mode(0o644).open(&tmp);
        let mut file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && *counter < 1000 => continue,
            Err(e) => return Err((None, e)),
        };
        return match parts.iter().try_for_each(|part| file.write_all(part)) {
            Ok(()) => Ok((tmp, file)),
            Err(e) => Err((Some(tmp), e)),
        };
    }
}

/// Writes `parts`, one after the other, as `dir/name` through a temporary file renamed over it,
/// without flushing it (the module cache: a file cut short by a crash is detected when it is
/// read). Nothing is left behind on failure.
pub fn write_unflushed(dir: &[u8], name: &str, parts: &[&[u8]]) -> io::Result<()> {
    let dir = Path::new(OsStr::from_bytes(dir));
    let (tmp, file) = write_tmp(dir, name, &mut 0, parts).map_err(|(tmp, e)| {
        if let Some(tmp) = tmp {
            let _ = fs::remove_file(tmp);
        }
        e
    })?;
    drop(file);
    fs::rename(&tmp, dir.join(name)).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// The stamp of the file at `path` itself (a symbolic link is not followed).
fn identity(path: &Path) -> Option<Stamp> {
    let st = rustix::fs::lstat(path).ok()?;
    Some(load::stamp(&st))
}

/// The mode a new index gets: 0644 less the umask.
pub fn fresh_mode() -> u32 {
    0o644 & !current_umask()
}

/// The process's umask (read by setting it, then setting it back: no other thread creates
/// files meanwhile).
fn current_umask() -> u32 {
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    rustix::process::umask(old);
    old.as_raw_mode() as u32
}

/// Whether the file at `path` is exactly what writing `data` would leave there: a regular file
/// (not a symbolic link) of this user with the mode a new one gets, holding the same bytes (same
/// length, same contents). If so, its stamp (taken before it was read).
#[allow(clippy::unnecessary_cast)] // the field types differ between targets
fn same_contents(path: &Path, data: &[u8], mode: u32) -> Option<Stamp> {
    let opened = File::options().read(true).custom_flags(libc_o_nofollow()).open(path);
    let mut file = opened.ok()?;
    let st = rustix::fs::fstat(&file).ok()?;
    let fits = rustix::fs::FileType::from_raw_mode(st.st_mode as _)
        == rustix::fs::FileType::RegularFile
        && st.st_size as u64 == data.len() as u64
        && st.st_mode as u32 & 0o7777 == mode
        && st.st_uid as u32 == rustix::process::geteuid().as_raw();
    if !fits {
        return None;
    }
    holds(&mut file, data).ok()?.then(|| load::stamp(&st))
}

/// Bytes of a file compared at a time with what it should hold.
const COMPARED: usize = 64 * 1024;

/// Whether what is left to read of `file` is exactly `data`: read a block at a time into one
/// small buffer, stopping at the first difference. Reading a 1.2 MB index whole into a buffer
/// of its size, then checking both copies' CRC-32 before comparing them, took a fresh mapping,
/// its page faults and three passes over the bytes.
fn holds(file: &mut File, mut data: &[u8]) -> io::Result<bool> {
    let mut block = vec![0; COMPARED.min(data.len() + 1)];
    loop {
        let n = match file.read(&mut block) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(data.is_empty());
        }
        match (data.split_at_checked(n), block.get(..n)) {
            (Some((head, rest)), Some(read)) if head == read => data = rest,
            _ => return Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn written_in_full_then_renamed_together() {
        let dir = TempDir::new("install");
        let log = Log::capturing();
        let mut installer = Installer::new(&log, &dir.bytes());
        installer.add("modules.dep", b"a.ko:\n").unwrap();
        installer.add("modules.alias", b"# none\n").unwrap();
        // Nothing is in place before the commit: only the temporary files exist.
        let pid = std::process::id();
        assert_eq!(
            dir.names(),
            [
                format!(".modules.alias.{pid}.2.depmod-tmp"),
                format!(".modules.dep.{pid}.1.depmod-tmp")
            ]
        );
        installer.commit().unwrap();
        assert_eq!(dir.names(), ["modules.alias", "modules.dep"]);
        assert_eq!(fs::read(dir.path().join("modules.dep")).unwrap(), b"a.ko:\n");
        let mode = fs::metadata(dir.path().join("modules.dep")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o644 & !current_umask());
        assert_eq!(log.take(), "");
    }

    #[test]
    fn an_unchanged_index_is_not_rewritten_but_modules_dep_is_touched() {
        let dir = TempDir::new("unchanged");
        let log = Log::capturing();
        let install = |alias: &[u8]| {
            let mut installer = Installer::new(&log, &dir.bytes());
            installer.add("modules.dep", b"a.ko:\n").unwrap();
            installer.add("modules.alias", alias).unwrap();
            installer.commit().unwrap();
        };
        install(b"one\n");
        let meta = |name: &str| fs::metadata(dir.path().join(name)).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        File::options()
            .write(true)
            .open(dir.path().join("modules.dep"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let (dep, alias) = (meta("modules.dep").ino(), meta("modules.alias").ino());
        install(b"one\n");
        assert_eq!((meta("modules.dep").ino(), meta("modules.alias").ino()), (dep, alias));
        assert!(meta("modules.dep").modified().unwrap() > old);
        install(b"two\n");
        assert_ne!(meta("modules.alias").ino(), alias);
        assert_eq!(fs::read(dir.path().join("modules.alias")).unwrap(), b"two\n");
        assert_eq!(log.take(), "");
    }

    /// The comparison with the file in place, a block at a time: equal only when every byte is,
    /// over several blocks, and not when the file has more or fewer bytes.
    #[test]
    fn a_file_holds_its_data_only_when_every_block_is_equal() {
        let dir = TempDir::new("holds");
        let data: Vec<u8> = (0..2 * COMPARED + 100).map(|i| (i % 251) as u8).collect();
        let holds = |on_disk: &[u8], data: &[u8]| {
            let path = dir.write("index", on_disk);
            super::holds(&mut File::open(path).unwrap(), data).unwrap()
        };
        assert!(holds(&data, &data));
        assert!(holds(b"", b""));
        for at in [0, COMPARED - 1, COMPARED, 2 * COMPARED + 99] {
            let mut other = data.clone();
            other[at] ^= 1;
            assert!(!holds(&other, &data), "a difference at {at}");
        }
        assert!(!holds(&data, &data[..data.len() - 1]));
        assert!(!holds(&data[..data.len() - 1], &data));
        assert!(!holds(b"x", b""));
    }

    #[test]
    fn nothing_is_left_behind_by_a_failure() {
        let dir = TempDir::new("failure");
        let log = Log::capturing();
        dir.write("modules.dep", b"old\n");
        // An installer dropped before its commit (a later output failed) removes its files.
        let mut installer = Installer::new(&log, &dir.bytes());
        installer.add("modules.dep", b"new\n").unwrap();
        drop(installer);
        assert_eq!(dir.names(), ["modules.dep"]);
        assert_eq!(fs::read(dir.path().join("modules.dep")).unwrap(), b"old\n");
        // A rename that fails is reported; the files not renamed yet are removed.
        dir.write("modules.alias/in-the-way", b"");
        let mut installer = Installer::new(&log, &dir.bytes());
        installer.add("modules.alias", b"new\n").unwrap();
        installer.add("modules.symbols", b"new\n").unwrap();
        assert_eq!(installer.commit(), Err(Failed));
        assert_eq!(dir.names(), ["modules.alias", "modules.dep"]);
        let message = log.take();
        assert!(message.starts_with("depmod: ERROR: could not rename "), "{message}");
        assert!(message.ends_with("/modules.alias: Is a directory\n"), "{message}");
    }

    /// Files handed to the flusher are flushed one after the other; the first that fails is
    /// reported with its index's name (a pipe cannot be flushed: `EINVAL`).
    #[test]
    fn a_failed_flush_is_reported_with_its_index() {
        let dir = TempDir::new("flusher");
        let file = |name: &str| File::create(dir.path().join(name)).unwrap();
        let mut flusher = Flusher::default();
        flusher.flush("modules.dep", file("a"));
        flusher.flush("modules.alias", file("b"));
        assert!(flusher.finish().is_ok());
        let (_reader, writer) = io::pipe().unwrap();
        flusher.flush("modules.dep", file("c"));
        flusher.flush("modules.symbols", File::from(std::os::fd::OwnedFd::from(writer)));
        flusher.flush("modules.devname", file("d"));
        let (name, e) = flusher.finish().unwrap_err();
        assert_eq!((name, e.kind()), ("modules.symbols", io::ErrorKind::InvalidInput));
        // Reported once; the flusher starts again with the next file.
        assert!(flusher.finish().is_ok());
        flusher.flush("modules.dep", file("e"));
        assert!(flusher.finish().is_ok());
    }

    #[test]
    fn temporary_files_of_dead_runs_are_removed() {
        let dir = TempDir::new("stale");
        let log = Log::capturing();
        let dead = format!(".modules.dep.{}.1.depmod-tmp", i32::MAX - 1);
        let alive = format!(".modules.dep.{}.1.depmod-tmp", std::process::id());
        for name in [&dead, &alive, &"unrelated".to_string()] {
            dir.write(name, b"");
        }
        drop(Installer::new(&log, &dir.bytes()));
        assert_eq!(dir.names(), [alive, "unrelated".to_string()]);
    }
}
