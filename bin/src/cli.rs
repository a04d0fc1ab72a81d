//! The command line: kmod 34.2's options, spellings and messages; the kernel version and the
//! directories a run derives from them.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use crate::decompress::Format;
use crate::getopt::{self, HasArg, LongOpt};

/// kmod 34.2's short options.
const SHORTS: &str = "aAb:m:o:C:E:F:evnP:wVh";

/// The value of `--no-cache` (an option of this depmod alone: no short option has it).
const NO_CACHE: char = '\u{80}';

/// kmod 34.2's long options, and `--no-cache`.
const LONGS: &[LongOpt] = &[
    LongOpt { name: "all", has_arg: HasArg::No, val: 'a' },
    LongOpt { name: "quick", has_arg: HasArg::No, val: 'A' },
    LongOpt { name: "basedir", has_arg: HasArg::Required, val: 'b' },
    LongOpt { name: "moduledir", has_arg: HasArg::Required, val: 'm' },
    LongOpt { name: "outdir", has_arg: HasArg::Required, val: 'o' },
    LongOpt { name: "config", has_arg: HasArg::Required, val: 'C' },
    LongOpt { name: "symvers", has_arg: HasArg::Required, val: 'E' },
    LongOpt { name: "filesyms", has_arg: HasArg::Required, val: 'F' },
    LongOpt { name: "errsyms", has_arg: HasArg::No, val: 'e' },
    LongOpt { name: "verbose", has_arg: HasArg::No, val: 'v' },
    LongOpt { name: "show", has_arg: HasArg::No, val: 'n' },
    LongOpt { name: "dry-run", has_arg: HasArg::No, val: 'n' },
    LongOpt { name: "symbol-prefix", has_arg: HasArg::Required, val: 'P' },
    LongOpt { name: "warn", has_arg: HasArg::No, val: 'w' },
    LongOpt { name: "version", has_arg: HasArg::No, val: 'V' },
    LongOpt { name: "help", has_arg: HasArg::No, val: 'h' },
    LongOpt { name: "no-cache", has_arg: HasArg::No, val: NO_CACHE },
];

/// Parsed options, before any file is touched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub all: bool,
    pub quick: bool,
    /// `-b`, already made absolute against the working directory.
    pub basedir: Option<Vec<u8>>,
    /// `-m`, with its leading slashes removed.
    pub moduledir: Option<Vec<u8>>,
    /// `-o`, already made absolute.
    pub outdir: Option<Vec<u8>>,
    pub config: Vec<Vec<u8>>,
    pub symvers: Option<Vec<u8>>,
    pub filesyms: Option<Vec<u8>>,
    pub errsyms: bool,
    pub verbose: u32,
    pub dry_run: bool,
    pub symbol_prefix: Option<u8>,
    pub warn: bool,
    /// `--no-cache`: the module cache is neither read nor written.
    pub no_cache: bool,
    /// Positional arguments: the version, then module files.
    pub positional: Vec<Vec<u8>>,
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Help,
    Version,
    /// A bad command line: getopt's message (printed as is) or a depmod FATAL message.
    Fail {
        getopt_message: Option<Vec<u8>>,
        fatal: Option<String>,
    },
}

/// Makes `p` absolute the way kmod's `path_make_absolute_cwd` does: cwd + `/` + p, unnormalised.
pub fn absolute(p: &[u8]) -> Vec<u8> {
    if p.first() == Some(&b'/') {
        return p.to_vec();
    }
    let mut cwd = current_dir_name();
    cwd.push(b'/');
    cwd.extend_from_slice(p);
    cwd
}

/// The working directory as glibc's `get_current_dir_name` gives it (kmod's choice): `$PWD`
/// when it is absolute and names the working directory (through symbolic links, say),
/// otherwise `getcwd`.
pub fn current_dir_name() -> Vec<u8> {
    use std::os::unix::fs::MetadataExt;
    if let Some(pwd) = std::env::var_os("PWD").filter(|p| p.as_bytes().first() == Some(&b'/')) {
        let same = match (std::fs::metadata(&pwd), std::fs::metadata(".")) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if same {
            return pwd.into_vec();
        }
    }
    std::env::current_dir().map(|d| d.into_os_string().into_vec()).unwrap_or_default()
}

