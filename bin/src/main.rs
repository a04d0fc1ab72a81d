//! `depmod`: writes the module indexes `modprobe` uses, byte for byte as kmod 34.2 does.
//!
//! A run ([`run::run`]) goes: the command line ([`cli`]), the kernel's symbols
//! ([`kernel_symbols`]), `depmod.d` ([`config`]), finding the module files ([`find`], [`walk`])
//! while they are loaded on every thread ([`load`], [`read`], [`decompress`], [`par`]), leaving
//! out the unusable ones ([`usable`]), the dependency pass and its order ([`resolve`]), the
//! outputs ([`outputs`]) and their installation ([`install`]). Messages are kmod's ([`log`]);
//! a failure is printed where it is found and ends the run with [`log::Failed`], which `main`
//! alone turns into the exit status.

mod alloc;
mod cache;
mod cli;
mod config;
mod decompress;
mod find;
mod getopt;
mod install;
mod kernel_symbols;
mod load;
mod log;
mod native;
mod outputs;
mod par;
mod prior;
mod quick;
mod read;
mod resolve;
mod run;
#[cfg(test)]
mod testing;
mod usable;
mod walk;

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: alloc::Split = alloc::Split;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use log::Failed;

fn main() -> ExitCode {
    alloc::tune();
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| OsString::from("depmod"));
    let rest: Vec<OsString> = args.collect();
    let short = depmod_core::name::basename(argv0.as_bytes()).to_vec();
    let mut log = log::Log::new(&short);
    let result = match cli::parse(argv0.as_bytes(), &rest) {
        cli::Command::Help => {
            let help = cli::help(&argv0.to_string_lossy());
            let _ = std::io::stdout().write_all(help.as_bytes());
            Ok(())
        }
        cli::Command::Version => {
            let _ = std::io::stdout().write_all(cli::version().as_bytes());
            Ok(())
        }
        cli::Command::Fail { getopt_message, fatal } => {
            if let Some(mut m) = getopt_message {
                m.push(b'\n');
                let _ = std::io::stderr().write_all(&m);
            }
            if let Some(f) = fatal {
                log.emit(log::Level::Fatal, &[&f]);
            }
            Err(Failed)
        }
        cli::Command::Run(opts) => run::run(&mut log, &opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed) => ExitCode::FAILURE,
    }
}
