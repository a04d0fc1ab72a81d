//! What a run did (exit status, output, every file, whether modules.dep was rewritten), how two
//! of them differ, and how one is held as text in `expected/`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::{compare_file, decode_bin, first_difference};

/// One file of a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub mode: u32,
    /// Contents, or a description for module files and symbolic links.
    pub data: Vec<u8>,
}

/// What one run did, as compared between the two depmods.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub exit: String,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub files: BTreeMap<String, Entry>,
    /// Each `modules.dep`, and whether the run replaced or touched it.
    pub dep_rewritten: BTreeMap<String, bool>,
}

pub fn is_module_file(name: &str) -> bool {
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().any(|e| name.ends_with(e))
}

/// Every file and directory under `root`, keyed by relative path.
pub fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&p).unwrap();
            let mode = meta.mode() & 0o7777;
            let ft = meta.file_type();
            if ft.is_symlink() {
                let target = fs::read_link(&p).unwrap();
                let data = format!("symlink to {}", target.display()).into_bytes();
                out.insert(rel, Entry { mode, data });
            } else if ft.is_dir() {
                out.insert(format!("{rel}/"), Entry { mode, data: Vec::new() });
                walk(root, &p, out);
            } else if !ft.is_file() {
                // Reading a FIFO would wait for a writer.
                out.insert(rel, Entry { mode, data: b"special file".to_vec() });
            } else if is_module_file(&rel) {
                let data = format!("module file, {} bytes", meta.len()).into_bytes();
                out.insert(rel, Entry { mode, data });
            } else {
                let data = fs::read(&p).unwrap_or_else(|e| format!("unreadable: {e}").into_bytes());
                out.insert(rel, Entry { mode, data });
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Identity of every `modules.dep` under `root`: inode, mtime and ctime.
pub fn dep_stamps(root: &Path) -> BTreeMap<String, (u64, i64, i64, i64, i64)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, i64, i64, i64, i64)>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = fs::symlink_metadata(&p) else { continue };
            if meta.is_dir() {
                walk(root, &p, out);
            } else if e.file_name() == "modules.dep" {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                let stamp =
                    (meta.ino(), meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec());
                out.insert(rel, stamp);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Every address (`0x` and at least 8 hex digits, as kmod's DEBUG lines print pointers) as
/// `0xPTR`.
pub fn normalise_addresses(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(b"0x") {
            let n = text[i + 2..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
            if n >= 8 {
                out.extend_from_slice(b"0xPTR");
                i += 2 + n;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

/// Files longer than this (as text) are held in `expected/` by length and checksum.
pub const LARGE: usize = 4096;

/// kmod's temporary file names (`modules.dep.PID.USEC.SEC`) with those numbers replaced.
pub fn normalise_temp_names(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        // A letter, then three `.digits` groups.
        let groups = |mut j: usize| {
            for _ in 0..3 {
                if b.get(j) != Some(&b'.') {
                    return None;
                }
                let n = b[j + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if n == 0 {
                    return None;
                }
                j += 1 + n;
            }
            Some(j)
        };
        if b[i].is_ascii_alphabetic() {
            if let Some(end) = groups(i + 1) {
                out.push(b[i] as char);
                out.push_str(".PID.USEC.SEC");
                i = end;
                continue;
            }
        }
        let len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + len]);
        i += len;
    }
    out
}

/// An outcome as text, with the root path shown as `$ROOT`, kmod's temporary names without
/// their numbers and indexes decoded: what `expected/` holds.
pub fn render(o: &Outcome, root: &Path) -> BTreeMap<&'static str, String> {
    let r = root.to_str().unwrap();
    let text = |b: &[u8]| {
        let t = String::from_utf8_lossy(&normalise_addresses(b)).replace(r, "$ROOT");
        normalise_temp_names(&t)
    };
    let mut files = String::new();
    for (path, e) in &o.files {
        let body = if path.ends_with(".bin") { decode_bin(&e.data) } else { text(&e.data) };
        let body = body.replace(r, "$ROOT");
        let _ = writeln!(files, "=== {} (mode {:o})", normalise_temp_names(path), e.mode);
        if body.len() > LARGE {
            // The real tree's indexes: a checksum keeps expected/ small.
            let crc = crc32fast::hash(body.as_bytes());
            let _ = writeln!(files, "{} bytes as text, crc32 {crc:08x}", body.len());
            continue;
        }
        files.push_str(&body);
        if is_module_file(path) || e.data.starts_with(b"symlink to ") || e.data == b"special file" {
            files.push('\n');
        } else if !body.is_empty() && !body.ends_with('\n') {
            files.push_str("\n(no final newline)\n");
        }
    }
    for (path, rewritten) in &o.dep_rewritten {
        let _ = writeln!(files, "=== {path} rewritten: {rewritten}");
    }
    BTreeMap::from([
        ("exit", o.exit.clone()),
        ("stdout", text(&o.stdout)),
        ("stderr", text(&o.stderr)),
        ("files", files),
    ])
}

/// What a `differs` (or `pending`) run states about one depmod's outcome, instead of holding it
/// in `expected/`: the aspects it states are checked against the statement, and every other
/// aspect must be the same for both depmods. (A real tree's outcome cannot be held in
/// `expected/`: it would record the package's version and module sizes, which move.)
#[derive(Clone, Debug, Default)]
pub struct Stated {
    pub exit: Option<String>,
    pub stdout: Option<Vec<u8>>,
    pub stderr: Option<Vec<u8>>,
    /// Every file under the root is as it was before the run, and no `modules.dep` was touched.
    pub unchanged: bool,
    /// Whether the run replaced or touched `modules.dep`.
    pub dep_rewritten: Option<bool>,
}

impl Stated {
    pub fn is_empty(&self) -> bool {
        self.exit.is_none()
            && self.stdout.is_none()
            && self.stderr.is_none()
            && !self.unchanged
            && self.dep_rewritten.is_none()
    }

    /// Where `o` departs from the statement; `before` is the snapshot taken before the run and
    /// `subst` expands `$ROOT`, `$MOD` and `$VERSION` in stated texts.
    pub fn check(
        &self,
        o: &Outcome,
        before: &BTreeMap<String, Entry>,
        subst: &dyn Fn(&str) -> String,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(exit) = &self.exit {
            if o.exit.trim() != exit {
                problems.push(format!("exit status {}, stated {exit}", o.exit.trim()));
            }
        }
        for (name, stated, got) in
            [("stdout", &self.stdout, &o.stdout), ("stderr", &self.stderr, &o.stderr)]
        {
            let Some(want) = stated else { continue };
            let want = normalise_temp_names(&subst(&String::from_utf8_lossy(want)));
            let got = normalise_temp_names(&String::from_utf8_lossy(&normalise_addresses(got)));
            if want != got {
                problems
                    .push(format!("{name} is not as stated: {}", first_difference(&want, &got)));
            }
        }
        if self.unchanged {
            for (path, e) in &o.files {
                match before.get(path) {
                    None => problems.push(format!("{path}: created, stated unchanged")),
                    Some(b) if b != e => {
                        problems.push(format!("{path}: changed, stated unchanged"))
                    }
                    Some(_) => {}
                }
            }
            for path in before.keys().filter(|p| !o.files.contains_key(*p)) {
                problems.push(format!("{path}: removed, stated unchanged"));
            }
        }
        let touched = self.dep_rewritten.or(self.unchanged.then_some(false));
        if let Some(want) = touched {
            for (path, &rewritten) in &o.dep_rewritten {
                if rewritten != want {
                    problems.push(format!("{path} rewritten: {rewritten}, stated {want}"));
                }
            }
        }
        problems
    }
}

/// Every difference between two outcomes of the same run, each with its first differing lines.
pub fn differences(kmod: &Outcome, ours: &Outcome) -> Vec<String> {
    differences_except(kmod, ours, &[Stated::default(), Stated::default()])
}

/// [`differences`], leaving out the aspects either side's statement covers.
pub fn differences_except(kmod: &Outcome, ours: &Outcome, stated: &[Stated; 2]) -> Vec<String> {
    let either = |f: fn(&Stated) -> bool| stated.iter().any(f);
    let mut problems = Vec::new();
    if kmod.exit != ours.exit && !either(|s| s.exit.is_some()) {
        problems.push(format!("exit status: kmod {} ours {}", kmod.exit.trim(), ours.exit.trim()));
    }
    let outputs = [
        ("stdout", &kmod.stdout, &ours.stdout, either(|s| s.stdout.is_some())),
        ("stderr", &kmod.stderr, &ours.stderr, either(|s| s.stderr.is_some())),
    ];
    for (name, k, o, _) in outputs.into_iter().filter(|output| !output.3) {
        if let Err(d) = compare_file(name, k, o) {
            problems.push(d);
        }
    }
    for (path, k) in &kmod.files {
        match ours.files.get(path) {
            None => problems.push(format!("{path}: kmod wrote it, ours did not")),
            Some(o) => {
                if k.mode != o.mode {
                    problems
                        .push(format!("{path}: mode {:o} (kmod) vs {:o} (ours)", k.mode, o.mode));
                }
                let name = path.rsplit('/').next().unwrap();
                if let Err(d) = compare_file(name, &k.data, &o.data) {
                    problems.push(format!("{path}: {d}"));
                }
            }
        }
    }
    for path in ours.files.keys().filter(|p| !kmod.files.contains_key(*p)) {
        problems.push(format!("{path}: ours wrote it, kmod did not"));
    }
    if kmod.dep_rewritten != ours.dep_rewritten && !either(|s| s.dep_rewritten.is_some()) {
        problems.push(format!(
            "modules.dep rewritten: kmod {:?} ours {:?}",
            kmod.dep_rewritten, ours.dep_rewritten
        ));
    }
    problems
}

/// Compares an outcome with `expected/<dir>/`, or rewrites it there.
pub fn against_expected(dir: &Path, o: &Outcome, root: &Path, update: bool) -> Vec<String> {
    let rendered = render(o, root);
    if update {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).unwrap();
        for (name, text) in &rendered {
            fs::write(dir.join(name), text).unwrap();
        }
        return Vec::new();
    }
    let mut problems = Vec::new();
    for (name, text) in &rendered {
        match fs::read_to_string(dir.join(name)) {
            Ok(want) if want == *text => {}
            Ok(want) => problems.push(format!(
                "{}/{name}: {}",
                dir.display(),
                first_difference(&want, text)
            )),
            Err(e) => problems
                .push(format!("{}/{name}: {e} (UPDATE_SCENARIOS=1 writes it)", dir.display())),
        }
    }
    problems
}