/// Parses the arguments after `argv[0]` (`prog`).
pub fn parse(prog: &[u8], args: &[OsString]) -> Command {
    let posixly = std::env::var_os("POSIXLY_CORRECT").is_some();
    let (parsed, error) = match getopt::parse(prog, args, SHORTS, LONGS, posixly) {
        Ok(p) => (p, None),
        Err((p, msg)) => (p, Some(msg)),
    };
    let mut o = Options::default();
    for opt in &parsed.opts {
        let arg = opt.arg.as_deref().map(|a| a.as_bytes().to_vec()).unwrap_or_default();
        match opt.val {
            'a' => o.all = true,
            'A' => o.quick = true,
            'b' => o.basedir = Some(absolute(&arg)),
            'm' => {
                let start = arg.iter().position(|&b| b != b'/').unwrap_or(arg.len());
                o.moduledir = Some(arg[start..].to_vec());
            }
            'o' => o.outdir = Some(absolute(&arg)),
            'C' => o.config.push(arg),
            'E' => o.symvers = Some(arg),
            'F' => o.filesyms = Some(arg),
            'e' => o.errsyms = true,
            'v' => o.verbose += 1,
            'n' => o.dry_run = true,
            'P' => {
                if arg.len() != 1 {
                    return Command::Fail {
                        getopt_message: None,
                        fatal: Some("-P only takes a single char".into()),
                    };
                }
                o.symbol_prefix = arg.first().copied();
            }
            'w' => o.warn = true,
            NO_CACHE => o.no_cache = true,
            'V' => return Command::Version,
            'h' => return Command::Help,
            _ => {}
        }
    }
    if let Some(msg) = error {
        return Command::Fail { getopt_message: Some(msg), fatal: None };
    }
    o.positional = parsed.positional.into_iter().map(OsString::into_vec).collect();
    Command::Run(o)
}

impl Options {
    /// The kernel version: the first positional argument, or the running kernel's release.
    /// `Err` holds an argument that is not a version (kmod: `Bad version passed`).
    pub fn version(&self) -> Result<Vec<u8>, &[u8]> {
        match self.positional.first() {
            Some(v) if version_is_valid(v) => Ok(v.clone()),
            Some(v) => Err(v),
            None => Ok(rustix::system::uname().release().to_bytes().to_vec()),
        }
    }

    /// The module files named after the version, which are all that is indexed; `None` when
    /// the whole tree is (no file named, or `-a`, or `-A`).
    pub fn module_files(&self) -> Option<&[Vec<u8>]> {
        let files = self.positional.get(1..).unwrap_or_default();
        (!self.all && !self.quick && !files.is_empty()).then_some(files)
    }
}

/// The directories of one run, as kmod spells them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dirs {
    /// `<basedir>/<moduledir>/<version>`: where modules and `modules.order` are read.
    pub input: Vec<u8>,
    /// `<outdir or basedir>/<moduledir>/<version>`: where indexes are written.
    pub output: Vec<u8>,
}

impl Dirs {
    /// The directories `opts` give for the kernel `version`.
    pub fn new(opts: &Options, version: &[u8]) -> Dirs {
        let moduledir = opts.moduledir.as_deref().unwrap_or(b"lib/modules");
        let root = opts.basedir.as_deref().unwrap_or_default();
        let join = |root: &[u8]| [root, b"/", moduledir, b"/", version].concat();
        Dirs { input: join(root), output: join(opts.outdir.as_deref().unwrap_or(root)) }
    }
}

