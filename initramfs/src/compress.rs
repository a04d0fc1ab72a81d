//! Recompressing module files with the host's `xz`, `zstd` and `gzip` programs.
//!
//! The programs are used rather than crates: they are what the kernel's own `modules_install`
//! runs, so the files are the ones a distribution ships, and the tool stays free of codecs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::Error;
use crate::image::Content;

/// What to do with the compression of module files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Copy files as they are in the tree.
    #[default]
    Keep,
    /// Plain `.ko`.
    None,
    /// `.ko.xz`, with the kernel's own flags (its in-kernel decompressor needs CRC32 checks).
    Xz,
    /// `.ko.zst`, at `zstd -19`.
    Zstd,
}

impl FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "keep" => Ok(Compression::Keep),
            "none" => Ok(Compression::None),
            "xz" => Ok(Compression::Xz),
            "zst" | "zstd" => Ok(Compression::Zstd),
            _ => Err(Error::new(format!("unknown compression {s:?} (keep, none, xz or zst)"))),
        }
    }
}

impl Compression {
    /// The extension after `.ko`.
    fn extension(self) -> &'static str {
        match self {
            Compression::Keep | Compression::None => "",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
        }
    }

    /// The command compressing `len` bytes from its standard input.
    fn compressor(self, len: usize) -> Option<Vec<String>> {
        let argv: &[&str] = match self {
            Compression::Keep | Compression::None => return None,
            Compression::Xz => &["xz", "-c", "--check=crc32", "--lzma2=dict=1MiB"],
            // Reading a pipe, zstd leaves the content size out of the frame header unless told
            // it; kmod's depmod then fails with "zstd: Failed to determine decompression size".
            Compression::Zstd => &["zstd", "-19", "-c", "-q"],
        };
        let mut argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        if self == Compression::Zstd {
            argv.push(format!("--stream-size={len}"));
        }
        Some(argv)
    }
}

/// Splits a module path into its `.ko` stem and its compression extension (`""`, `.xz`, ...).
pub fn split(path: &str) -> (&str, &str) {
    match path.rfind(".ko") {
        Some(i) => path.split_at(i + 3),
        None => (path, ""),
    }
}

/// A module's new path (relative, as given) and its content.
pub type Recompressed = (String, Content);

/// Gives each `(source, relative path)` its new relative path and content under `to`, running
/// the codecs on all cores. Files already in the asked form are passed through untouched.
pub fn recompress(
    files: &[(PathBuf, String)],
    to: Compression,
) -> Result<Vec<Recompressed>, Error> {
    let one = |(src, rel): &(PathBuf, String)| -> Result<Recompressed, Error> {
        let (stem, ext) = split(rel);
        if to == Compression::Keep || ext == to.extension() {
            return Ok((rel.clone(), Content::Host(src.clone())));
        }
        let raw = decompress(src, ext)?;
        let data = match to.compressor(raw.len()) {
            Some(argv) => filter(&argv, raw, src)?,
            None => raw,
        };
        Ok((format!("{stem}{}", to.extension()), Content::Bytes(data)))
    };
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut done: Vec<(usize, Result<Recompressed, Error>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(f) = files.get(i) else { break mine };
                        mine.push((i, one(f)));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    if done.len() != files.len() {
        return Err(Error::new("a recompression thread died".to_string()));
    }
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

fn decompress(src: &Path, ext: &str) -> Result<Vec<u8>, Error> {
    let data = std::fs::read(src).map_err(|e| Error::io("read", src, e))?;
    let argv: [&str; 2] = match ext {
        "" => return Ok(data),
        ".xz" => ["xz", "-dc"],
        ".zst" => ["zstd", "-dcq"],
        ".gz" => ["gzip", "-dc"],
        _ => {
            return Err(Error::new(format!("{}: unknown compression", src.display())));
        }
    };
    filter(&argv.map(String::from), data, src)
}

/// Runs `argv` with `input` on its standard input and returns its standard output.
fn filter(argv: &[String], input: Vec<u8>, about: &Path) -> Result<Vec<u8>, Error> {
    let what = || format!("{} (on {})", argv.join(" "), about.display());
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::new(format!("{}: {e}", what())))?;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut out = Vec::new();
    // Feeding and draining at once: a codec may fill its output pipe before reading all input.
    let read = std::thread::scope(|s| {
        s.spawn(move || stdin.as_mut().map(|i| i.write_all(&input)));
        stdout.as_mut().map(|o| o.read_to_end(&mut out))
    });
    let status = child.wait().map_err(|e| Error::new(format!("{}: {e}", what())))?;
    match read {
        Some(Ok(_)) if status.success() => Ok(out),
        _ => Err(Error::new(format!("{} failed: {status}", what()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_and_extensions() {
        assert_eq!(split("kernel/a.ko.xz"), ("kernel/a.ko", ".xz"));
        assert_eq!(split("kernel/a.ko"), ("kernel/a.ko", ""));
        assert_eq!("zst".parse::<Compression>().unwrap(), Compression::Zstd);
        assert!("bz2".parse::<Compression>().is_err());
    }

    #[test]
    fn round_trip_through_the_codecs() {
        let dir = std::env::temp_dir().join(format!("initramfs-compress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("a.ko");
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        std::fs::write(&src, &data).unwrap();
        let have = |p: &str| Command::new(p).arg("--version").output().is_ok();
        for (to, ext) in [(Compression::Xz, ".xz"), (Compression::Zstd, ".zst")] {
            if !have(&to.compressor(0).unwrap()[0]) {
                continue;
            }
            let files = [(src.clone(), "kernel/a.ko".to_string())];
            let out = recompress(&files, to).unwrap();
            let (rel, Content::Bytes(packed)) = &out[0] else { panic!("not recompressed") };
            assert_eq!(rel, &format!("kernel/a.ko{ext}"));
            let packed_path = dir.join(format!("a.ko{ext}"));
            std::fs::write(&packed_path, packed).unwrap();
            assert_eq!(decompress(&packed_path, ext).unwrap(), data);
            if to == Compression::Zstd {
                // The frame header carries the content size (kmod needs it).
                let out = Command::new("zstd").arg("-lv").arg(&packed_path).output().unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(text.contains("(400000 B)"), "{text}");
            }
            // Back to plain .ko from the compressed file.
            let back = recompress(&[(packed_path, rel.clone())], Compression::None).unwrap();
            assert!(matches!(&back[0], (r, Content::Bytes(b)) if r == "kernel/a.ko" && *b == data));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
