//! The manual page, `bin/depmod.8`: it documents every option `--help` lists, and groff renders
//! it without a warning.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn page() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("depmod.8")).unwrap()
}

/// The options `--help` names: `-x` and `--name`, in troff's spelling (`\-x`, `\-\-name`).
fn help_options() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_depmod")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let mut options = BTreeSet::new();
    for word in help.split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[') {
        let dashes = word.len() - word.trim_start_matches('-').len();
        let name: String =
            word[dashes..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let short = dashes == 1 && name.len() == 1;
        let long = dashes == 2 && name.len() > 1;
        if short || long {
            options.insert(format!("{}{}", "\\-".repeat(dashes), name.replace('-', "\\-")));
        }
    }
    options
}

#[test]
fn every_option_of_help_is_documented() {
    let page = page();
    let options = help_options();
    // kmod 34.2 has 15 short options and 16 long ones.
    assert!(options.len() >= 31, "too few options found in --help: {options:?}");
    let missing: Vec<&String> = options.iter().filter(|o| !page.contains(o.as_str())).collect();
    assert!(missing.is_empty(), "options of --help missing from depmod.8: {missing:?}");
}

#[test]
fn every_section_is_there() {
    let page = page();
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "CONFIGURATION",
        "FILES",
        "EXIT STATUS",
        "\"DIFFERENCES FROM KMOD\"",
        "SEE ALSO",
    ] {
        let heading = format!(".SH {}", section.trim_matches('"'));
        assert!(page.contains(&heading), "depmod.8 has no {heading}");
    }
    for file in common::OUTPUTS {
        assert!(page.contains(&format!(".B {file}\n")), "FILES does not describe {file}");
    }
    for dir in ["/etc", "/run", "/usr/local/lib", "/usr/lib", "/lib"] {
        assert!(page.contains(&format!(".B {dir}/depmod.d\n")), "{dir}/depmod.d is missing");
    }
}

#[test]
fn renders_without_warnings() {
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("depmod.8"))
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            common::missing(&format!("groff (apt-get install groff-base): {e}"));
            return;
        }
    };
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && warnings.is_empty(), "groff on depmod.8:\n{warnings}");
}
