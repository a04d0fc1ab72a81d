//! Alias matching as modprobe does it, over the text of the indexes: core's naming rules
//! (`depmod_core::name`) and its glibc `fnmatch` (`depmod_core::index::fnmatch`), the ones the
//! depmod under test writes its indexes with.

use depmod_core::{index, name};

/// kmod's module-name form: up to the first `.`, `-` as `_`.
pub fn module_name(name: &str) -> String {
    text(name::module_name(name.as_bytes()))
}

/// kmod's `alias_normalize`: `-` becomes `_` except inside `[...]`, where it is a range. An
/// alias with unmatched brackets (which modprobe cannot normalise, and depmod leaves out of
/// `modules.alias.bin`) is kept as it is.
pub fn alias(alias: &str) -> String {
    name::alias_key(alias.as_bytes()).map_or_else(|| alias.to_string(), text)
}

/// `fnmatch(pattern, text, 0)`, as glibc matches `modules.alias` patterns.
pub fn matches(pattern: &str, text: &str) -> bool {
    index::fnmatch(pattern.as_bytes(), text.as_bytes())
}

/// A name made from UTF-8 text (core only replaces or cuts at ASCII bytes, so it stays UTF-8).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_subset() {
        let e1000 = "pci:v00008086d0000100Esv*sd*bc*sc*i*";
        assert!(matches(e1000, "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"));
        assert!(!matches(e1000, "pci:v00008086d0000100Fsv00001AF4sd00001100bc02sc00i00"));
        assert!(matches("virtio:d00000001v*", "virtio:d00000001v00001AF4"));
        assert!(matches("a[0-9]c", "a5c"));
        assert!(!matches("a[!0-9]c", "a5c"));
        assert!(matches("a[]]c", "a]c"));
        assert!(matches("a[x", "a[x"));
        assert!(matches("?*", "x"));
        assert!(!matches("?*", ""));
        assert!(matches("*a*b", "xaxxab"));
        assert!(!matches("*a*b", "xaxxa"));
        assert!(matches("a*", "a"));
    }

    #[test]
    fn normalisation() {
        assert_eq!(module_name("virtio-rng"), "virtio_rng");
        // kmod's names stop at the first dot, as depmod names `a.b.ko` `a`.
        assert_eq!(module_name("snd-hda.intel"), "snd_hda");
        assert_eq!(alias("crypto-crc32c"), "crypto_crc32c");
        assert_eq!(alias("dmi*:pn[A-Z]-x"), "dmi*:pn[A-Z]_x");
        assert_eq!(alias("bad]-bracket"), "bad]-bracket");
    }
}
