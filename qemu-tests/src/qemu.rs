//! One boot under QEMU and its verdict.
//!
//! The verdict comes from the guest's marker line (`RESULT: PASS` or `RESULT: FAIL details`)
//! and a host-side timeout, never from QEMU's exit status: with `-no-reboot panic=-1` a kernel
//! panic makes QEMU exit 0.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use depmod_initramfs::Arch;

/// Environment variable that switches from TCG to KVM (`-accel kvm -cpu host`) when set to 1.
pub const KVM_VAR: &str = "DEPMOD_RS_QEMU_KVM";
/// Environment variable that overrides the boot timeout, in seconds.
pub const TIMEOUT_VAR: &str = "DEPMOD_RS_QEMU_TIMEOUT";
/// Virtio devices attached by [`Machine::devices`]: net, blk, rng.
pub const VIRTIO_DEVICES: u32 = 3;

/// A virtual machine to boot once.
#[derive(Clone, Debug)]
pub struct Machine {
    /// `qemu-system-x86_64`, or another architecture's `qemu-system-NAME`, which chooses the
    /// machine, CPU and console ([`Arch`]).
    pub qemu: PathBuf,
    /// The kernel image.
    pub kernel: PathBuf,
    /// The gzip'd cpio.
    pub initrd: PathBuf,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Further QEMU arguments (devices).
    pub extra: Vec<String>,
    /// Host-side limit for the whole boot.
    pub timeout: Duration,
}

impl Machine {
    /// The devices the coldplug checks expect: e1000, virtio-net-pci, virtio-blk-pci on the raw
    /// image `disk`, and virtio-rng-pci. `romfile=` skips the NICs' iPXE ROMs.
    pub fn devices(disk: &Path) -> Vec<String> {
        [
            "-device",
            "e1000,romfile=",
            "-device",
            "virtio-net-pci,romfile=",
            "-drive",
            &format!("file={},if=none,id=d0,format=raw", disk.display()),
            "-device",
            "virtio-blk-pci,drive=d0",
            "-device",
            "virtio-rng-pci",
        ]
        .map(str::to_string)
        .to_vec()
    }

    /// The devices of the boards' checks, on the machine's own bus (PCI, or s390's channel
    /// subsystem): virtio-net, virtio-blk on the raw image `disk`, virtio-rng.
    pub fn virtio_devices(arch: Arch, disk: &Path) -> Vec<String> {
        let rom = if arch.has_pci() { ",romfile=" } else { "" };
        vec![
            "-device".into(),
            format!("{}{rom}", arch.virtio("virtio-net")),
            "-drive".into(),
            format!("file={},if=none,id=d0,format=raw", disk.display()),
            "-device".into(),
            format!("{},drive=d0", arch.virtio("virtio-blk")),
            "-device".into(),
            arch.virtio("virtio-rng"),
        ]
    }

    /// The architecture booted: the one `qemu` (`qemu-system-NAME`) emulates.
    pub fn arch(&self) -> Arch {
        Arch::of_qemu_system(&self.qemu).unwrap_or(Arch::X86_64)
    }

    /// Boots, with the serial console written to `dir/serial.log` and QEMU's own messages to
    /// `dir/qemu.log`.
    pub fn boot(&self, dir: &Path) -> Outcome {
        self.boot_append(dir, "")
    }

    /// [`Machine::boot`] with `append` (` root=/dev/vda ...`) added to the kernel command line.
    pub fn boot_append(&self, dir: &Path, append: &str) -> Outcome {
        let serial_path = dir.join("serial.log");
        let qemu_log = dir.join("qemu.log");
        let _ = std::fs::remove_file(&serial_path);
        let arch = self.arch();
        let kvm = std::env::var(KVM_VAR).is_ok_and(|v| v == "1");
        let (accel, cpu) = if kvm { ("kvm", "host") } else { ("tcg", arch.tcg_cpu()) };
        let mut cmd = Command::new(&self.qemu);
        cmd.args(["-accel", accel, "-cpu", cpu])
            .args(arch.machine())
            .args(["-m", &self.memory_mib.to_string()])
            .args(["-smp", &self.cpus.to_string()])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-no-reboot", "-monitor", "none"])
            .arg("-serial")
            .arg(format!("file:{}", serial_path.display()))
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&self.initrd)
            .arg("-append")
            .arg(format!("console={} quiet panic=-1{append}", arch.console()))
            .args(&self.extra)
            .stdin(Stdio::null());
        let start = Instant::now();
        let log = std::fs::File::create(&qemu_log);
        let (status, timed_out) = match log.and_then(|l| {
            let l2 = l.try_clone()?;
            cmd.stdout(l).stderr(l2).spawn()
        }) {
            Err(e) => {
                let verdict = Verdict::NoBoot(format!("cannot start {}: {e}", self.qemu.display()));
                return Outcome::new(verdict, serial_path, qemu_log, start.elapsed());
            }
            Ok(mut child) => loop {
                if let Ok(Some(status)) = child.try_wait() {
                    break (Some(status), false);
                }
                if start.elapsed() > self.timeout {
                    let _ = child.kill();
                    let _ = child.wait();
                    break (None, true);
                }
                std::thread::sleep(Duration::from_millis(100));
            },
        };
        let elapsed = start.elapsed();
        let serial = read_lossy(&serial_path);
        let mut v = verdict(&serial);
        if let Verdict::NoBoot(why) = &mut v {
            if timed_out {
                why.push_str(&format!("; QEMU killed at the {} s timeout", self.timeout.as_secs()));
            } else if let Some(s) = status {
                why.push_str(&format!("; QEMU exited with {s}"));
            }
        }
        Outcome::new(v, serial_path, qemu_log, elapsed)
    }
}

