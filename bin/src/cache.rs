//! The module cache in the program: which file it is, when a run reads and writes it, and when
//! a run can leave the indexes as they are. Its format, reader and writer are core's
//! ([`depmod_core::cache`]).
//!
//! The cache is `modules.cache.bin` in the output directory, beside the indexes (so that `-o`
//! and read-only module trees work). It maps each module file, by its path and its stamp
//! (device, inode, size, modification and change times to the nanosecond), to what was read of
//! it. A run goes:
//!
//! 1. Before anything is read, the inputs besides the modules are stamped ([`Inputs::stamp`]):
//!    `modules.order`, `modules.builtin`, `modules.builtin.modinfo`, the `-E`/`-F` file.
//! 2. [`File::read`] and [`Session::new`] read and check the cache: a file cut short, garbled,
//!    written by another build of this program, on a host of the other byte order, or for
//!    another module directory is reported at `-v` and not used (every module is read).
//! 3. The walk takes the recorded listing of each directory whose stamp is the one recorded
//!    instead of listing it ([`crate::walk`]), and looks each module file up: a file whose stamp
//!    is the one recorded is not read ([`load::load_or_recall`]).
//! 4. The indexes in place are what this run would write ([`Session::unchanged`]) when the
//!    cache says they were made from these very inputs: the same options and configuration
//!    ([`summary`]), every input with its recorded stamp, every module file found recalled, in
//!    the order recorded, and no other; each index still the file that run installed (its
//!    stamp; `modules.dep`, whose time each run sets, by its contents' CRC-32); and that run
//!    printed nothing while making them. The run then leaves them, as a run whose outputs all
//!    equal the files in place does (`modules.dep` is touched, for `-A`).
//! 5. Otherwise the run goes on; a new cache is encoded beside the outputs ([`Session::encode`])
//!    and written after the indexes are installed ([`Session::write`]), unless nothing in it
//!    changed. When only modules changed since the cache was written (everything else as in
//!    step 4), the indexes in place are the previous run's: some are patched rather than built
//!    again, and those the change does not reach are left in place ([`crate::prior`]).
//!
//! Where a cache is started: only in the system's own module directory (no `-b`), and only
//! once it has indexes (`modules.dep`) from an earlier run. Image builders index a staging tree
//! with `-b`, once (mkinitramfs, dracut, mkinitcpio) or on every build (the kernel's
//! `make modules_install INSTALL_MOD_PATH=...`, Buildroot's target-finalize hook): an image
//! would carry a cache it never uses. A cache already there (under `-b` too) is kept up to
//! date: an empty file starts one. `--no-cache` and `DEPMOD_NO_CACHE=1` turn it off; `-n` and
//! explicit module files read it and write none.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use depmod_core::ModuleInfo;
use depmod_core::bytes::Shared;
use depmod_core::cache::{Cache, CacheWriter, Identity, Record, Stamp, Time};
use depmod_core::config::{Config, Search};
use depmod_core::tree::Module;

use crate::cli::{Dirs, Options};
use crate::install::{self, Installed};
use crate::load::{self, FileFound, Found, Got, Loaded};
use crate::log::{Log, log};
use crate::usable::Kept;
use crate::walk::{self, DirListing};
use crate::{outputs, read};

/// The cache's file name in the output directory: it matches `modules.*.bin`, which Debian's
/// kernel packages remove with the indexes, and is no name libkmod opens.
pub const NAME: &str = "modules.cache.bin";

/// What the cache records of the program that wrote it: a cache of another build is not used.
pub const PROGRAM: &str =
    concat!("depmod-rs ", env!("CARGO_PKG_VERSION"), " build ", env!("DEPMOD_BUILD_ID"));

/// The environment variable that turns the cache off (any value but empty and `0`).
pub const OFF_VAR: &str = "DEPMOD_NO_CACHE";

