//! `measure COMMAND [ARG...]`: runs the command once, its output and messages thrown away, and
//! prints `wall cpu peak_rss_kb`: seconds from just before it is started to just after it is
//! reaped, seconds of CPU (user and system), and its peak resident set in KiB. `scripts/bench`
//! times every tool with it: GNU time's wall clock has 10 ms steps, and a clock read by the shell
//! around GNU time also times a subshell, a pipe and GNU time itself (3-4 ms here, a fifth of a
//! re-run of this depmod). Not part of the program.

use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: measure COMMAND [ARG...]");
        return ExitCode::from(2);
    };
    let start = Instant::now();
    let status =
        Command::new(&program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
    let wall = start.elapsed().as_secs_f64();
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            eprintln!("measure: {}: {e}", program.to_string_lossy());
            return ExitCode::from(2);
        }
    };
    // This process has had one child: the command.
    // SAFETY: getrusage only writes the struct it is given, which is zeroed and of its type.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) != 0 {
            eprintln!("measure: getrusage: {}", std::io::Error::last_os_error());
            return ExitCode::from(2);
        }
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    println!("{wall:.6} {cpu:.6} {}", usage.ru_maxrss);
    if !status.success() {
        eprintln!("measure: {} exited with {status}", program.to_string_lossy());
    }
    ExitCode::SUCCESS
}