/// What the guest said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `RESULT: PASS`.
    Pass,
    /// `RESULT: FAIL details`: an assertion failed in the guest.
    Fail(String),
    /// No marker: the kernel panicked, QEMU failed, or time ran out.
    NoBoot(String),
}

impl Verdict {
    /// One or three words for the summary line: `PASS`, `assertion failed`, `could not boot`.
    pub fn summary(&self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail(_) => "assertion failed",
            Verdict::NoBoot(_) => "could not boot",
        }
    }
}

/// Decides from the serial log alone. An initramfs the kernel could not unpack completely (too
/// little memory) is a boot failure whatever the guest printed after it.
pub fn verdict(serial: &str) -> Verdict {
    let mut panic_line = None;
    let lines = serial.lines().map(|l| l.trim_matches(|c: char| c.is_whitespace()));
    if let Some(l) = lines.clone().find(|l| l.contains("Initramfs unpacking failed")) {
        return Verdict::NoBoot(format!("the kernel could not unpack the initramfs: {l}"));
    }
    for line in lines {
        if line == "RESULT: PASS" {
            return Verdict::Pass;
        }
        if let Some(details) = line.strip_prefix("RESULT: FAIL") {
            return Verdict::Fail(details.trim().to_string());
        }
        if panic_line.is_none() && line.contains("Kernel panic") {
            panic_line = Some(line.to_string());
        }
    }
    Verdict::NoBoot(match panic_line {
        Some(l) => format!("no marker line; kernel panic: {l}"),
        None => "no marker line, and no kernel panic in the log".to_string(),
    })
}

/// A finished boot.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The decision.
    pub verdict: Verdict,
    /// The serial console, `\r` removed.
    pub serial: String,
    /// Where the serial log was saved.
    pub serial_path: PathBuf,
    /// Where QEMU's own messages were saved.
    pub qemu_log: PathBuf,
    /// Wall time of the boot.
    pub elapsed: Duration,
}

impl Outcome {
    fn new(verdict: Verdict, serial_path: PathBuf, qemu_log: PathBuf, elapsed: Duration) -> Self {
        Outcome {
            verdict,
            serial: read_lossy(&serial_path).replace('\r', ""),
            serial_path,
            qemu_log,
            elapsed,
        }
    }

    /// Lines of the serial log that start with `prefix` (markers for the host), the prefix
    /// removed.
    pub fn values<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.serial.lines().filter_map(move |l| l.trim().strip_prefix(prefix)).map(str::trim)
    }

    /// Panics unless the guest passed, saying whether it could not boot or an assertion failed,
    /// with the serial log (shown by cargo for failed tests).
    pub fn require_pass(&self, name: &str) {
        println!(
            "--- {name}: serial log ({}) ---\n{}\n--- end of serial log ---",
            self.serial_path.display(),
            self.serial
        );
        let qemu = read_lossy(&self.qemu_log);
        if !qemu.trim().is_empty() {
            println!("--- QEMU's messages ({}) ---\n{qemu}", self.qemu_log.display());
        }
        match &self.verdict {
            Verdict::Pass => {}
            Verdict::Fail(details) => panic!(
                "{name}: assertion failed in the guest: {details}\n(serial log: {})",
                self.serial_path.display()
            ),
            Verdict::NoBoot(why) => panic!(
                "{name}: could not boot: {why}\n(serial log: {})",
                self.serial_path.display()
            ),
        }
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_decide() {
        let boot = "\x1b[2J\x1b[01;01HSeaBIOS\r\nok: x\r\n\r\nRESULT: PASS\r\n[ 2.4] reboot: Power down\r\n";
        assert_eq!(verdict(boot), Verdict::Pass);
        assert_eq!(verdict("not ok: a\r\nRESULT: FAIL a; b\r\n"), Verdict::Fail("a; b".into()));
        // A marker not alone on its line is no marker.
        assert!(matches!(verdict("echo RESULT: PASS\n"), Verdict::NoBoot(_)));
        assert!(matches!(
            verdict("[ 1.4] Initramfs unpacking failed: write error\nRESULT: PASS\n"),
            Verdict::NoBoot(why) if why.ends_with("Initramfs unpacking failed: write error")
        ));
        assert_eq!(
            verdict("[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n"),
            Verdict::NoBoot(
                "no marker line; kernel panic: [ 1.0] Kernel panic - not syncing: Attempted to \
                 kill init!"
                    .into()
            )
        );
    }
}
