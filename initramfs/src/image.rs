//! The file tree of an image, kept in memory until it is written as a cpio archive or a directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::Error;
use crate::cpio::{self, Header};

/// Where a file's bytes come from.
#[derive(Clone, Debug)]
pub enum Content {
    /// Bytes made in memory.
    Bytes(Vec<u8>),
    /// A host file, read (through symlinks) when the image is written.
    Host(PathBuf),
}

/// One node of the tree.
#[derive(Clone, Debug)]
pub enum Node {
    /// A directory (mode 0755).
    Dir,
    /// A regular file with its permission bits.
    File { content: Content, perm: u32 },
    /// A symbolic link to the target.
    Symlink(String),
    /// A character device node (mode 0600).
    CharDevice { major: u32, minor: u32 },
}

/// Sizes of a written image.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sizes {
    /// The cpio archive, which is what the kernel unpacks into memory.
    pub unpacked: u64,
    /// The compressed file.
    pub compressed: u64,
}

/// A tree of files keyed by their path without a leading `/`; parents come before children when
/// iterated, which is the order the kernel needs to unpack them.
#[derive(Clone, Debug, Default)]
pub struct Image {
    nodes: BTreeMap<String, Node>,
}

impl Image {
    /// An image with `/dev/console`, which the kernel opens for `/init`'s standard streams before
    /// any devtmpfs is mounted.
    pub fn new() -> Self {
        let mut image = Image::default();
        image.add("dev/console", Node::CharDevice { major: 5, minor: 1 });
        image
    }

    /// Adds (or replaces) `node` at `path`, creating missing parent directories.
    pub fn add(&mut self, path: &str, node: Node) {
        let path = path.trim_matches('/');
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            self.nodes.entry(path[..end].to_string()).or_insert(Node::Dir);
            end += 1;
        }
        self.nodes.insert(path.to_string(), node);
    }

    /// Adds a host file (read when the image is written).
    pub fn add_host_file(&mut self, path: &str, src: &Path, perm: u32) {
        let content = Content::Host(src.to_path_buf());
        self.add(path, Node::File { content, perm });
    }

    /// Adds a file made of `data`.
    pub fn add_bytes(&mut self, path: &str, data: Vec<u8>, perm: u32) {
        let content = Content::Bytes(data);
        self.add(path, Node::File { content, perm });
    }

    /// Adds a symbolic link.
    pub fn add_symlink(&mut self, path: &str, target: &str) {
        self.add(path, Node::Symlink(target.to_string()));
    }

    /// The node at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path.trim_matches('/'))
    }

    /// Every node, parents first.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(p, n)| (p.as_str(), n))
    }

    /// Writes the image as a newc cpio archive to `out`; returns the archive's size.
    pub fn write_cpio<W: Write>(&self, out: W) -> Result<(W, u64), Error> {
        let mut w = cpio::Writer::new(out);
        let mut buf: Vec<u8>;
        for (name, node) in &self.nodes {
            let (mode, rdev, data): (u32, _, &[u8]) = match node {
                Node::Dir => (cpio::S_IFDIR | 0o755, (0, 0), b""),
                Node::File { content, perm } => {
                    let data = match content {
                        Content::Bytes(b) => b.as_slice(),
                        Content::Host(src) => {
                            buf = fs::read(src).map_err(|e| Error::io("read", src, e))?;
                            buf.as_slice()
                        }
                    };
                    (cpio::S_IFREG | perm, (0, 0), data)
                }
                Node::Symlink(target) => (cpio::S_IFLNK | 0o777, (0, 0), target.as_bytes()),
                Node::CharDevice { major, minor } => (cpio::S_IFCHR | 0o600, (*major, *minor), b""),
            };
            let header = Header { name, mode, rdev };
            w.entry(&header, data).map_err(|e| Error::new(format!("writing the archive: {e}")))?;
        }
        w.finish().map_err(|e| Error::new(format!("writing the archive: {e}")))
    }

    /// Writes the image to `path` as a gzip'd cpio archive (what `-initrd` and boot loaders take).
    pub fn write_cpio_gz(&self, path: &Path) -> Result<Sizes, Error> {
        let file = fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
        // gzip's default level: for the 90 MiB of plain modules of Debian's cloud kernel, -9
        // took 17 s against 6 s here, for an archive 1% smaller.
        let gz = GzEncoder::new(io::BufWriter::new(file), Compression::default());
        let (gz, unpacked) = self.write_cpio(gz)?;
        let mut file = gz.finish().map_err(|e| Error::io("write", path, e))?;
        file.flush().map_err(|e| Error::io("write", path, e))?;
        let compressed = fs::metadata(path).map_err(|e| Error::io("stat", path, e))?.len();
        Ok(Sizes { unpacked, compressed })
    }

    /// Writes the tree into the directory `dir`, which must be absent or empty. Device nodes are
    /// left out: creating them needs privileges, and no host-side use needs them.
    pub fn write_dir(&self, dir: &Path) -> Result<(), Error> {
        if fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(Error::new(format!("{}: directory is not empty", dir.display())));
        }
        fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        for (name, node) in &self.nodes {
            let dest = dir.join(name);
            let done = match node {
                Node::Dir => fs::create_dir(&dest),
                Node::File { content, perm } => {
                    let written = match content {
                        Content::Bytes(b) => fs::write(&dest, b),
                        Content::Host(src) => fs::copy(src, &dest).map(|_| ()),
                    };
                    written.and_then(|()| {
                        use std::os::unix::fs::PermissionsExt;
                        fs::set_permissions(&dest, fs::Permissions::from_mode(*perm))
                    })
                }
                Node::Symlink(target) => std::os::unix::fs::symlink(target, &dest),
                Node::CharDevice { .. } => Ok(()),
            };
            done.map_err(|e| Error::io("create", &dest, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_come_first() {
        let mut image = Image::new();
        image.add_bytes("/lib/modules/6.1/kernel/a.ko", b"x".to_vec(), 0o644);
        image.add_bytes("lib-x", Vec::new(), 0o644);
        let names: Vec<&str> = image.nodes().map(|(p, _)| p).collect();
        assert_eq!(
            names,
            [
                "dev",
                "dev/console",
                "lib",
                "lib-x",
                "lib/modules",
                "lib/modules/6.1",
                "lib/modules/6.1/kernel",
                "lib/modules/6.1/kernel/a.ko"
            ]
        );
        assert!(matches!(image.get("/lib/modules"), Some(Node::Dir)));
    }

    #[test]
    fn cpio_round_trip_through_the_names() {
        let mut image = Image::new();
        image.add_symlink("bin/sh", "busybox");
        let (bytes, size) = image.write_cpio(Vec::new()).unwrap();
        assert_eq!(bytes.len() as u64, size);
        let text = String::from_utf8_lossy(&bytes);
        let order: Vec<usize> = ["bin\0", "bin/sh\0", "busybox", "dev/console\0", "TRAILER!!!\0"]
            .iter()
            .map(|n| text.find(n).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }
}