/// Whether `--no-cache` or [`OFF_VAR`] turns the cache off.
pub fn disabled(opts: &Options) -> bool {
    opts.no_cache || std::env::var_os(OFF_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// A file is taken to hold what it held when stamped only once both its times are older than
/// this: the run's start less a second (file times come from a coarse clock, and network file
/// systems take the server's). A file changed just before or during the run is read again next
/// time.
fn settled_before() -> Time {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let now = now.unwrap_or_default();
    let sec = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    Time { sec: sec - 1, nsec: now.subsec_nanos() }
}

/// The inputs of a run besides the modules and the configuration, stamped before any is read.
pub struct Inputs {
    files: Vec<(Vec<u8>, Stamp)>,
    settled: Time,
}

impl Inputs {
    /// Stamps `modules.order`, `modules.builtin`, `modules.builtin.modinfo` and the `-E` (or
    /// `-F`) file; a missing one has an empty stamp.
    pub fn stamp(opts: &Options, dirs: &Dirs) -> Inputs {
        let settled = settled_before();
        if disabled(opts) {
            return Inputs { files: Vec::new(), settled };
        }
        let mut paths: Vec<Vec<u8>> =
            ["modules.order", "modules.builtin", "modules.builtin.modinfo"]
                .iter()
                .map(|name| [&dirs.input[..], b"/", name.as_bytes()].concat())
                .collect();
        if let Some(kernel) = opts.symvers.as_ref().or(opts.filesyms.as_ref()) {
            paths.push(kernel.clone());
        }
        let files = paths
            .into_iter()
            .map(|p| {
                let stamp = rustix::fs::stat(OsStr::from_bytes(&p)).map(|st| load::stamp(&st));
                (p, stamp.unwrap_or_default())
            })
            .collect();
        Inputs { files, settled }
    }
}

/// The cache file as found before the run.
pub struct File {
    bytes: Option<Shared>,
    /// Something is there under the cache's name (a cache to keep up to date).
    present: bool,
}

impl File {
    /// Reads the cache in the output directory (nothing when the cache is off).
    pub fn read(log: &Log, opts: &Options, dirs: &Dirs) -> File {
        let none = File { bytes: None, present: false };
        if disabled(opts) {
            return none;
        }
        let path = path(dirs);
        match map(&path) {
            Ok(bytes) => File { bytes: Some(bytes), present: true },
            Err(e) if e.kind() == io::ErrorKind::NotFound => none,
            Err(e) => {
                log!(log, Notice, &path[..], ": not used (", e, "); every module is read");
                File { bytes: None, present: true }
            }
        }
    }
}

/// The file at `path`, mapped with its pages (reading the 3 MB cache of a large tree into memory
/// cost 880 page faults and a copy). The records recalled point into it.
fn map(path: &[u8]) -> io::Result<Shared> {
    read::map_path(path).map(Shared::new)
}

/// The cache's path.
fn path(dirs: &Dirs) -> Vec<u8> {
    [&dirs.output[..], b"/", NAME.as_bytes()].concat()
}

/// What the cache is for in one run.
pub struct Session<'c> {
    /// The checked cache, if there is one.
    cache: Option<Cache<'c>>,
    old: Option<&'c [u8]>,
    tree: Vec<u8>,
    output: Vec<u8>,
    summary: Vec<u8>,
    inputs: Inputs,
    /// A new cache is written at the end of the run.
    write: bool,
    /// Everything but the modules is as the cache records it (step 4 of the module's
    /// documentation, the modules aside).
    current: bool,
    /// The `modules.dep` in place, when `current` (read to check it, kept for [`crate::prior`]).
    dep: Option<memmap2::Mmap>,
    /// The output directory's (device, inode), when a cache is written: its listing is never
    /// recorded (each run changes it).
    output_id: Option<(u64, u64)>,
}

impl<'c> Session<'c> {
    /// Checks `file` as the cache of this run; decides whether this run writes one.
    pub fn new(
        log: &Log,
        opts: &Options,
        dirs: &Dirs,
        config: &Config,
        file: &'c File,
        inputs: Inputs,
    ) -> Self {
        let identity = Identity { program: PROGRAM.as_bytes(), tree: &dirs.input };
        // An empty file asks for a cache (see the module's documentation): nothing to say.
        let bytes = file.bytes.as_ref().filter(|b| !b.is_empty());
        let cache = bytes.and_then(|bytes| match Cache::parse(bytes, identity) {
            Ok(cache) => Some(cache),
            Err(why) => {
                let path = path(dirs);
                log!(
                    log,
                    Notice,
                    &path[..],
                    ": not used (",
                    why.to_string(),
                    "); every module is read"
                );
                None
            }
        });
        let summary = summary(opts, dirs, config);
        let files = opts.module_files().is_none() && !opts.dry_run;
        let system = opts.basedir.as_deref().is_none_or(|b| b.iter().all(|&c| c == b'/'));
        let indexed = || {
            let dep = [&dirs.output[..], b"/modules.dep"].concat();
            rustix::fs::stat(OsStr::from_bytes(&dep)).is_ok()
        };
        let write = !disabled(opts) && files && (file.present || (system && indexed()));
        let dep = cache.as_ref().filter(|_| files);
        let dep = dep.and_then(|c| Recorded::current(c, &summary, &inputs, dirs));
        let output_id = write
            .then(|| rustix::fs::stat(OsStr::from_bytes(&dirs.output)).ok())
            .flatten()
            .map(|st| walk::id(Some(&load::stamp(&st))));
        Session {
            cache,
            old: file.bytes.as_deref(),
            tree: dirs.input.clone(),
            output: dirs.output.clone(),
            summary,
            inputs,
            write,
            current: dep.is_some(),
            dep,
            output_id,
        }
    }

    /// What the walk does with directory listings: whether it keeps those a new cache records
    /// (when this run writes one), and the directory whose listing it never records.
    pub fn listings(&self) -> (bool, Option<(u64, u64)>) {
        (self.write, self.output_id)
    }

    /// Whether everything but the modules is as the cache records it, and the indexes in place
    /// are the ones the run that wrote it installed (step 4 of the module's documentation, the
    /// modules aside).
    pub fn is_current(&self) -> bool {
        self.current
    }

    /// The previous run's `modules.dep`, as the check for [`Session::is_current`] read it.
    pub fn previous_dep(&self) -> Option<&[u8]> {
        self.dep.as_deref()
    }

    /// The checked cache, for the walk.
    pub fn cache(&self) -> Option<&Cache<'c>> {
        self.cache.as_ref()
    }

    /// Whether this run writes a cache (at its end, or when it refreshes one).
    pub fn writes(&self) -> bool {
        self.write
    }

    /// Whether the indexes in place are what this run would write (see the module's
    /// documentation): everything but the modules was, and the module files found are those
    /// recorded, in the order recorded, each recalled or read again with what its record says
    /// (another build of a module that declares the same: only its stamp changed).
    pub fn unchanged(&self, files: &[FileFound<'_>]) -> bool {
        let Some(cache) = self.cache.as_ref().filter(|_| self.current) else { return false };
        cache.len() == files.len()
            && files.iter().zip(cache.records()).all(|((path, got), record)| {
                path[..] == *record.path()
                    && match got {
                        Got::Recalled(..) => true,
                        Got::Read { loaded: Ok(info), .. } => same(info, &record),
                        Got::Read { .. } => false,
                    }
            })
    }

    /// After [`Session::unchanged`]: records the new stamps of the files that were read again,
    /// and the directories listed again, so that the next run recalls them (the rest of the
    /// cache stays as it is). When one of the files cannot be recorded yet (it changed within
    /// the settling time), the cache is left as it is, and the next run reads it again.
    pub fn refresh(&self, log: &Log, files: &[FileFound<'_>], listings: &[DirListing]) {
        let Some(cache) = self.cache.as_ref().filter(|_| self.write) else { return };
        // The stamps of the files read again. Nothing to do without any, or when one cannot be
        // recorded yet (checked before any record is copied).
        let mut stamps = files
            .iter()
            .filter_map(|(_, got)| match got {
                Got::Recalled(..) => None,
                Got::Read { stamp, .. } => Some(*stamp),
            })
            .peekable();
        let settled = self.inputs.settled;
        let listed = listings.iter().any(|l| l.fresh && l.stamp.is_settled(settled));
        if (stamps.peek().is_none() && !listed)
            || !stamps.all(|s| s.is_some_and(|s| s.is_settled(settled)))
        {
            return;
        }
        let identity = Identity { program: PROGRAM.as_bytes(), tree: &self.tree };
        let mut writer = CacheWriter::update(cache, identity, self.inputs.settled);
        for (path, got) in files {
            let kept = match got {
                Got::Recalled(record) => writer.keep(record),
                Got::Read { loaded: Ok(info), stamp: Some(stamp) } => {
                    writer.add(path, *stamp, info)
                }
                Got::Read { .. } => return,
            };
            if kept.is_err() {
                return;
            }
        }
        add_listings(&mut writer, listings);
        writer.set_options(cache.options());
        for (path, stamp) in cache.files() {
            if writer.add_file(path, stamp).is_err() {
                return;
            }
        }
        self.put(log, writer);
    }

    /// [`Session::encode`] on a thread of `scope`, when this run writes a cache.
    pub fn encode_beside<'s, 'e>(
        &'s self,
        scope: &'s std::thread::Scope<'s, 'e>,
        entries: &'s Entries<'c>,
        kept: &'s Kept,
    ) -> Option<std::thread::ScopedJoinHandle<'s, Option<Encoded<'c>>>>
    where
        'c: 's,
    {
        self.write.then(|| scope.spawn(|| self.encode(entries, kept)))
    }

    /// Encodes the new cache's records (the cache written at the end, if any): those recalled
    /// as they are, and those read (only a module read without an error or anomaly, stamped
    /// before the run's settling time, is kept).
    pub fn encode(&self, entries: &Entries<'c>, kept: &Kept) -> Option<Encoded<'c>> {
        if !self.write {
            return None;
        }
        let identity = Identity { program: PROGRAM.as_bytes(), tree: &self.tree };
        let settled = self.inputs.settled;
        let mut writer = match &self.cache {
            Some(cache) => CacheWriter::update(cache, identity, settled),
            None => CacheWriter::new(identity, settled),
        };
        for entry in &entries.files {
            // A module not kept is read again next time.
            let _ = match entry {
                Entry::Keep(record) => writer.keep(record),
                Entry::Module { path, stamp, module } => {
                    match kept.places.get(*module).copied().flatten() {
                        Some(at) => {
                            kept.infos.get(at).map_or(Ok(()), |i| writer.add(path, *stamp, i))
                        }
                        None => Ok(()),
                    }
                }
                Entry::Other { path, stamp, info } => writer.add(path, *stamp, info),
                Entry::Nothing => Ok(()),
            };
        }
        let complete = writer.len() == entries.files.len();
        add_listings(&mut writer, &entries.listings);
        Some(Encoded { writer, complete })
    }

    /// Writes the cache `writer` encoded, with what decides whether the indexes are current:
    /// the options' summary, the inputs' stamps, the indexes' stamps, and whether the run said
    /// anything while making them (`said`). A cache that cannot be written is reported at
    /// `-v`; the run stays a success.
    pub fn write(self, log: &Log, encoded: Option<Encoded<'c>>, installed: &Installed, said: bool) {
        let Some(Encoded { mut writer, mut complete }) = encoded else { return };
        for (path, stamp) in &self.inputs.files {
            complete &= writer.add_file(path, *stamp).is_ok();
        }
        let current = complete && !said;
        writer.set_options(&Recorded::encode(&self.summary, current, installed));
        self.put(log, writer);
    }

    /// Writes the cache `writer` makes, unless the file in place holds exactly it.
    fn put(&self, log: &Log, writer: CacheWriter<'_>) {
        let path = [&self.output[..], b"/", NAME.as_bytes()].concat();
        let sealed = match writer.seal() {
            Ok(sealed) => sealed,
            Err(e) => {
                log!(log, Notice, "could not write ", &path[..], ": ", e.to_string());
                return;
            }
        };
        if self.old.is_some_and(|old| sealed.is(old)) {
            return;
        }
        let parts: Vec<&[u8]> = sealed.parts().collect();
        if let Err(e) = install::write_unflushed(&self.output, NAME, &parts) {
            log!(log, Notice, "could not write ", &path[..], ": ", e, " (the indexes are written)");
        }
    }
}

/// A new cache's records, and whether every file the run loaded has one: the indexes can be
/// found current from a cache only if it holds every module they were made from.
pub struct Encoded<'c> {
    writer: CacheWriter<'c>,
    complete: bool,
}

/// Records the directory listings the walk kept (one that cannot be recorded yet is listed
/// again next time).
fn add_listings(writer: &mut CacheWriter<'_>, listings: &[DirListing]) {
    for l in listings {
        let _ = writer.add_listing(&l.path, l.stamp, &l.entries);
    }
}

/// What the cache writer takes of each file loaded, in the order found, and the directory
/// listings of the walk.
pub struct Entries<'c> {
    files: Vec<Entry<'c>>,
    listings: Vec<DirListing>,
}

enum Entry<'c> {
    /// A record recalled: copied as it is.
    Keep(Record<'c>),
    /// A module file read: its stamp, and the module's number in the run's array (before the
    /// unusable ones are left out).
    Module { path: Cow<'c, [u8]>, stamp: Stamp, module: usize },
    /// A file read that no module has (it lost to another file with the same module name).
    Other { path: Cow<'c, [u8]>, stamp: Stamp, info: Box<ModuleInfo> },
    /// Nothing to keep: the file could not be read.
    Nothing,
}

/// Whether a module read without any error or anomaly says what `record` says: the outputs
/// take nothing else from it.
pub fn same(info: &ModuleInfo, record: &Record<'_>) -> bool {
    info.is_clean()
        && info.aliases().eq(record.aliases())
        && info.softdeps().eq(record.softdeps())
        && info.weakdeps().eq(record.weakdeps())
        && info.exports().eq(record.exports())
        && info.imports().map(|i| (i.name, i.crc, i.weak)).eq(record.imports())
}

/// What was loaded, split: the modules, each one's [`Loaded`] (a recalled record's
/// [`ModuleInfo`] is the record, read in place) and whether it was recalled, and what the
/// cache writer takes.
pub struct Split<'c> {
    pub modules: Vec<Module>,
    pub loaded: Vec<Loaded>,
    pub recalled: Vec<bool>,
    pub entries: Entries<'c>,
}

/// Makes what was loaded into the modules' [`Loaded`] list, and what the cache writer takes
/// when the run writes a cache (`write`; otherwise nothing, which keeps a run without one as
/// lean as before). Each file's [`ModuleInfo`] is moved once, from where it was loaded to the
/// list.
pub fn split<'c>(found: Found<'c>, write: bool) -> Split<'c> {
    let Found { modules, listings, slots, files } = found;
    let mut files: Vec<Option<FileFound<'c>>> = files.into_iter().map(Some).collect();
    let kept = if write { files.len() } else { 0 };
    let mut entries: Vec<Entry<'c>> =
        std::iter::repeat_with(|| Entry::Nothing).take(kept).collect();
    let mut loaded = Vec::with_capacity(modules.len());
    let mut recalled = Vec::with_capacity(modules.len());
    for (module, &slot) in slots.iter().enumerate() {
        // Every module has its file, once.
        let Some((path, got)) = files.get_mut(slot).and_then(Option::take) else { continue };
        recalled.push(matches!(got, Got::Recalled(..)));
        let (l, e) = match got {
            Got::Recalled(record) => (Ok(Box::new(record.info())), Entry::Keep(record)),
            Got::Read { loaded: Ok(info), stamp: Some(stamp) } => {
                (Ok(info), Entry::Module { path, stamp, module })
            }
            Got::Read { loaded, .. } => (loaded, Entry::Nothing),
        };
        loaded.push(l);
        if let Some(entry) = entries.get_mut(slot) {
            *entry = e;
        }
    }
    // The files no module has.
    for (file, entry) in files.into_iter().zip(&mut entries) {
        match file {
            Some((_, Got::Recalled(record))) => *entry = Entry::Keep(record),
            Some((path, Got::Read { loaded: Ok(info), stamp: Some(stamp) })) => {
                *entry = Entry::Other { path, stamp, info }
            }
            _ => {}
        }
    }
    Split { modules, loaded, recalled, entries: Entries { files: entries, listings } }
}

