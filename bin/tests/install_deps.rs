//! `scripts/install-deps` against stand-in `dpkg-query`, `apt-cache` and `apt-get` (and `id`,
//! `rustup`): it installs without `apt-get update` when it can, updates only when a package has
//! no candidate or the install fails, survives an update that fails for some lists (exit 100, as
//! when a foreign architecture's list is caught in a mirror sync), and fails only when a package
//! really cannot be installed, naming it.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

/// The stand-ins. Their state is files in `$STATE`: `missing` (packages not installed),
/// `known` (packages with a candidate), `known-after-update` (with one once lists are updated),
/// `stale` (installs fail until an update), `updated` (an update ran), `calls` (what ran).
const STANDINS: &[(&str, &str)] = &[
    (
        "dpkg-query",
        r#"pkg=${@: -1}
if grep -qx "$pkg" "$STATE/missing"; then
    echo "dpkg-query: no packages found matching $pkg" >&2; exit 1
fi
printf 'install ok installed'"#,
    ),
    (
        "apt-cache",
        r#"echo "apt-cache $*" >>"$STATE/calls"
pkg=$2
known() { grep -qx "$1" "$STATE/known" || { [ -e "$STATE/updated" ] && grep -qx "$1" "$STATE/known-after-update"; }; }
if known "$pkg"; then
    printf '%s:\n  Installed: (none)\n  Candidate: 1.0-1\n  Version table:\n' "$pkg"
    # Long enough that a reader stopping at "Candidate" leaves the writer to a SIGPIPE.
    for i in $(seq 4000); do echo "     1.0-$i 500 http://deb.debian.org/debian bookworm/main amd64 Packages"; done
elif [ -e "$STATE/listed-without-candidate" ]; then
    printf '%s:\n  Installed: (none)\n  Candidate: (none)\n' "$pkg"
fi"#,
    ),
    (
        "apt-get",
        r#"echo "apt-get $*" >>"$STATE/calls"
case $1 in
update)
    touch "$STATE/updated"
    echo "W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/main/binary-i386/Packages.xz  File has unexpected size (123 != 456). Mirror sync in progress?" >&2
    echo "E: Some index files failed to download. They have been ignored, or old ones used instead." >&2
    exit 100 ;;
install)
    shift
    pkgs=()
    for a in "$@"; do case $a in -*) ;; *) pkgs+=("$a") ;; esac; done
    for p in "${pkgs[@]}"; do
        if ! grep -qx "$p" "$STATE/known" && ! { [ -e "$STATE/updated" ] && grep -qx "$p" "$STATE/known-after-update"; }; then
            echo "E: Unable to locate package $p" >&2; exit 100
        fi
    done
    if [ -e "$STATE/stale" ] && [ ! -e "$STATE/updated" ]; then
        echo "E: Failed to fetch http://deb.debian.org/debian/pool/main/c/${pkgs[0]}.deb  404  Not Found" >&2; exit 100
    fi
    for p in "${pkgs[@]}"; do grep -vx "$p" "$STATE/missing" >"$STATE/missing.new" || true; mv "$STATE/missing.new" "$STATE/missing"; done ;;
