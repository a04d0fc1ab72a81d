//! One depmod run, in kmod's order. [`run`] and [`index`] read as the table of contents: each
//! step is one call into the module that owns it.

use depmod_core::config::Config;
use depmod_core::output::Index;

use crate::cli::{Dirs, Options};
use crate::install::Sink;
use crate::kernel_symbols;
use crate::log::{Failed, Log, log};
use crate::prior::Prior;
use crate::{cache, config, find, load, outputs, par, quick, resolve, usable, walk};

/// Runs depmod with parsed options.
pub fn run(log: &mut Log, opts: &Options) -> Result<(), Failed> {
    log.set_verbosity(opts.verbose);
    let log = &*log;
    let version = opts.version().map_err(|bad| {
        log!(log, Error, "Bad version passed ", bad);
        Failed
    })?;
    let dirs = Dirs::new(opts, &version);
    if opts.quick && (opts.dry_run || quick::up_to_date(log, &dirs.input)) {
        return Ok(());
    }
    // Where kmod creates its library context (and says so at -vv, also when it is released).
    let _context = ContextLog::new(log);
    index(log, opts, &dirs, &version)
}

/// Finds, reads and indexes the modules (all of them, or the files named after the version),
/// with the module cache: files whose stamps it records are not read, and when nothing that
/// decides the indexes changed, those in place are left as they are.
fn index(log: &Log, opts: &Options, dirs: &Dirs, version: &[u8]) -> Result<(), Failed> {
    let phases = Phases::start();
    let threads = par::thread_count();
    let inputs = cache::Inputs::stamp(opts, dirs);
    let kernel = kernel_symbols::load(log, opts, &dirs.input)?;
    let options = resolve::options(log, opts.errsyms, &kernel);
    let explicit = opts.module_files();
    let config = match explicit {
        None => config::load(log, &opts.config, version),
        Some(_) => Config::default(),
    };
    phases.mark("config");
    let file = cache::File::read(log, opts, dirs);
    phases.mark("cache read");
    let session = cache::Session::new(log, opts, dirs, &config, &file, inputs);
    phases.mark("cache check");
    let verbose = opts.verbose > 0;
    // The dependency pass has messages to print, whatever the cache says.
    let messages = verbose || options.print_unknown;
    // Before the readers start, which open files while the walk goes on.
    let root_fd = walk::first_free_fd();
    let listings = session.listings();
    let walked = load::while_finding(threads, session.cache(), listings, |found| {
        let defer = session.is_current() && !messages;
        find::files(log, dirs, &config, explicit, found, threads, root_fd, defer)
    })?;
    if phases.on() {
        let recalled =
            walked.files.iter().filter(|(_, got)| matches!(got, load::Got::Recalled(..)));
        let recalled = recalled.count();
        let read = walked.files.len() - recalled;
        phases.mark(&format!("walk and load ({recalled} files recalled, {read} read)"));
        let fresh = walked.listings.iter().filter(|l| l.fresh).count();
        let kept = walked.listings.len() - fresh;
        phases.mark(&format!("directory listings ({kept} recalled, {fresh} read)"));
    }
    // Found current from the files alone, the run makes no modules.
    if !messages && session.unchanged(&walked.files) {
        find::order_messages(log, dirs);
        session.refresh(log, &walked.files, &walked.listings);
        phases.mark("indexes current");
        return keep_indexes(log, dirs);
    }
    let found = walked.place(|listed| find::modules(log, dirs, &config, listed), session.cache());
    let unchanged = session.unchanged(&found.files);
    if unchanged {
        session.refresh(log, &found.files, &found.listings);
        if !messages {
            phases.mark("indexes current");
            return keep_indexes(log, dirs);
        }
    }
    let cache::Split { modules, loaded, recalled, entries } = cache::split(found, session.writes());
    phases.mark("recall");
    let kept = usable::keep(log, modules, loaded);
    phases.mark("keep");
    let (modules, infos) = (&kept.modules, &kept.infos);
    let symbols = resolve::symbols(&kernel, infos, opts.symbol_prefix);
    phases.mark("exports");
    let graph = resolve::dependencies(
        log,
        modules,
        &symbols,
        session.cache(),
        infos,
        options,
        verbose,
        threads,
    );
    phases.mark("resolve");
    if unchanged {
        phases.mark("indexes current");
        return keep_indexes(log, dirs);
    }
    let order = resolve::order(log, modules, &graph)?;
    // Which modules of the array were recalled (those kept of the ones found).
    let recalled: Vec<bool> =
        kept.places.iter().zip(&recalled).filter(|(p, _)| p.is_some()).map(|(_, &r)| r).collect();
    let prior = Prior::find(&session, dirs, modules, &recalled);
    let index = Index {
        modules,
        infos,
        symbols: &symbols,
        graph: &graph,
        order: &order,
        warn_duplicates: opts.warn,
    };
    let mut sink = Sink::open(log, opts.dry_run, &dirs.output)?;
    phases.mark("sort");
    // The new cache is encoded beside the outputs, and written after the indexes.
    let (built, writer) = std::thread::scope(|s| {
        let writer = session.encode_beside(s, &entries, &kept);
        let built =
            outputs::build(log, dirs, &index, prior.as_ref(), opts.dry_run, threads, &mut sink);
        if phases.on() {
            if let Ok(b) = &built {
                let (patched, kept, built) = (b.patched, b.in_place, b.built.join(" "));
                phases
                    .mark(&format!("outputs ({patched} patched, {kept} in place; built: {built})"));
            }
        }
        let built = built.and_then(|said| Ok((said, sink.finish()?)));
        phases.mark("install");
        (built, writer.map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))))
    });
    let (built, installed) = built?;
    let said = built.said;
    session.write(log, writer.flatten(), &installed, said);
    phases.mark("cache written");
    Ok(())
}