/// C `sscanf(version, "%u.%u", ...) == 2`: leading white space and a sign are tolerated.
pub fn version_is_valid(v: &[u8]) -> bool {
    fn number(s: &[u8]) -> Option<&[u8]> {
        let s = s.trim_ascii_start();
        let s = s.strip_prefix(b"+").or_else(|| s.strip_prefix(b"-")).unwrap_or(s);
        let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
        (n > 0).then(|| &s[n..])
    }
    number(v).and_then(|rest| rest.strip_prefix(b".")).and_then(number).is_some()
}

/// What `-V` prints: kmod's first line (scripts read it), the decoders built in (as kmod's
/// feature line spells them), and this program's name.
pub fn version() -> String {
    let flag =
        |format: Format, name| format!("{}{name}", if format.is_built_in() { '+' } else { '-' });
    format!(
        "kmod version 34.2\n{} {} {}\ndepmod-rs {}: a reimplementation of kmod's depmod\n",
        flag(Format::Zstd, "ZSTD"),
        flag(Format::Xz, "XZ"),
        flag(Format::Gzip, "ZLIB"),
        env!("CARGO_PKG_VERSION")
    )
}

/// kmod 34.2's `--help` text, then what this depmod does differently.
pub fn help(prog: &str) -> String {
    format!(
        "Usage:\n\
\t{prog} -[aA] [options] [forced_version]\n\
\n\
If no arguments (except options) are given, \"depmod -a\" is assumed\n\
\n\
depmod will output a dependency list suitable for the modprobe utility.\n\
\n\
Options:\n\
\t-a, --all            Probe all modules\n\
\t-A, --quick          Only does the work if there's a new module\n\
\t-e, --errsyms        Report not supplied symbols\n\
\t-n, --show           Write the dependency file on stdout only\n\
\t-P, --symbol-prefix  Architecture symbol prefix\n\
\t-C, --config=PATH    Read configuration from PATH\n\
\t-v, --verbose        Enable verbose mode\n\
\t-w, --warn           Warn on duplicates\n\
\t-V, --version        show version\n\
\t-h, --help           show this help\n\
\n\
The following options are useful for people managing distributions:\n\
\t-b, --basedir=DIR    Root path (default: /).\n\
\t-m, --moduledir=DIR  Module directory (default: /lib/modules).\n\
\t-o, --outdir=DIR     Output root path (default: same as <basedir>).\n\
\t-F, --filesyms=FILE  Use the file instead of the\n\
\t                     current kernel symbols.\n\
\t-E, --symvers=FILE   Use Module.symvers file to check\n\
\t                     symbol versions.\n\
{DIFFERENCES}"
    )
}

