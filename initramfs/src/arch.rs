//! The architectures an image can be built for: which one a program is for (from its ELF header),
//! what runs it on this host when it is not the host's (qemu-user), and how QEMU boots a kernel of
//! it (qemu-system: machine, CPU under TCG, console, virtio devices).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::elf;

/// A Linux architecture, by QEMU's name for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `x86_64`: the `pc` machine, devices on PCI.
    X86_64,
    /// `aarch64`: the `virt` machine, devices on PCI.
    Aarch64,
    /// `arm` (armv7, hard float): the `virt` machine, devices on PCI.
    Arm,
    /// `riscv64`: the `virt` machine (OpenSBI from QEMU), devices on PCI.
    Riscv64,
    /// `s390x`, big-endian: the `s390-ccw-virtio` machine, devices on the channel subsystem.
    S390x,
}

/// ELF `e_machine` values.
const EM_S390: u16 = 22;
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;

impl Arch {
    /// Every architecture, the host's first.
    pub const ALL: [Arch; 5] = [Arch::X86_64, Arch::Aarch64, Arch::Arm, Arch::Riscv64, Arch::S390x];

    /// QEMU's name (`qemu-NAME-static`, `qemu-system-NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Arm => "arm",
            Arch::Riscv64 => "riscv64",
            Arch::S390x => "s390x",
        }
    }

    /// The architecture a program (an ELF file's contents) is for.
    pub fn of_elf(data: &[u8]) -> Result<Arch, String> {
        let (machine, wide) = elf::machine(data)?;
        match (machine, wide) {
            (EM_X86_64, true) => Ok(Arch::X86_64),
            (EM_AARCH64, true) => Ok(Arch::Aarch64),
            (EM_ARM, false) => Ok(Arch::Arm),
            (EM_RISCV, true) => Ok(Arch::Riscv64),
            (EM_S390, true) => Ok(Arch::S390x),
            _ => Err(format!(
                "ELF machine {machine} ({}-bit) is not one of {}",
                if wide { 64 } else { 32 },
                Self::names()
            )),
        }
    }

    /// The architecture a `qemu-system-NAME` program boots, from its file name.
    pub fn of_qemu_system(program: &Path) -> Option<Arch> {
        let name = program.file_name()?.to_str()?.strip_prefix("qemu-system-")?;
        Arch::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The architecture this program was built for, if it is one of these.
    pub fn host() -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == std::env::consts::ARCH)
    }

    fn names() -> String {
        Arch::ALL.map(Arch::name).join(", ")
    }

    /// The qemu-system program that boots this architecture.
    pub fn qemu_system(self) -> String {
        format!("qemu-system-{}", self.name())
    }

    /// QEMU arguments choosing the machine (none: the default `pc` on x86-64). armv7's `virt` is
    /// kept below 4 GiB: Debian's armmp kernel has no LPAE to reach PCI windows above it.
    pub fn machine(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &[],
            Arch::Aarch64 | Arch::Riscv64 => &["-M", "virt"],
            Arch::Arm => &["-M", "virt,highmem=off"],
            Arch::S390x => &["-M", "s390-ccw-virtio"],
        }
    }

    /// The CPU to emulate under TCG. `max` has every feature (x86-64 needs SSE4.2 for
    /// crc32c-intel); aarch64's `max` uses a cheap pointer-authentication hash, since the
    /// architected one makes TCG several times slower; QEMU 7.2 has no riscv64 `max`.
    pub fn tcg_cpu(self) -> &'static str {
        match self {
            Arch::X86_64 | Arch::Arm | Arch::S390x => "max",
            Arch::Aarch64 => "max,pauth-impdef=on",
            Arch::Riscv64 => "rv64",
        }
    }

    /// The kernel's console on the machine's first serial port.
    pub fn console(self) -> &'static str {
        match self {
            Arch::X86_64 | Arch::Riscv64 => "ttyS0",
            Arch::Aarch64 | Arch::Arm => "ttyAMA0",
            Arch::S390x => "ttysclp0",
        }
    }

    /// Whether the machine's devices sit on PCI (else on s390's channel subsystem).
    pub fn has_pci(self) -> bool {
        self != Arch::S390x
    }

    /// The QEMU device of a virtio `kind` (`virtio-net`, `virtio-blk`, `virtio-rng`) on this
    /// machine's bus.
    pub fn virtio(self, kind: &str) -> String {
        if self.has_pci() { format!("{kind}-pci") } else { format!("{kind}-ccw") }
    }

    /// The program that runs this architecture's Linux programs here: `None` on the same
    /// architecture, else qemu-user (`qemu-NAME-static`, or `qemu-NAME`) from `PATH`.
    pub fn emulator(self) -> Result<Option<PathBuf>, Error> {
        if Arch::host() == Some(self) {
            return Ok(None);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let names = [format!("qemu-{}-static", self.name()), format!("qemu-{}", self.name())];
        std::env::split_paths(&path)
            .flat_map(|d| names.iter().map(move |n| d.join(n)))
            .find(|p| p.is_file())
            .map(Some)
            .ok_or_else(|| {
                Error::new(format!(
                    "running {} programs on this host needs qemu-{}-static (Debian: qemu-user-static)",
                    self.name(),
                    self.name()
                ))
            })
    }

    /// A QEMU command line booting `kernel` with `initrd` on this machine, for messages.
    pub fn boot_hint(self, kernel: &str, initrd: &str, memory_mib: u64) -> String {
        let mut words =
            vec![self.qemu_system(), "-accel tcg".into(), format!("-cpu {}", self.tcg_cpu())];
        words.extend(self.machine().iter().map(|s| s.to_string()));
        words.push(format!(
            "-m {memory_mib} -nographic -no-reboot -kernel {kernel} -initrd {initrd}"
        ));
        words.push(format!("-append 'console={} panic=-1'", self.console()));
        words.join(" ")
    }
}