/// What decides the outputs besides the files the run reads: the options (but `-n` and the
/// module files named, whose runs write no cache), the directories, the parsed configuration,
/// the mode a new index gets and the user (an index of another mode or owner is rewritten).
/// Each part is put with its length, so that no two summaries of different runs are equal.
fn summary(opts: &Options, dirs: &Dirs, config: &Config) -> Vec<u8> {
    // Taken apart whole, so that a new option or configuration line fails to compile until it
    // is put here (or said not to matter).
    let Options {
        all,
        quick,
        basedir,
        moduledir,
        outdir,
        config: config_files,
        symvers,
        filesyms,
        errsyms,
        verbose,
        symbol_prefix,
        warn,
        dry_run: _,    // a dry run writes no cache
        no_cache: _,   // nor does a run without the cache
        positional: _, // the version is in the directories; named files write no cache
    } = opts;
    let Config { search, overrides, externals, excludes } = config;
    let mut out = Vec::new();
    let mut put = |part: &[u8]| {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part);
    };
    let maybe = |p: &Option<Vec<u8>>| p.as_ref().map_or(vec![0], |p| [&[1][..], p].concat());
    put(&dirs.input);
    put(&dirs.output);
    for part in [basedir, moduledir, outdir, symvers, filesyms] {
        put(&maybe(part));
    }
    for flag in [all, quick, errsyms, warn] {
        put(&[u8::from(*flag)]);
    }
    put(&verbose.to_le_bytes());
    put(&maybe(&symbol_prefix.map(|c| vec![c])));
    put(&(config_files.len() as u32).to_le_bytes());
    config_files.iter().for_each(|c| put(c));
    put(&(search.len() as u32).to_le_bytes());
    for entry in search {
        match entry {
            Search::BuiltIn => put(b"search built-in"),
            Search::External => put(b"search external"),
            Search::Dir(dir) => put(&[&b"search dir "[..], dir].concat()),
        }
    }
    for list in [overrides, externals, excludes] {
        put(&(list.len() as u32).to_le_bytes());
        list.iter().for_each(|item| put(item));
    }
    put(&install::fresh_mode().to_le_bytes());
    put(&rustix::process::geteuid().as_raw().to_le_bytes());
    out
}

