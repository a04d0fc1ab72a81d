//! The depmod.d settings that decide which file wins when two share a module name.

use alloc::vec::Vec;

/// One `search` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Search {
    /// `built-in`: the module directory itself.
    BuiltIn,
    /// `external`: the `external` directories.
    External,
    /// A subdirectory of the module directory, such as `updates`.
    Dir(Vec<u8>),
}

/// Settings from depmod.d, in configuration order (earlier lines first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `search` entries, earliest (highest priority) first.
    pub search: Vec<Search>,
    /// `override MOD KVER SUBDIR` lines whose KVER matched, as `SUBDIR/MOD`.
    pub overrides: Vec<Vec<u8>>,
    /// `external KVER DIR` lines whose KVER matched, earliest first.
    pub externals: Vec<Vec<u8>>,
    /// `exclude` names: path components skipped during the walk.
    pub excludes: Vec<Vec<u8>>,
}

/// What the priority rules need to know about one candidate file.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// Full path as built by the walk.
    pub path: &'a [u8],
    /// Length of the module name (the basename up to its first `.`).
    pub name_len: usize,
}

impl Config {
    /// Whether `old`, already indexed, stays when `new` has the same module name (kmod's
    /// priority rules; the module directory is `dirname`).
    pub fn old_wins(&self, dirname: &[u8], old: Candidate<'_>, new: Candidate<'_>) -> bool {
        // The path after `dirname/` (kmod only checks the `dirname` prefix, not the `/`), cut to
        // its directory plus the module-name part of its basename.
        fn rel<'p>(c: Candidate<'p>, dirname: &[u8]) -> Option<&'p [u8]> {
            let tail = c.path.strip_prefix(dirname)?.get(1..)?;
            let dir_len = tail.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
            tail.get(..dir_len + c.name_len)
        }
        let (new_rel, old_rel) = (rel(new, dirname), rel(old, dirname));

        for ov in self.overrides.iter().rev() {
            if new_rel == Some(ov.as_slice()) {
                return false;
            }
            if old_rel == Some(ov.as_slice()) {
                return true;
            }
        }

        let under = |r: Option<&[u8]>, dir: &[u8]| {
            r.and_then(|r| r.strip_prefix(dir)).is_some_and(|t| t.first() == Some(&b'/'))
        };
        // Without any `search` line kmod searches `updates` only (built-in is then unlisted).
        let default = [Search::Dir(b"updates".to_vec())];
        let list: &[Search] = if self.search.is_empty() { &default } else { &self.search };
        let (mut builtin, mut old_prio, mut new_prio) = (-1i64, -1i64, -1i64);
        let mut i = 0i64;
        for s in list.iter().rev() {
            match s {
                Search::BuiltIn => builtin = i,
                Search::External => {
                    for ext in self.externals.iter().rev() {
                        let starts = |p: &[u8]| {
                            p.strip_prefix(ext.as_slice()).is_some_and(|t| t.first() == Some(&b'/'))
                        };
                        if starts(new.path) {
                            new_prio = i;
                        }
                        if starts(old.path) {
                            old_prio = i;
                        }
                        i += 1;
                    }
                }
                Search::Dir(d) => {
                    if under(new_rel, d) {
                        new_prio = i;
                    } else if under(old_rel, d) {
                        old_prio = i;
                    }
                }
            }
            i += 1;
        }
        if new_prio < 0 {
            new_prio = builtin;
        }
        if old_prio < 0 {
            old_prio = builtin;
        }
        new_prio <= old_prio
    }
}

