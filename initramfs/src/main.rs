//! `depmod-initramfs`: the command line over [`depmod_initramfs::assemble`].

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use depmod_initramfs::{Arch, Compression, Error, Modprobe, Modules, Spec, Tree, assemble};

const HELP: &str = "\
Usage: depmod-initramfs --depmod FILE -o IMAGE [OPTIONS] [MODULE...]

Builds a gzip'd newc initramfs for testing a depmod inside a real kernel. The image holds:
  /bin/busybox, /bin/sh      a static busybox
  /sbin/depmod               the static depmod under test (--depmod)
  /sbin/modprobe, insmod, rmmod, lsmod, modinfo
                             busybox's applets, or kmod with its loader and libraries (--kmod)
  /lib/modules/VERSION/      the chosen modules at their kernel/... paths, with every module
                             loading them may bring in (dependencies, soft and weak
                             dependencies), plus modules.order, modules.builtin and
                             modules.builtin.modinfo; no index: making them is the guest's job
  /init                      --init FILE, or a default that runs /sbin/depmod, loads drivers for
                             the devices present, and opens a shell
MODULE is a module name or an alias, as modprobe takes it. Dependencies are computed by running
the --depmod program on the host over the tree (into a temporary directory).

Options:
  -o, --output IMAGE         write the image here (required)
      --depmod FILE          the depmod to test; must be static, e.g. built with
                             cargo build --release --target x86_64-unknown-linux-musl -p depmod
                             (or a board's, scripts/cross TARGET: run here under qemu-user)
  -b, --basedir DIR          the root holding lib/modules/VERSION and boot/vmlinuz-VERSION, e.g.
                             an extracted linux-image package [default: /]
  -k, --kernel-version VER   the kernel release [default: the only one under DIR/lib/modules,
                             else the running kernel's]
  -a, --all                  include every module of the tree
      --kmod ROOT            use kmod from ROOT (a root file system, e.g. extracted Debian
                             packages kmod, libc6, ... or /) as modprobe; its program interpreter
                             and libraries are found with ROOT's own loader and copied
                             [default: busybox's modprobe]
      --busybox FILE         the static busybox [default: /bin/busybox, Debian's busybox-static]
      --compress MODE        keep (as in the tree), none, xz or zst: recompress the included
                             modules with the host's xz/zstd; modules.order keeps its .ko names
                             [default: keep]
      --init FILE            the /init script (run by busybox sh; call programs by absolute path)
      --file SRC:DEST        also put the host file SRC at DEST in the image (repeatable)
      --stage DIR            also write the image's files into DIR (absent or empty), without
                             device nodes, e.g. to run depmod on the host over the same tree
  -h, --help                 show this help

Example, with Debian's packages (apt-get download linux-image-amd64's dependency, then
dpkg-deb -x it into ./k):
  depmod-initramfs --depmod target/x86_64-unknown-linux-musl/release/depmod -b ./k \\
      -o img.cpio.gz e1000 virtio_net virtio_blk btrfs
  qemu-system-x86_64 -accel tcg -cpu max -m 512 -nographic -no-reboot \\
      -kernel ./k/boot/vmlinuz-VERSION -initrd img.cpio.gz -append 'console=ttyS0 panic=-1' \\
      -nic user,model=virtio-net-pci,romfile=
";

/// The parsed command line.
struct Args {
    spec: Spec,
    output: PathBuf,
    stage: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Paths need not be UTF-8: the arguments are taken as the bytes they are.
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    match parse(&args).and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("depmod-initramfs: {e}");
            eprintln!("Try 'depmod-initramfs --help'.");
            ExitCode::FAILURE
        }
    }
}

/// An argument that must be text (a name, a version, a mode).
fn text(opt: &str, value: OsString) -> Result<String, Error> {
    value.into_string().map_err(|v| {
        let shown = String::from_utf8_lossy(v.as_bytes()).into_owned();
        Error::new(format!("{opt}: {shown:?} is not valid UTF-8"))
    })
}

fn parse(args: &[OsString]) -> Result<Args, Error> {
    let mut output = None;
    let mut depmod = None;
    let mut basedir = PathBuf::from("/");
    let mut version = None;
    let mut all = false;
    let mut modprobe = Modprobe::Busybox;
    let mut busybox = PathBuf::from("/bin/busybox");
    let mut compress = Compression::Keep;
    let mut init = None;
    let mut files = Vec::new();
    let mut stage = None;
    let mut names = Vec::new();

    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let bytes = arg.as_bytes();
        // `--opt=value` and `--opt value` are both accepted.
        let (opt, inline) = match bytes.iter().position(|&b| b == b'=') {
            Some(eq) if bytes.starts_with(b"--") => {
                (&bytes[..eq], Some(OsStr::from_bytes(&bytes[eq + 1..]).to_os_string()))
            }
            _ => (bytes, None),
        };
        let opt = String::from_utf8_lossy(opt).into_owned();
        let mut value = || -> Result<OsString, Error> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| Error::new(format!("{opt} needs a value")))
        };
        match opt.as_str() {
            "-o" | "--output" => output = Some(PathBuf::from(value()?)),
            "--depmod" => depmod = Some(PathBuf::from(value()?)),
            "-b" | "--basedir" => basedir = PathBuf::from(value()?),
            "-k" | "--kernel-version" => version = Some(text(&opt, value()?)?),
            "-a" | "--all" => all = true,
            "--kmod" => modprobe = Modprobe::Kmod(PathBuf::from(value()?)),
            "--busybox" => busybox = PathBuf::from(value()?),
            "--compress" => compress = text(&opt, value()?)?.parse()?,
            "--init" => {
                let path = PathBuf::from(value()?);
                let script = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
                init = Some(script);
            }
            "--file" => {
                let v = value()?;
                let v = v.as_bytes();
                let Some(colon) = v.iter().position(|&b| b == b':') else {
                    let shown = String::from_utf8_lossy(v);
                    return Err(Error::new(format!("--file {shown}: expected SRC:DEST")));
                };
                let src = PathBuf::from(OsStr::from_bytes(&v[..colon]));
                let dest = text("--file", OsStr::from_bytes(&v[colon + 1..]).to_os_string())?;
                files.push((src, dest));
            }
            "--stage" => stage = Some(PathBuf::from(value()?)),
            _ if opt.starts_with('-') && opt.len() > 1 => {
                return Err(Error::new(format!("unknown option {opt}")));
            }
            _ => names.push(text("a module name", arg.clone())?),
        }
    }
    let output = output.ok_or_else(|| Error::new("-o IMAGE is required".into()))?;
    let depmod = depmod.ok_or_else(|| Error::new("--depmod FILE is required".into()))?;
    let modules = match (all, names.is_empty()) {
        (true, true) => Modules::All,
        (false, false) => Modules::Named(names),
        (true, false) => {
            return Err(Error::new("--all and module names exclude each other".into()));
        }
        (false, true) => return Err(Error::new("name some modules, or --all".into())),
    };
    let tree = Tree::new(&basedir, version.as_deref())?;
    let spec = Spec { tree, depmod, busybox, modprobe, modules, compress, init, files };
    Ok(Args { spec, output, stage })
}