/// Ends a run that found the indexes in place current, as a run whose outputs all equal the
/// files in place ends: `modules.dep` is touched, so that `-A` sees them current.
fn keep_indexes(log: &Log, dirs: &Dirs) -> Result<(), Failed> {
    let mut sink = Sink::open(log, false, &dirs.output)?;
    sink.unchanged(&outputs::names());
    sink.finish().map(drop)
}

/// libkmod's INFO messages about its context, printed at `-vv` when it is created and released.
struct ContextLog<'l> {
    log: &'l Log,
}

impl<'l> ContextLog<'l> {
    fn new(log: &'l Log) -> Self {
        let emit = Pointer(Log::emit as *const () as usize);
        log!(log, Info, "custom logging function ", emit, " registered");
        ContextLog { log }
    }
}

impl Drop for ContextLog<'_> {
    fn drop(&mut self) {
        let here: *const Self = self;
        log!(self.log, Info, "context ", Pointer(here as usize), " released");
    }
}

/// A pointer shown as C's `%p` does.
struct Pointer(usize);

impl crate::log::Part for Pointer {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{:#x}", self.0).as_bytes());
    }
}

/// `DEPMOD_TIMING=1`: how long each phase took, on stderr (for profiling; not a kmod message).
struct Phases {
    start: Option<std::time::Instant>,
}

impl Phases {
    fn start() -> Self {
        let on = std::env::var_os("DEPMOD_TIMING").is_some_and(|v| v == "1");
        Phases { start: on.then(std::time::Instant::now) }
    }

    fn on(&self) -> bool {
        self.start.is_some()
    }