*) echo "unexpected apt-get $*" >&2; exit 2 ;;
esac"#,
    ),
    ("id", r#"[ "$1" = -u ] && echo 0 || echo "uid=0(root) gid=0(root)""#),
    (
        "rustup",
        r#"case "$*" in
"target list --installed") printf '%s\n' x86_64-unknown-linux-musl aarch64-unknown-linux-musl \
    armv7-unknown-linux-gnueabihf riscv64gc-unknown-linux-gnu s390x-unknown-linux-gnu ;;
"toolchain list") echo "stable-x86_64-unknown-linux-gnu (default)" ;;
"target add "*) echo "rustup $*" >>"$STATE/calls" ;;
*) echo "unexpected rustup $*" >&2; exit 2 ;;
esac"#,
    ),
    // Nothing else of the package system may run for real.
    ("dpkg", r#"echo "unexpected dpkg $*" >&2; exit 2"#),
    ("cargo", r#"echo "unexpected cargo $*" >&2; exit 2"#),
];

/// What a run of the script did.
struct Ran {
    ok: bool,
    stderr: String,
    /// `apt-get` and `apt-cache` calls, in order.
    calls: Vec<String>,
    /// Packages still missing afterwards.
    missing: Vec<String>,
}

struct Machine {
    dir: PathBuf,
}

impl Machine {
    /// A machine where `missing` are not installed, `known` have candidates now and
    /// `after_update` only once the lists are updated.
    fn new(name: &str, missing: &[&str], known: &[&str], after_update: &[&str]) -> Self {
        let dir = common::scratch(&format!("install-deps-{name}"));
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).unwrap();
        for (cmd, body) in STANDINS {
            let path = bin.join(cmd);
            fs::write(&path, format!("#!/bin/bash\n{body}\n")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let state = dir.join("state");
        fs::create_dir_all(&state).unwrap();
        let lines = |l: &[&str]| l.iter().map(|p| format!("{p}\n")).collect::<String>();
        fs::write(state.join("missing"), lines(missing)).unwrap();
        fs::write(state.join("known"), lines(known)).unwrap();
        fs::write(state.join("known-after-update"), lines(after_update)).unwrap();
        fs::write(state.join("calls"), "").unwrap();
        Machine { dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn flag(&self, name: &str) -> &Self {
        fs::write(self.state().join(name), "").unwrap();
        self
    }

    fn run(&self) -> Ran {
        let script = common::repo().join("scripts/install-deps");
        let path = format!("{}:/usr/bin:/bin", self.dir.join("bin").display());
        let out = Command::new("bash")
            .arg(&script)
            .env_clear()
            .env("PATH", path)
            .env("STATE", self.state())
            .env("HOME", &self.dir)
            .output()
            .expect("bash runs");
        let read = |f: &str| -> Vec<String> {
            fs::read_to_string(self.state().join(f)).unwrap().lines().map(String::from).collect()
        };
        Ran {
            ok: out.status.success(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            calls: read("calls"),
            missing: read("missing"),
        }
    }
}

fn apt_gets(r: &Ran) -> Vec<&str> {
    r.calls.iter().filter(|c| c.starts_with("apt-get")).map(|c| c.as_str()).collect()
}

fn assert_ok(r: &Ran) {
    assert!(r.ok, "install-deps failed:\n{}", r.stderr);
    assert!(r.missing.is_empty(), "still missing {:?}:\n{}", r.missing, r.stderr);
}

#[test]
fn nothing_missing_touches_nothing() {
    let r = Machine::new("nothing", &[], &[], &[]).run();
    assert_ok(&r);
    assert!(r.calls.is_empty(), "{:?}", r.calls);
}

#[test]
fn installs_without_updating_when_every_package_has_a_candidate() {
    // apt-cache's long answer would make `apt-cache policy | grep -q` fail under pipefail.
    let r = Machine::new("candidates", &["cpio", "zstd"], &["cpio", "zstd"], &[]).run();
    assert_ok(&r);
    let gets = apt_gets(&r);
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert!(gets[0].starts_with("apt-get install"), "{gets:?}");
    assert!(gets[0].contains(" cpio") && gets[0].contains(" zstd"), "{gets:?}");
}

#[test]
fn updates_when_a_package_has_no_candidate_and_survives_a_partial_update() {
    for listed in [false, true] {
        let m = Machine::new("no-candidate", &["cpio", "zstd"], &["zstd"], &["cpio"]);
        if listed {
            m.flag("listed-without-candidate");
        }
        let r = m.run();
        assert_ok(&r);
        let gets = apt_gets(&r);
        assert_eq!(gets.len(), 2, "{gets:?}");
        assert_eq!(gets[0], "apt-get update -q");
        assert!(gets[1].starts_with("apt-get install"), "{gets:?}");
        assert!(r.stderr.contains("no candidate yet for: cpio"), "{}", r.stderr);
        assert!(r.stderr.contains("apt-get update exited 100"), "{}", r.stderr);
    }
}

#[test]
fn updates_when_the_install_fails_on_stale_lists() {
    let m = Machine::new("stale", &["cpio"], &["cpio"], &[]);
    m.flag("stale");
    let r = m.run();
    assert_ok(&r);
    let gets = apt_gets(&r);
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert!(gets[0].starts_with("apt-get install") && gets[2].starts_with("apt-get install"));
    assert_eq!(gets[1], "apt-get update -q");
}

#[test]
fn fails_naming_what_cannot_be_installed() {
    let r = Machine::new("impossible", &["cpio", "kmod"], &["cpio"], &[]).run();
    assert!(!r.ok, "install-deps succeeded although kmod cannot be installed:\n{}", r.stderr);
    let failed: Vec<&str> = r.stderr.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(
        failed,
        ["install-deps: FAILED: no installation candidate for: kmod"],
        "{}",
        r.stderr
    );
    assert_eq!(r.missing, ["cpio", "kmod"]);
    assert!(apt_gets(&r).contains(&"apt-get update -q"), "{:?}", r.calls);
}