fn run(args: &Args) -> Result<(), Error> {
    let built = assemble(&args.spec, None)?;
    for note in &built.notes {
        eprintln!("depmod-initramfs: note: {note}");
    }
    if let Some(dir) = &args.stage {
        built.image.write_dir(dir)?;
    }
    let sizes = built.image.write_cpio_gz(&args.output)?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let tree = &args.spec.tree;
    eprintln!(
        "depmod-initramfs: wrote {}: {} modules of {}, modprobe: {}; {:.1} MiB unpacked, {:.1} MiB \
         gzip'd",
        args.output.display(),
        built.modules.len(),
        tree.version,
        built.modprobe,
        mib(sizes.unpacked),
        mib(sizes.compressed),
    );
    let kernel = tree.kernel().map_or_else(
        || format!("{}/boot/vmlinuz-{}", tree.basedir.display(), tree.version),
        |k| k.display().to_string(),
    );
    // Guest memory must hold the kernel, the compressed image while it is unpacked, and the
    // unpacked files: suggest room for all three with some to spare.
    let memory = (256 + 2 * mib(sizes.unpacked + sizes.compressed) as u64).next_multiple_of(128);
    // The machine is the depmod's: a board's static depmod boots on that board's QEMU.
    let arch = std::fs::read(&args.spec.depmod).ok().and_then(|d| Arch::of_elf(&d).ok());
    let hint =
        arch.unwrap_or(Arch::X86_64).boot_hint(&kernel, &args.output.display().to_string(), memory);
    eprintln!("depmod-initramfs: boot it with:\n  {hint}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn args(list: &[&[u8]]) -> Vec<OsString> {
        list.iter().map(|a| OsString::from_vec(a.to_vec())).collect()
    }

    /// Arguments are bytes: a path that is not UTF-8 is used as it is (here it names no tree),
    /// a module name that is not UTF-8 is refused with a message; nothing panics.
    #[test]
    fn arguments_that_are_not_utf8() {
        let base: &[&[u8]] = &[b"--depmod", b"/x/depmod", b"-o", b"/x/img"];
        let path = args(&[base, &[b"-b", b"/nonexistent/\xff", b"e1000"]].concat());
        let Err(e) = parse(&path) else { panic!("a tree at /nonexistent") };
        assert!(e.to_string().contains("/nonexistent/"), "{e}");
        let name = args(&[base, &[b"-b", b"/", b"caf\xe9"]].concat());
        let Err(e) = parse(&name) else { panic!("a name that is not UTF-8 was taken") };
        assert_eq!(e.to_string(), "a module name: \"caf\u{fffd}\" is not valid UTF-8");
        let file =
            args(&[base, &[b"--file=/src/\xff:/dest", b"-a", b"-b", b"/nonexistent"]].concat());
        assert!(parse(&file).is_err());
        let mode = args(&[base, &[b"--compress", b"\xff"]].concat());
        let Err(e) = parse(&mode) else { panic!() };
        assert_eq!(e.to_string(), "--compress: \"\u{fffd}\" is not valid UTF-8");
    }
}
