//! kmod-compatible module indexing, over byte slices.
//!
//! This crate knows bytes, not files: the `depmod` program reads directories and files and hands
//! their contents here. It reproduces kmod 34.2's depmod byte for byte.
//!
//! Map:
//! - [`elf`]: a checked ELF32/ELF64 reader (either byte order) and a module's symbols;
//! - [`modinfo`]: `.modinfo` records; [`module`]: [`ModuleInfo`], what depmod keeps of a file;
//! - [`name`]: module names and alias keys; [`hash`]: kmod's hash-table order;
//! - [`config`]: depmod.d priority rules; [`tree`]: the module set and `modules.order`;
//! - [`resolve`]: symbol owners and each module's direct dependencies; [`graph`]: the
//!   dependency graph, kmod's topological order and the cycle report;
//! - [`output`]: the output files; [`cache`]: the per-module cache of [`ModuleInfo`] records;
//! - [`read_plan`]: which bytes of a module file the parser reads (for partial reads).
//!
//! ```
//! use depmod_core::{config::Config, tree::ModuleSet, ModuleInfo};
//!
//! let config = Config::default();
//! let mut set = ModuleSet::new(b"/lib/modules/6.1", &config);
//! set.add(b"/lib/modules/6.1/kernel/a.ko".to_vec());
//! let modules = set.into_modules();
//! // Not an ELF file: the error says what is wrong.
//! let info = ModuleInfo::parse(b"not an ELF file at all");
//! assert!(info.elf_error.is_some());
//! assert_eq!(modules[0].name(), b"a");
//! ```
#![no_std]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic))]

extern crate alloc;

pub mod bytes;
pub mod cache;
pub mod config;
pub mod elf;
pub mod ere;
pub mod error;
pub mod graph;
pub mod hash;
pub mod index;
pub mod kernel_symbols;
pub mod modinfo;
pub mod module;
pub mod name;
pub mod output;
pub mod read_plan;
pub mod resolve;
pub mod tree;

pub use bytes::Endian;
pub use error::{Anomaly, Errno, Error};
pub use module::ModuleInfo;
