//! `depmod`: writes the module indexes `modprobe` uses, byte for byte as kmod 34.2 does.

#[cfg(target_env = "musl")]
mod alloc;
mod cli;
mod config;
mod decompress;
mod getopt;
mod load;
mod log;
mod memcpy;
mod outputs;
mod par;
mod quick;
mod report;
mod run;
mod walk;
mod write;
mod xz;

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: alloc::Split = alloc::Split;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| OsString::from("depmod"));
    let rest: Vec<OsString> = args.collect();
    let prog_full = argv0.to_string_lossy().into_owned();
    let short = depmod_core::name::basename(argv0.as_bytes()).to_vec();
    let mut log = log::Log::new(&short);
    let status = match cli::parse(&prog_full, &rest) {
        cli::Command::Help => {
            let _ = std::io::stdout().write_all(cli::help(&prog_full).as_bytes());
            run::SUCCESS
        }
        cli::Command::Version => {
            let text = format!(
                "kmod version 34.2\n+ZSTD +XZ +ZLIB\ndepmod-rs {}: a reimplementation of kmod's depmod\n",
                env!("CARGO_PKG_VERSION")
            );
            let _ = std::io::stdout().write_all(text.as_bytes());
            run::SUCCESS
        }
        cli::Command::Fail { getopt_message, fatal } => {
            if let Some(m) = getopt_message {
                let _ = writeln!(std::io::stderr(), "{m}");
            }
            if let Some(f) = fatal {
                log.emit(log::Level::Fatal, &[&f]);
            }
            run::FAILURE
        }
        cli::Command::Run(opts) => run::run(&mut log, &opts),
    };
    ExitCode::from(status)
}
