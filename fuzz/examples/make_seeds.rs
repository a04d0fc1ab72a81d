//! Writes synthetic seed inputs for every fuzz target into `OUT/<target>/` (see scripts/fuzz-seeds,
//! which adds minimised real modules): modules of each ELF class and byte order built by core's
//! writer, their `.modinfo` sections, their xz/zstd/gzip forms, indexes built by core's trie
//! writer, depmod.d files, kernel symbol files and module caches. Also writes a small module tree into
//! `OUT/tree/lib/modules/1.0` for the real depmod to index.
//!
//! Usage: `cargo run --example make_seeds -- OUT`

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use depmod_core::bytes::Shared;

use depmod_core::cache::listing::{Listed, ListingBuf};
use depmod_core::cache::{Cache, CacheWriter, Identity, Stamp, Time};
use depmod_core::elf::writer::{Class, ModuleSpec};
use depmod_core::index::IndexBuilder;
use depmod_core::{Endian, ModuleInfo};

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) {
    let dir = dir.join(target);
    fs::create_dir_all(&dir).expect("seed directory");
    fs::write(dir.join(name), data).expect("seed file");
}

fn bytes(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// A module with a bit of everything depmod reads.
fn module(class: Class, endian: Endian, n: usize, crcs: bool) -> ModuleSpec {
    let mut m = ModuleSpec::new();
    m.class = class;
    m.endian = endian;
    m.modinfo = vec![
        format!("alias=pci:v0000{n:04X}d*sv*sd*bc*sc*i*").into_bytes(),
        format!("alias=char-major-10-{n}").into_bytes(),
        bytes("alias=devname:fuzz"),
        bytes("softdep=pre: crc32c post: other"),
        bytes("weakdep=helper"),
        bytes("license=GPL"),
        bytes("depends=base"),
        bytes("vermagic=6.1.0-56-amd64 SMP mod_unload modversions "),
    ];
    m.exports = vec![format!("fuzz_export_{n}").into_bytes(), bytes("fuzz_shared")];
    if crcs {
        m.crcs = Some(vec![0x1234_5678, 0x9abc_def0]);
    } else {
        m.namespace = Some(bytes("FUZZ_NS"));
    }
    m.imports =
        vec![(bytes("printk"), false), (bytes("base_symbol"), false), (bytes("maybe"), true)];
    m.versions = vec![(bytes("module_layout"), 0x1111), (bytes("printk"), 0x2222)];
    m
}

fn compressed(data: &[u8]) -> [(&'static str, &'static str, Vec<u8>); 3] {
    let mut xz = liblzma::write::XzEncoder::new_stream(
        Vec::new(),
        liblzma::stream::Stream::new_easy_encoder(6, liblzma::stream::Check::Crc32)
            .expect("xz encoder"),
    );
    xz.write_all(data).expect("xz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).expect("gzip");
    [
        ("xz", "xz", xz.finish().expect("xz")),
        ("zstd", "zst", zstd::bulk::compress(data, 19).expect("zstd")),
        ("gzip", "gz", gz.finish().expect("gzip")),
    ]
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: make_seeds OUT"));
    let tree = out.join("tree/lib/modules/1.0/kernel");
    fs::create_dir_all(&tree).expect("tree");

    // Modules, their .modinfo, their compressed forms, and a tree for the real depmod.
    let mut n = 0;
    let mut infos: Vec<(String, ModuleInfo)> = Vec::new();
    for class in [Class::Elf32, Class::Elf64] {
        for endian in [Endian::Little, Endian::Big] {
            for crcs in [false, true] {
                n += 1;
                let spec = module(class, endian, n, crcs);
                let elf = spec.build();
                let name = format!("synthetic-{n}");
                infos.push((name.clone(), ModuleInfo::parse(&elf)));
                write(&out, "elf", &name, &elf);
                let mut modinfo = Vec::new();
                for m in &spec.modinfo {
                    modinfo.extend_from_slice(m);
                    modinfo.push(0);
                }
                write(&out, "modinfo", &name, &modinfo);
                fs::write(tree.join(format!("{name}.ko")), &elf).expect("tree module");
                for (target, ext, data) in compressed(&elf) {
                    write(&out, target, &name, &data);
                    if n == 1 {
                        fs::write(tree.join(format!("packed.ko.{ext}")), &data).expect("module");
                    }
                }
            }
        }
    }
    let mut base = ModuleSpec::new();
    base.exports = vec![bytes("base_symbol")];
    base.modinfo = vec![bytes("alias=base-alias"), bytes("license=GPL")];
    fs::write(tree.join("base.ko"), base.build()).expect("tree module");
    write(&out, "elf", "minimal", &ModuleSpec::new().build());
    write(&out, "modinfo", "edges", b"\0\0key=value=more\0\0flag\0=v\0last-without-nul");

    // Indexes from core's trie writer: the reader's input starts with a key-length byte.
    let mut b = IndexBuilder::new();
    for (k, v, p) in [
        ("ask", "a", 0),
        ("ate", "b", 1),
        ("on", "c", 0),
        ("once", "d", 2),
        ("one", "e", 0),
        ("pci:v0000*d*", "wild", 0),
        ("usb:v1234p*", "usbwild", 3),
        ("char_major_10_200", "tun", 0),
        ("one", "e2", 0),
    ] {
        b.insert(k.as_bytes(), v.as_bytes(), p).expect("ascii");
    }
    let mut index = Vec::new();
    b.write(&mut index).expect("small index");
    for (i, key) in ["once", "pci:v0000abcdd1", "zzz"].iter().enumerate() {
        let mut seed = vec![key.len() as u8];
        seed.extend_from_slice(key.as_bytes());
        seed.extend_from_slice(&index);
        write(&out, "index_reader", &format!("trie-{i}"), &seed);
    }
    let mut empty = vec![0u8];
    IndexBuilder::new().write(&mut empty).expect("empty index");
    write(&out, "index_reader", "empty", &empty);
    write(
        &out,
        "index_roundtrip",
        "keys",
        b"\x01ask=a\0\x02ate=b\0\x00on=c\0\x00once=d\0\x05one=e\0\x00pci:v*d*=w\0\x03o?e=q\0\x01[ab]x=r\0\x00one=e",
    );

    write(
        &out,
        "index_patch",
        "modules",
        b"\x6b\x00pci:v00008086d0000abcd*\0\x01pci:v00008086d0000abce*\0\x02usb:v1p2*\0\x03pci:v00008086d0000abcd*\0\x05symbol:fn_a\0\x80pci:v00008086d0000abcf*\0\x80symbol:fn_a",
    );

    // Module caches of the synthetic modules (the identity is the cache target's); the first
    // byte says whether the target stores the checksum again (even) or not (odd).
    let id = Identity { program: b"depmod-rs fuzz", tree: b"/lib/modules/1.0" };
    let settled = Time { sec: 2_000_000_000, nsec: 0 };
    let stamp = |i: u64| Stamp {
        dev: 0x803,
        ino: 1000 + i,
        size: 4096 * i,
        mtime: Time { sec: 1_700_000_000 + i as i64, nsec: 5 },
        ctime: Time { sec: 1_700_000_100, nsec: 999_999_999 },
    };
    let mut w = CacheWriter::new(id, settled);
    w.set_options(b"-a -e -F /boot/System.map");
    w.add_file(b"/lib/modules/1.0/modules.order", stamp(90)).expect("settled");
    for (i, (name, info)) in infos.iter().enumerate() {
        let path = format!("/lib/modules/1.0/kernel/{name}.ko");
        w.add(path.as_bytes(), stamp(i as u64), info).expect("a clean synthetic module");
    }
    let mut top = ListingBuf::new();
    top.push(Listed::Directory, b"kernel");
    let mut kernel = ListingBuf::new();
    for name in infos.iter().map(|(name, _)| format!("{name}.ko")) {
        kernel.push(Listed::Module, name.as_bytes());
    }
    for (path, listing) in [("/lib/modules/1.0/", top), ("/lib/modules/1.0/kernel/", kernel)] {
        let entries = listing.encoded().expect("names that can be recorded");
        w.add_listing(path.as_bytes(), stamp(80), entries).expect("settled");
    }
    let full = w.finish().expect("small cache");
    let empty = CacheWriter::new(id, settled).finish().expect("empty cache");
    // Updated with most records left out: symbols renumbered; with one left out: not.
    let shared: Shared = full.clone().into();
    let old = Cache::parse(&shared, id).expect("own cache");
    let mut fewer = CacheWriter::update(&old, id, settled);
    old.records().skip(1).for_each(|r| fewer.keep(&r).expect("kept"));
    let fewer = fewer.finish().expect("small cache");
    let mut one = CacheWriter::update(&old, id, settled);
    old.records().step_by(3).for_each(|r| one.keep(&r).expect("kept"));
    let one = one.finish().expect("small cache");
    for (name, file) in
        [("full", full), ("empty", empty), ("update-one-less", fewer), ("update-thirds", one)]
    {
        write(&out, "cache", name, &[&[1u8][..], &file].concat());
        write(&out, "cache", &format!("{name}-resealed"), &[&[0u8][..], &file].concat());
    }

    // depmod.d files: the first line is the kernel release (and the pattern for the matcher).
    let configs: [(&str, &str); 4] = [
        (
            "directives",
            "6.1.0-56-amd64\n# comment\nsearch updates built-in\tvendor external\n\
             override mod-a * extra\noverride b 5\\.10 old\nexternal 6\\.1 /opt/ext\n\
             exclude foo.ko bar\ninclude x\nbogus\noverride x y\nsearch \\\nmore\n",
        ),
        ("regex", "^6\\.1\\.0-[0-9]+-(amd64|cloud-amd64)$\n6.1.0-56-amd64\nsearch built-in\n"),
        ("classes", "[[:digit:]]+\\.[^.]+$\n4.4\noverride m [[:alpha:]]{2,3} updates\n"),
        ("groups", "(a|b)*c{1,2}d?\nabcd\nexternal (a|)+b* /ext\nsearch external\n"),
    ];
    for (name, text) in configs {
        write(&out, "config", name, text.as_bytes());
    }

    // Kernel symbol files (the first byte picks the -P prefix).
    write(
        &out,
        "kernel_symbols",
        "symvers",
        b"_0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\n0xabc\tmod_sym\tdrivers/x\tEXPORT_SYMBOL_GPL\n\
          zz\tbad_crc\tvmlinux\tEXPORT_SYMBOL\n0x11111111111111111\thuge\tvmlinux\tX\n",
    );
    write(
        &out,
        "kernel_symbols",
        "system-map",
        b"_ffffffff81000000 T _text\nffffffff82a0 r __ksymtab_printk\n\
          ffffffff82a4 r ___ksymtab_prefixed\nnospace\none space\nc d __ksymtab_last",
    );
}