/// The run summary a cache records (its "options", opaque to core): the options' [`summary`],
/// whether the indexes may be found current from it, each index's stamp as installed, and
/// `modules.dep`'s CRC-32.
struct Recorded;

/// Bytes of a stamp as recorded here.
const STAMP: usize = 48;

impl Recorded {
    fn encode(summary: &[u8], current: bool, installed: &Installed) -> Vec<u8> {
        let names = outputs::names();
        let stamps: Option<Vec<Stamp>> = names
            .iter()
            .map(|name| installed.stamps.iter().find(|(n, _)| n == name).and_then(|(_, s)| *s))
            .collect();
        let current = current && stamps.is_some() && installed.dep_crc.is_some();
        let mut out = Vec::new();
        out.extend_from_slice(&(summary.len() as u32).to_le_bytes());
        out.extend_from_slice(summary);
        out.push(u8::from(current));
        if let (true, Some(stamps)) = (current, stamps) {
            for s in stamps {
                for word in [s.dev, s.ino, s.size, s.mtime.sec as u64, s.ctime.sec as u64] {
                    out.extend_from_slice(&word.to_le_bytes());
                }
                out.extend_from_slice(&s.mtime.nsec.to_le_bytes());
                out.extend_from_slice(&s.ctime.nsec.to_le_bytes());
            }
            out.extend_from_slice(&installed.dep_crc.unwrap_or_default().to_le_bytes());
        }
        out
    }

