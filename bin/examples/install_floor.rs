//! `install_floor DIR RUNS FILE...`: how long installing these files takes, as depmod installs
//! its indexes, with nothing computed: each FILE of DIR (its contents read beforehand) is
//! written to a fresh temporary file in DIR and flushed (`fdatasync`, one after the other, as
//! depmod's flusher thread does), all are renamed over the originals, and DIR is synced. Prints
//! the fastest and the median of RUNS, in ms.
//!
//! With the indexes a re-run rewrites after a module is removed, this is the part of that
//! re-run no implementation can avoid besides the walk (the README's module cache section
//! compares the two with kmod's run). Not part of the program.
// A measuring tool, not library code: it stops at the first surprise.
#![allow(clippy::unwrap_used)]

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, runs, names @ ..] = &args[..] else {
        eprintln!("usage: install_floor DIR RUNS FILE...");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    let runs: usize = runs.parse().unwrap();
    let files: Vec<(PathBuf, Vec<u8>)> = names
        .iter()
        .map(|n| {
            let path = dir.join(n);
            let data = fs::read(&path).unwrap();
            (path, data)
        })
        .collect();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            install(&dir, &files);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let (min, median) = (times.first().unwrap(), times.get(times.len() / 2).unwrap());
    println!("install of {} files: min {min:.3} ms, median {median:.3} ms", files.len());
}

/// One install: temporary files written and flushed, renamed, the directory synced.
fn install(dir: &std::path::Path, files: &[(PathBuf, Vec<u8>)]) {
    let written: Vec<(PathBuf, File)> = files
        .iter()
        .map(|(path, data)| {
            let mut tmp = path.clone().into_os_string();
            tmp.push(".install-floor-tmp");
            let tmp = PathBuf::from(tmp);
            let mut file = File::create_new(&tmp).unwrap();
            file.write_all(data).unwrap();
            (tmp, file)
        })
        .collect();
    for (_, file) in &written {
        file.sync_data().unwrap();
    }
    for ((tmp, _), (path, _)) in written.iter().zip(files) {
        fs::rename(tmp, path).unwrap();
    }
    File::open(dir).unwrap().sync_all().unwrap();
}