/// A command running `program`: directly, or under qemu-user when it is an ELF program of
/// another architecture (a script, or anything not ELF, runs directly).
pub fn command(program: &Path) -> Result<Command, Error> {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(program)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| Error::io("read", program, e))?;
    let arch = match Arch::of_elf(&head[..n]) {
        Ok(a) => a,
        Err(_) => return Ok(Command::new(program)),
    };
    Ok(match arch.emulator()? {
        None => Command::new(program),
        Some(qemu) => {
            let mut c = Command::new(qemu);
            c.arg(program);
            c
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_test_is_the_host() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(Arch::of_elf(&exe).ok(), Arch::host());
        assert_eq!(Arch::host().map(|a| a.emulator().unwrap()), Some(None));
    }

    /// ELF headers of each class and byte order, as the boards' binaries have them.
    #[test]
    fn machines_from_headers() {
        let header = |wide: bool, big: bool, machine: u16| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(b"\x7fELF");
            h[4] = if wide { 2 } else { 1 };
            h[5] = if big { 2 } else { 1 };
            let m = if big { machine.to_be_bytes() } else { machine.to_le_bytes() };
            h[18..20].copy_from_slice(&m);
            h
        };
        assert_eq!(Arch::of_elf(&header(true, false, 183)), Ok(Arch::Aarch64));
        assert_eq!(Arch::of_elf(&header(false, false, 40)), Ok(Arch::Arm));
        assert_eq!(Arch::of_elf(&header(true, false, 243)), Ok(Arch::Riscv64));
        assert_eq!(Arch::of_elf(&header(true, true, 22)), Ok(Arch::S390x));
        assert_eq!(Arch::of_elf(&header(true, false, 62)), Ok(Arch::X86_64));
        // 32-bit RISC-V and 31-bit s390 are other architectures.
        assert!(Arch::of_elf(&header(false, false, 243)).is_err());
        assert!(Arch::of_elf(&header(false, true, 22)).is_err());
        assert!(Arch::of_elf(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn qemu_names() {
        assert_eq!(
            Arch::of_qemu_system(Path::new("/usr/bin/qemu-system-s390x")),
            Some(Arch::S390x)
        );
        assert_eq!(Arch::of_qemu_system(Path::new("qemu-system-x86_64")), Some(Arch::X86_64));
        assert_eq!(Arch::of_qemu_system(Path::new("qemu-aarch64-static")), None);
        assert_eq!(Arch::Riscv64.virtio("virtio-blk"), "virtio-blk-pci");
        assert_eq!(Arch::S390x.virtio("virtio-rng"), "virtio-rng-ccw");
    }
}