    /// Whether everything but the modules is as `cache` records it.
    /// Whether everything but the modules is as `cache` records it; if so, the contents of the
    /// `modules.dep` in place (which the check reads), mapped.
    fn current(
        cache: &Cache<'_>,
        summary: &[u8],
        inputs: &Inputs,
        dirs: &Dirs,
    ) -> Option<memmap2::Mmap> {
        let recorded = cache.options();
        let rest = recorded
            .strip_prefix(&(summary.len() as u32).to_le_bytes()[..])
            .and_then(|r| r.strip_prefix(summary))
            .and_then(|r| r.strip_prefix(&[1][..]))?;
        let files: Vec<(&[u8], Stamp)> = cache.files().collect();
        let same_inputs = files.len() == inputs.files.len()
            && files.iter().zip(&inputs.files).all(|(a, b)| a.0 == &b.0[..] && a.1 == b.1);
        let names = outputs::names();
        if !same_inputs || rest.len() != names.len() * STAMP + 4 {
            return None;
        }
        let (stamps, crc) = rest.split_at(names.len() * STAMP);
        let dep_crc = crc.try_into().map_or(0, u32::from_le_bytes);
        let mut dep = None;
        for (name, s) in names.iter().zip(stamps.chunks_exact(STAMP)) {
            let path = [&dirs.output[..], b"/", name.as_bytes()].concat();
            let now = load::stamp(&rustix::fs::lstat(OsStr::from_bytes(&path)).ok()?);
            let then = decode_stamp(s);
            if *name != "modules.dep" {
                (now == then).then_some(())?;
                continue;
            }
            // Each run sets its time: its contents are compared instead.
            ((now.dev, now.ino, now.size) == (then.dev, then.ino, then.size)).then_some(())?;
            dep = read::map_path(&path).ok().filter(|d| crc32fast::hash(d) == dep_crc);
            dep.as_ref()?;
        }
        dep
    }
}

fn decode_stamp(b: &[u8]) -> Stamp {
    let word =
        |i: usize| b.get(i..i + 8).and_then(|w| w.try_into().ok()).map_or(0, u64::from_le_bytes);
    let half =
        |i: usize| b.get(i..i + 4).and_then(|w| w.try_into().ok()).map_or(0, u32::from_le_bytes);
    Stamp {
        dev: word(0),
        ino: word(8),
        size: word(16),
        mtime: Time { sec: word(24) as i64, nsec: half(40) },
        ctime: Time { sec: word(32) as i64, nsec: half(44) },
    }
}