/// What `--help` adds after kmod's text: every deliberate difference from kmod 34.2 (the
/// README's table, and depmod.8's DIFFERENCES FROM KMOD).
pub const DIFFERENCES: &str = "\n\
--dry-run is accepted too: it is -n, --show.\n\
\n\
Differences from kmod 34.2's depmod (this is depmod-rs, a reimplementation):\n\
\t- Failing to write an index is an error (exit status 1), and the old\n\
\t  indexes stay complete: all are written and flushed first, then renamed.\n\
\t- An index whose contents did not change is not rewritten (modules.dep\n\
\t  still gets a new modification time, for -A).\n\
\t- -A compares modification times to the nanosecond, not the second.\n\
\t- Chained dependency cycles are reported instead of looping forever.\n\
\t- A non-ASCII index key is fatal before anything is written.\n\
\t- Directory symlink loops are reported and skipped, and so is a FIFO\n\
\t  given as configuration (kmod waits for a writer forever).\n\
\t- .ko, .ko.xz, .ko.zst and .ko.gz modules are always read, whatever the\n\
\t  build, and so are zstd frames that do not record their size.\n\
\t- A module file that cannot be used (unreadable, corrupt, not ELF) gets\n\
\t  an error saying what is wrong and is left out of the indexes; defects\n\
\t  kmod reads past silently get a warning (the indexes are kmod's).\n\
\t- -vvv prints no DEBUG trace (kmod's shows its memory addresses).\n\
\t- -V adds a line naming depmod-rs; -h adds this list.\n\
\t- Modules are read on all cores; the output does not depend on it.\n\
\t- A module cache, modules.cache.bin beside the indexes, keeps what was\n\
\t  read of each module file: a file whose stamp (device, inode, size,\n\
\t  modification and change times) is unchanged is not read again. It is\n\
\t  started in the system's own module directory (no -b) once that has\n\
\t  indexes, and kept up to date wherever it is; -n writes none.\n\
\t      --no-cache       Neither read nor write it (so does DEPMOD_NO_CACHE=1).\n\
\n\
See depmod(8).\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Command {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(b"depmod", &args)
    }

    #[test]
    fn kernel_makefile_spelling() {
        let Command::Run(o) = run(&["-ae", "-F", "System.map", "-b", "/tmp/x", "6.1.0"]) else {
            panic!()
        };
        assert!(o.all && o.errsyms);
        assert_eq!(o.filesyms.as_deref(), Some(&b"System.map"[..]));
        assert_eq!(o.basedir.as_deref(), Some(&b"/tmp/x"[..]));
        assert_eq!(o.positional, [b"6.1.0".to_vec()]);
    }

    #[test]
    fn moduledir_loses_leading_slashes() {
        let Command::Run(o) = run(&["--moduledir=//usr/lib/modules"]) else { panic!() };
        assert_eq!(o.moduledir.as_deref(), Some(&b"usr/lib/modules"[..]));
    }

    #[test]
    fn symbol_prefix_is_one_char() {
        assert!(matches!(run(&["-P", "ab"]), Command::Fail { fatal: Some(_), .. }));
        let Command::Run(o) = run(&["-P_"]) else { panic!() };
        assert_eq!(o.symbol_prefix, Some(b'_'));
    }

    #[test]
    fn directories_and_files() {
        let Command::Run(o) = run(&["-b", "/r", "-o", "/out", "-m", "/usr/lib/m", "6.1", "/x.ko"])
        else {
            panic!()
        };
        assert_eq!(o.version(), Ok(b"6.1".to_vec()));
        let dirs = Dirs::new(&o, b"6.1");
        assert_eq!(dirs.input, b"/r/usr/lib/m/6.1");
        assert_eq!(dirs.output, b"/out/usr/lib/m/6.1");
        assert_eq!(o.module_files(), Some(&[b"/x.ko".to_vec()][..]));
        // -a and -A index the whole tree whatever is named.
        for all in ["-a", "-A"] {
            let Command::Run(o) = run(&[all, "6.1", "/x.ko"]) else { panic!() };
            assert_eq!(o.module_files(), None);
        }
        let Command::Run(o) = run(&["6.1"]) else { panic!() };
        assert_eq!(o.module_files(), None);
        // Without -b: kmod's `/lib/modules/...` from an empty root.
        assert_eq!(Dirs::new(&o, b"6.1").input, b"/lib/modules/6.1");
        let Command::Run(o) = run(&["/lib/x.ko"]) else { panic!() };
        assert_eq!(o.version(), Err(&b"/lib/x.ko"[..]));
    }

    #[test]
    fn a_bad_option_keeps_its_bytes() {
        let arg = OsString::from_vec("-é".as_bytes().to_vec());
        let Command::Fail { getopt_message: Some(m), fatal: None } = parse(b"depmod", &[arg])
        else {
            panic!()
        };
        assert_eq!(m, b"depmod: invalid option -- '\xc3'");
    }

    #[test]
    fn versions() {
        for good in ["6.1.0-56-amd64", "4.4", " 4.4", "+4.4x", "-1.2"] {
            assert!(version_is_valid(good.as_bytes()), "{good}");
        }
        for bad in ["", "4", "4.", ".4", "/lib/x.ko", "a4.4", "4 .4"] {
            assert!(!version_is_valid(bad.as_bytes()), "{bad}");
        }
    }
}