/// Something about a depmod.d line worth reporting (line numbers are 1-based; a line joined
/// with backslash-newline counts as its last physical line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigNotice<'a> {
    /// An unknown command, or one missing its arguments (`ignoring bad line starting with`).
    BadLine { line: u32, command: &'a [u8] },
    /// `include` or `make_map_files` (`command %s not implemented yet`).
    NotImplemented { line: u32, command: &'a [u8] },
    /// An `override` for another kernel (`override kernel did not match`).
    OverrideMismatch { line: u32, version: &'a [u8] },
    /// An `external` for another kernel (`external directory did not match`).
    ExternalMismatch { line: u32, version: &'a [u8] },
}

/// Whether a depmod.d kernel-version field applies to `kernel`: `*` always does; anything else
/// is an extended regular expression searched anywhere in the version (one that does not
/// compile matches nothing).
pub fn kernel_matches(pattern: &[u8], kernel: &[u8]) -> bool {
    pattern == b"*" || crate::ere::Regex::new(pattern).is_ok_and(|re| re.is_match(kernel))
}

/// The logical lines of a depmod.d file, each with its line number: backslash-newline joins
/// lines, a backslash before any other byte is dropped, and a line ends at its first NUL.
fn logical_lines(text: &[u8]) -> impl Iterator<Item = (u32, Vec<u8>)> + '_ {
    let mut i = 0;
    let mut number = 0u32;
    core::iter::from_fn(move || {
        if i >= text.len() {
            return None;
        }
        let mut line = Vec::new();
        while let Some(&c) = text.get(i) {
            i += 1;
            match c {
                b'\n' => break,
                b'\\' => match text.get(i) {
                    Some(b'\n') => {
                        i += 1;
                        number += 1;
                    }
                    Some(&next) => {
                        i += 1;
                        line.push(next);
                    }
                    // getc() returned EOF; kmod stores it as the byte 0xff.
                    None => line.push(0xff),
                },
                _ => line.push(c),
            }
        }
        number += 1;
        if let Some(nul) = line.iter().position(|&b| b == 0) {
            line.truncate(nul);
        }
        Some((number, line))
    })
}

impl Config {
    /// Applies one depmod.d file (`text`) for the kernel release `kernel`.
    pub fn parse(&mut self, text: &[u8], kernel: &[u8], mut notice: impl FnMut(ConfigNotice<'_>)) {
        for (line, content) in logical_lines(text) {
            if content.first().is_none_or(|&c| c == b'#') {
                continue;
            }
            let mut tokens = content.split(|&b| b == b' ' || b == b'\t').filter(|t| !t.is_empty());
            let Some(command) = tokens.next() else {
                continue;
            };
            match command {
                b"search" => {
                    for t in tokens {
                        self.search.push(match t {
                            b"built-in" => Search::BuiltIn,
                            b"external" => Search::External,
                            dir => Search::Dir(dir.to_vec()),
                        });
                    }
                }
                b"override" => match (tokens.next(), tokens.next(), tokens.next()) {
                    (Some(module), Some(version), Some(subdir)) => {
                        if !kernel_matches(version, kernel) {
                            notice(ConfigNotice::OverrideMismatch { line, version });
                            continue;
                        }
                        let mut path = subdir.to_vec();
                        path.push(b'/');
                        path.extend_from_slice(module);
                        self.overrides.push(path);
                    }
                    _ => notice(ConfigNotice::BadLine { line, command }),
                },
                b"external" => match (tokens.next(), tokens.next()) {
                    (Some(version), Some(dir)) => {
                        if !kernel_matches(version, kernel) {
                            notice(ConfigNotice::ExternalMismatch { line, version });
                            continue;
                        }
                        self.externals.push(dir.to_vec());
                    }
                    _ => notice(ConfigNotice::BadLine { line, command }),
                },
                b"exclude" => self.excludes.extend(tokens.map(<[u8]>::to_vec)),
                b"include" | b"make_map_files" => {
                    notice(ConfigNotice::NotImplemented { line, command });
                }
                _ => notice(ConfigNotice::BadLine { line, command }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;

    fn parse(text: &str) -> (Config, Vec<String>) {
        let mut c = Config::default();
        let mut notes = Vec::new();
        c.parse(text.as_bytes(), b"6.1.0-56-amd64", |n| notes.push(alloc::format!("{n:?}")));
        (c, notes)
    }

    #[test]
    fn directives() {
        let (c, notes) = parse(
            "# comment\n\nsearch updates built-in\tvendor external\n\
             override mod-a * extra\noverride b 5\\.10 old\nexternal 6\\.1 /opt/ext\n\
             exclude foo.ko bar\ninclude x\n  # indented\nbogus\noverride x y\nsearch \\\nmore\n",
        );
        assert_eq!(
            c.search,
            [
                Search::Dir(b"updates".to_vec()),
                Search::BuiltIn,
                Search::Dir(b"vendor".to_vec()),
                Search::External,
                Search::Dir(b"more".to_vec())
            ]
        );
        assert_eq!(c.overrides, [b"extra/mod-a".to_vec()]);
        assert_eq!(c.externals, [b"/opt/ext".to_vec()]);
        assert_eq!(c.excludes, [b"foo.ko".to_vec(), b"bar".to_vec()]);
        assert_eq!(
            notes,
            [
                // The backslash of `5\.10` is gone before the pattern is compiled (kmod's reader).
                "OverrideMismatch { line: 5, version: [53, 46, 49, 48] }",
                "NotImplemented { line: 8, command: [105, 110, 99, 108, 117, 100, 101] }",
                "BadLine { line: 9, command: [35] }",
                "BadLine { line: 10, command: [98, 111, 103, 117, 115] }",
                "BadLine { line: 11, command: [111, 118, 101, 114, 114, 105, 100, 101] }",
            ]
        );
    }

    #[test]
    fn joined_lines_count_their_last_line() {
        let (_, notes) = parse("a\\\nb\nc");
        assert_eq!(notes.len(), 2);
        assert!(notes[0].contains("line: 2") && notes[1].contains("line: 3"));
        // `\ ` is a plain space; a backslash at the end of the file stores EOF as 0xff.
        let (c, _) = parse("exclude a\\ b\\");
        assert_eq!(c.excludes, vec![b"a".to_vec(), vec![b'b', 0xff]]);
    }

    fn cand(path: &str) -> Candidate<'_> {
        let name = crate::name::module_name(path.as_bytes());
        Candidate { path: path.as_bytes(), name_len: name.len() }
    }

    #[test]
    fn priorities() {
        let d = b"/m";
        // foo beats built-in, built-in beats updates.
        let (c, _) = parse("search foo built-in updates\n");
        assert!(c.old_wins(d, cand("/m/foo/y.ko"), cand("/m/kernel/y.ko")));
        assert!(!c.old_wins(d, cand("/m/kernel/y.ko"), cand("/m/foo/y.ko")));
        assert!(c.old_wins(d, cand("/m/kernel/y.ko"), cand("/m/updates/y.ko")));
        // Same built-in class: the first found stays.
        assert!(c.old_wins(d, cand("/m/kernel/a/y.ko"), cand("/m/kernel/b/y.ko")));
        // Same searched directory: the later found wins (kmod's quirk).
        assert!(!c.old_wins(d, cand("/m/foo/a/y.ko"), cand("/m/foo/b/y.ko")));
        // Override: matched against the name as spelled on disk.
        let (c, _) = parse("search built-in\noverride my-mod * alt\n");
        assert!(!c.old_wins(d, cand("/m/kernel/my-mod.ko"), cand("/m/alt/my-mod.ko")));
        let (c, _) = parse("search built-in\noverride my_mod * alt\n");
        assert!(c.old_wins(d, cand("/m/kernel/my-mod.ko"), cand("/m/alt/my-mod.ko")));
        // External directories rank only through `external`.
        let (c, _) = parse("external * /ext\nsearch external built-in\n");
        assert!(!c.old_wins(d, cand("/m/kernel/z.ko"), cand("/ext/z.ko")));
        let (c, _) = parse("external * /ext\nsearch built-in external\n");
        assert!(c.old_wins(d, cand("/m/kernel/z.ko"), cand("/ext/z.ko")));
    }
}
