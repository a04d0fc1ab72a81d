//! Messages in kmod's form: `depmod: LEVEL: text` on stderr, filtered by verbosity.

use std::io::{self, Write};

/// Message levels, numbered like syslog priorities (kmod's `-v` raises the threshold by one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Fatal = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Level {
    fn tag(self) -> &'static [u8] {
        match self {
            Level::Fatal => b"FATAL: ",
            Level::Error => b"ERROR: ",
            Level::Warning => b"WARNING: ",
            Level::Notice => b"NOTICE: ",
            Level::Info => b"INFO: ",
            Level::Debug => b"DEBUG: ",
        }
    }
}

/// Something that can be part of a message, written as raw bytes (paths are not UTF-8).
pub trait Part {
    fn put(&self, out: &mut Vec<u8>);
}

impl Part for [u8] {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl Part for str {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl Part for std::ffi::OsStr {
    fn put(&self, out: &mut Vec<u8>) {
        use std::os::unix::ffi::OsStrExt;
        out.extend_from_slice(self.as_bytes());
    }
}

impl Part for std::path::Path {
    fn put(&self, out: &mut Vec<u8>) {
        self.as_os_str().put(out);
    }
}

impl<T: Part + ?Sized> Part for &T {
    fn put(&self, out: &mut Vec<u8>) {
        (**self).put(out);
    }
}

impl Part for Vec<u8> {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl Part for String {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

macro_rules! display_part {
    ($($t:ty),*) => {$(
        impl Part for $t {
            fn put(&self, out: &mut Vec<u8>) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
display_part!(u16, u32, u64, usize, i32, i64, char);

/// An OS error, shown with glibc's `strerror` text whatever libc this binary uses.
impl Part for io::Error {
    fn put(&self, out: &mut Vec<u8>) {
        match self.raw_os_error() {
            Some(code) => put_strerror(out, code),
            None => {
                let _ = write!(out, "{self}");
            }
        }
    }
}

/// A file mode in octal, as C's `%o`.
#[derive(Clone, Copy, Debug)]
pub struct Octal(pub u32);

impl Part for Octal {
    fn put(&self, out: &mut Vec<u8>) {
        let _ = write!(out, "{:o}", self.0);
    }
}

/// A raw errno value.
#[derive(Clone, Copy, Debug)]
pub struct Errno(pub i32);

impl Part for Errno {
    fn put(&self, out: &mut Vec<u8>) {
        put_strerror(out, self.0);
    }
}

fn put_strerror(out: &mut Vec<u8>, code: i32) {
    match strerror(code) {
        Some(text) => out.extend_from_slice(text.as_bytes()),
        None => {
            let _ = write!(out, "Unknown error {code}");
        }
    }
}

/// A failure whose message has been printed: the run stops, and `main` exits with status 1.
/// The one spelling of "failed, already reported" in this program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failed;

/// Where messages go, and which are shown.
#[derive(Debug)]
pub struct Log {
    prog: Vec<u8>,
    threshold: Level,
    /// Where messages go in tests instead of stderr.
    #[cfg(test)]
    captured: Option<std::sync::Mutex<Vec<u8>>>,
}

impl Log {
    /// A log for the program `prog` (the basename of `argv[0]`), showing warnings and worse.
    pub fn new(prog: &[u8]) -> Self {
        Log {
            prog: prog.to_vec(),
            threshold: Level::Warning,
            #[cfg(test)]
            captured: None,
        }
    }

    /// A log that keeps its messages for [`Log::take`] (tests).
    #[cfg(test)]
    pub fn capturing() -> Self {
        Log { captured: Some(std::sync::Mutex::default()), ..Log::new(b"depmod") }
    }

    /// The messages written so far (tests), which are forgotten.
    #[cfg(test)]
    pub fn take_bytes(&self) -> Vec<u8> {
        let captured = self.captured.as_ref().map(|c| std::mem::take(&mut *c.lock().unwrap()));
        captured.unwrap_or_default()
    }

    /// [`Log::take_bytes`] as text.
    #[cfg(test)]
    pub fn take(&self) -> String {
        String::from_utf8(self.take_bytes()).unwrap()
    }

    /// Raises the threshold once per `-v`.
    pub fn set_verbosity(&mut self, extra: u32) {
        self.threshold = match Level::Warning as u32 + extra {
            0..=4 => Level::Warning,
            5 => Level::Notice,
            6 => Level::Info,
            _ => Level::Debug,
        };
    }

    /// Whether messages of `level` are shown.
    pub fn enabled(&self, level: Level) -> bool {
        level <= self.threshold
    }

    /// Writes one message (its parts concatenated, then a newline) if `level` is shown.
    pub fn emit(&self, level: Level, parts: &[&dyn Part]) {
        if !self.enabled(level) {
            return;
        }
        let mut line = Vec::with_capacity(128);
        line.extend_from_slice(&self.prog);
        line.extend_from_slice(b": ");
        line.extend_from_slice(level.tag());
        for p in parts {
            p.put(&mut line);
        }
        line.push(b'\n');
        #[cfg(test)]
        if let Some(captured) = &self.captured {
            captured.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&line);
            return;
        }
        // Nothing sensible remains to do when stderr itself fails.
        let _ = io::stderr().lock().write_all(&line);
    }
}

/// `log!(log, Level, part, part, ...)`: one message from byte-writable parts.
macro_rules! log {
    ($log:expr, $level:ident, $($part:expr),+ $(,)?) => {
        $log.emit($crate::log::Level::$level, &[$(&$part as &dyn $crate::log::Part),+])
    };
}
pub(crate) use log;

/// glibc's message for `code`.
pub fn strerror(code: i32) -> Option<&'static str> {
    Some(match code {
        0 => "Success",
        1 => "Operation not permitted",
        2 => "No such file or directory",
        3 => "No such process",
        4 => "Interrupted system call",
        5 => "Input/output error",
        6 => "No such device or address",
        7 => "Argument list too long",
        8 => "Exec format error",
        9 => "Bad file descriptor",
        10 => "No child processes",
        11 => "Resource temporarily unavailable",
        12 => "Cannot allocate memory",
        13 => "Permission denied",
        14 => "Bad address",
        15 => "Block device required",
        16 => "Device or resource busy",
        17 => "File exists",
        18 => "Invalid cross-device link",
        19 => "No such device",
        20 => "Not a directory",
        21 => "Is a directory",
        22 => "Invalid argument",
        23 => "Too many open files in system",
        24 => "Too many open files",
        25 => "Inappropriate ioctl for device",
        26 => "Text file busy",
        27 => "File too large",
        28 => "No space left on device",
        29 => "Illegal seek",
        30 => "Read-only file system",
        31 => "Too many links",
        32 => "Broken pipe",
        33 => "Numerical argument out of domain",
        34 => "Numerical result out of range",
        35 => "Resource deadlock avoided",
        36 => "File name too long",
        37 => "No locks available",
        38 => "Function not implemented",
        39 => "Directory not empty",
        40 => "Too many levels of symbolic links",
        42 => "No message of desired type",
        43 => "Identifier removed",
        44 => "Channel number out of range",
        45 => "Level 2 not synchronized",
        46 => "Level 3 halted",
        47 => "Level 3 reset",
        48 => "Link number out of range",
        49 => "Protocol driver not attached",
        50 => "No CSI structure available",
        51 => "Level 2 halted",
        52 => "Invalid exchange",
        53 => "Invalid request descriptor",
        54 => "Exchange full",
        55 => "No anode",
        56 => "Invalid request code",
        57 => "Invalid slot",
        59 => "Bad font file format",
        60 => "Device not a stream",
        61 => "No data available",
        62 => "Timer expired",
        63 => "Out of streams resources",
        64 => "Machine is not on the network",
        65 => "Package not installed",
        66 => "Object is remote",
        67 => "Link has been severed",
        68 => "Advertise error",
        69 => "Srmount error",
        70 => "Communication error on send",
        71 => "Protocol error",
        72 => "Multihop attempted",
        73 => "RFS specific error",
        74 => "Bad message",
        75 => "Value too large for defined data type",
        76 => "Name not unique on network",
        77 => "File descriptor in bad state",
        78 => "Remote address changed",
        79 => "Can not access a needed shared library",
        80 => "Accessing a corrupted shared library",
        81 => ".lib section in a.out corrupted",
        82 => "Attempting to link in too many shared libraries",
        83 => "Cannot exec a shared library directly",
        84 => "Invalid or incomplete multibyte or wide character",
        85 => "Interrupted system call should be restarted",
        86 => "Streams pipe error",
        87 => "Too many users",
        88 => "Socket operation on non-socket",
        89 => "Destination address required",
        90 => "Message too long",
        91 => "Protocol wrong type for socket",
        92 => "Protocol not available",
        93 => "Protocol not supported",
        94 => "Socket type not supported",
        95 => "Operation not supported",
        96 => "Protocol family not supported",
        97 => "Address family not supported by protocol",
        98 => "Address already in use",
        99 => "Cannot assign requested address",
        100 => "Network is down",
        101 => "Network is unreachable",
        102 => "Network dropped connection on reset",
        103 => "Software caused connection abort",
        104 => "Connection reset by peer",
        105 => "No buffer space available",
        106 => "Transport endpoint is already connected",
        107 => "Transport endpoint is not connected",
        108 => "Cannot send after transport endpoint shutdown",
        109 => "Too many references: cannot splice",
        110 => "Connection timed out",
        111 => "Connection refused",
        112 => "Host is down",
        113 => "No route to host",
        114 => "Operation already in progress",
        115 => "Operation now in progress",
        116 => "Stale file handle",
        117 => "Structure needs cleaning",
        118 => "Not a XENIX named type file",
        119 => "No XENIX semaphores available",
        120 => "Is a named type file",
        121 => "Remote I/O error",
        122 => "Disk quota exceeded",
        123 => "No medium found",
        124 => "Wrong medium type",
        125 => "Operation canceled",
        126 => "Required key not available",
        127 => "Key has expired",
        128 => "Key has been revoked",
        129 => "Key was rejected by service",
        130 => "Owner died",
        131 => "State not recoverable",
        132 => "Operation not possible due to RF-kill",
        133 => "Memory page has hardware error",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_texts() {
        assert_eq!(strerror(0), Some("Success"));
        assert_eq!(strerror(2), Some("No such file or directory"));
        assert_eq!(strerror(40), Some("Too many levels of symbolic links"));
        let mut v = Vec::new();
        Errno(41).put(&mut v);
        assert_eq!(v, b"Unknown error 41");
        let mut v = Vec::new();
        io::Error::from_raw_os_error(28).put(&mut v);
        assert_eq!(v, b"No space left on device");
    }
}