    fn mark(&self, phase: &str) {
        if let Some(start) = self.start {
            let ms = start.elapsed().as_secs_f64() * 1e3;
            eprintln!("depmod: timing: {phase} done at {ms:.1} ms");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{self, Command};
    use crate::decompress::Format;
    use crate::testing::{TempDir, module, xz};
    use std::ffi::OsString;

    const VERSION: &str = "6.1";

    /// Options for a run over `root` with an empty configuration, then `extra` arguments.
    fn options(root: &TempDir, extra: &[&str]) -> Options {
        let conf = root.path().join("depmod.d");
        std::fs::create_dir_all(&conf).unwrap();
        let mut args: Vec<OsString> =
            vec!["-b".into(), root.path().into(), "-C".into(), conf.into()];
        args.extend(extra.iter().map(OsString::from));
        match cli::parse(b"depmod", &args) {
            Command::Run(o) => o,
            other => panic!("{other:?}"),
        }
    }

    /// A tree with `files` (path under the module directory, contents) and a `modules.order`
    /// listing them in that order.
    fn tree(test: &str, files: &[(&str, Vec<u8>)]) -> TempDir {
        let root = TempDir::new(test);
        let dir = format!("lib/modules/{VERSION}");
        let mut order = String::new();
        for (path, data) in files {
            root.write(&format!("{dir}/{path}"), data);
            order += &format!("{}.ko\n", path.split(".ko").next().unwrap_or(path));
        }
        root.write(&format!("{dir}/modules.order"), order.as_bytes());
        root.write(&format!("{dir}/modules.builtin"), b"");
        root.write(&format!("{dir}/modules.builtin.modinfo"), b"");
        root
    }

    fn read(root: &TempDir, name: &str) -> String {
        let path = root.path().join(format!("lib/modules/{VERSION}/{name}"));
        std::fs::read_to_string(path).unwrap()
    }

    /// The whole run: every usable module indexed with its dependencies, each file that cannot
    /// be used named once (a format this build leaves out among them), the rest indexed.
    #[test]
    fn indexes_what_it_can_read_and_names_the_rest() {
        let a = module(&["alias=a-alias"], &["fa"], &[]);
        let b = module(&[], &["fb"], &["fa"]);
        let c = module(&[], &[], &["fb"]);
        let zst_magic = [&[0x28, 0xb5, 0x2f, 0xfd][..], b"not really zstd"].concat();
        let root = tree(
            "run",
            &[
                ("kernel/a.ko", a),
                ("kernel/b.ko.xz", xz(&b)),
                ("kernel/c.ko", c),
                ("kernel/bad.ko", b"not a module at all".to_vec()),
                ("kernel/z.ko.zst", zst_magic),
            ],
        );
        let mut log = Log::capturing();
        assert_eq!(run(&mut log, &options(&root, &[VERSION])), Ok(()));
        let base = format!("{}/lib/modules/{VERSION}/kernel", root.path().display());
        let not_built = |f: Format| crate::decompress::DecodeError::NotBuiltIn(f).to_string();
        let unusable = |file: &str, why: &str| {
            format!("depmod: ERROR: {base}/{file}: {why}; the module is not indexed\n")
        };
        // In array order (modules.order's).
        let mut expected = String::new();
        if !Format::Xz.is_built_in() {
            expected += &unusable("b.ko.xz", &not_built(Format::Xz));
        }
        expected += &unusable("bad.ko", "not an ELF file: no \\x7fELF magic at offset 0");
        expected += &unusable(
            "z.ko.zst",
            &match Format::Zstd.is_built_in() {
                true => "corrupt zstd stream: Failed to determine decompression size".into(),
                false => not_built(Format::Zstd),
            },
        );
        assert_eq!(log.take(), expected);
        let dep = match Format::Xz.is_built_in() {
            true => {
                "kernel/a.ko:\nkernel/b.ko.xz: kernel/a.ko\nkernel/c.ko: kernel/b.ko.xz kernel/a.ko\n"
            }
            false => "kernel/a.ko:\nkernel/c.ko:\n",
        };
        assert_eq!(read(&root, "modules.dep"), dep);
        assert_eq!(
            read(&root, "modules.alias"),
            "# Aliases extracted from modules themselves.\nalias a-alias a\n"
        );
        let dir = root.path().join(format!("lib/modules/{VERSION}"));
        let indexes = std::fs::read_dir(dir).unwrap().flatten();
        let written =
            indexes.filter(|e| e.file_name().to_string_lossy().starts_with("modules.")).count();
        // The eleven indexes and the three inputs.
        assert_eq!(written, 14);
    }

    /// A failure stops the run with its message and leaves the indexes as they were.
    #[test]
    fn cycles_fail_and_write_nothing() {
        let root = tree(
            "cycles",
            &[
                ("kernel/x.ko", module(&[], &["fx"], &["fy"])),
                ("kernel/y.ko", module(&[], &["fy"], &["fx"])),
            ],
        );
        let mut log = Log::capturing();
        assert_eq!(run(&mut log, &options(&root, &[VERSION])), Err(Failed));
        assert_eq!(
            log.take(),
            "depmod: ERROR: Cycle detected: x -> y -> x\n\
             depmod: ERROR: Found 2 modules in dependency cycles!\n"
        );
        assert!(!root.path().join(format!("lib/modules/{VERSION}/modules.dep")).exists());
        let mut log = Log::capturing();
        assert_eq!(run(&mut log, &options(&root, &["not-a-version"])), Err(Failed));
        assert_eq!(log.take(), "depmod: ERROR: Bad version passed not-a-version\n");
    }
}
