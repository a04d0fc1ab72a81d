//! GNU `getopt_long`, as kmod's depmod uses it: same spellings, same permutation, same messages.
//!
//! Accepted forms: clustered short options (`-ae`, `-aeF FILE`), attached values (`-bDIR`),
//! `--name=VALUE` and `--name VALUE`, unambiguous abbreviations of long names (`--verb`),
//! options after positional arguments (unless `POSIXLY_CORRECT` is set), and `--`. Messages
//! are bytes, as glibc prints them: an argument that is not UTF-8 is shown as it was given.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Whether an option takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HasArg {
    No,
    Required,
}

/// A long option and the short option character it stands for.
#[derive(Clone, Copy, Debug)]
pub struct LongOpt {
    pub name: &'static str,
    pub has_arg: HasArg,
    pub val: char,
}

/// One parsed option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opt {
    /// The short character of the option (long options map to theirs).
    pub val: char,
    /// Its value, for options that take one.
    pub arg: Option<OsString>,
}

/// The result of parsing: options in command-line order and the positional arguments in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub opts: Vec<Opt>,
    pub positional: Vec<OsString>,
}

/// Parses `args` (without `argv[0]`) with the short-option string `shorts` (getopt syntax:
/// a letter followed by `:` takes a value) and the long options `longs`. `prog` is `argv[0]`,
/// used in messages. Options are processed until the first error, like getopt's loop; the error
/// is the message getopt prints for it (without the trailing newline), with what was parsed
/// before it.
pub fn parse(
    prog: &[u8],
    args: &[OsString],
    shorts: &str,
    longs: &[LongOpt],
    posixly_correct: bool,
) -> Result<Parsed, (Parsed, Vec<u8>)> {
    let mut parsed = Parsed { opts: Vec::new(), positional: Vec::new() };
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        i += 1;
        if arg == b"--" {
            parsed.positional.extend(args[i..].iter().cloned());
            break;
        }
        if arg.len() < 2 || arg[0] != b'-' {
            parsed.positional.push(OsString::from_vec(arg.to_vec()));
            if posixly_correct {
                parsed.positional.extend(args[i..].iter().cloned());
                break;
            }
            continue;
        }
        let result = if let Some(body) = arg.strip_prefix(b"--") {
            long(prog, body, args, &mut i, longs).map(|o| vec![o])
        } else {
            short(prog, &arg[1..], args, &mut i, shorts)
        };
        match result {
            Ok(opts) => parsed.opts.extend(opts),
            Err((opts, msg)) => {
                parsed.opts.extend(opts);
                return Err((parsed, msg));
            }
        }
    }
    Ok(parsed)
}

/// glibc's message: `prog: ` then the parts.
fn message(prog: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    [prog, b": "].into_iter().chain(parts.iter().copied()).collect::<Vec<_>>().concat()
}

/// `--name[=value]`.
fn long(
    prog: &[u8],
    body: &[u8],
    args: &[OsString],
    i: &mut usize,
    longs: &[LongOpt],
) -> Result<Opt, (Vec<Opt>, Vec<u8>)> {
    let (name, value) = match body.iter().position(|&b| b == b'=') {
        Some(eq) => (&body[..eq], Some(&body[eq + 1..])),
        None => (body, None),
    };
    let fail = |parts: &[&[u8]]| Err((Vec::new(), message(prog, parts)));
    let exact = longs.iter().find(|l| l.name.as_bytes() == name);
    let found = match exact {
        Some(l) => l,
        None => {
            let candidates: Vec<&LongOpt> =
                longs.iter().filter(|l| l.name.as_bytes().starts_with(name)).collect();
            let Some(&first) = candidates.first() else {
                return fail(&[b"unrecognized option '--", body, b"'"]);
            };
            let ambiguous =
                candidates.iter().any(|c| c.has_arg != first.has_arg || c.val != first.val);
            if ambiguous {
                let list: String = candidates.iter().map(|c| format!(" '--{}'", c.name)).collect();
                // glibc shows the whole argument here, `=value` included.
                let list = list.as_bytes();
                return fail(&[b"option '--", body, b"' is ambiguous; possibilities:", list]);
            }
            first
        }
    };
    match (found.has_arg, value) {
        (HasArg::No, None) => Ok(Opt { val: found.val, arg: None }),
        (HasArg::No, Some(_)) => {
            fail(&[b"option '--", found.name.as_bytes(), b"' doesn't allow an argument"])
        }
        (HasArg::Required, Some(v)) => {
            Ok(Opt { val: found.val, arg: Some(OsStr::from_bytes(v).to_owned()) })
        }
        (HasArg::Required, None) => match args.get(*i) {
            Some(v) => {
                *i += 1;
                Ok(Opt { val: found.val, arg: Some(v.clone()) })
            }
            None => fail(&[b"option '--", found.name.as_bytes(), b"' requires an argument"]),
        },
    }
}

/// A cluster of short options after one `-`.
fn short(
    prog: &[u8],
    cluster: &[u8],
    args: &[OsString],
    i: &mut usize,
    shorts: &str,
) -> Result<Vec<Opt>, (Vec<Opt>, Vec<u8>)> {
    let mut opts = Vec::new();
    let mut k = 0;
    while k < cluster.len() {
        let c = cluster[k];
        k += 1;
        let spec = shorts.as_bytes().iter().position(|&s| s == c && c != b':');
        let Some(pos) = spec else {
            // The byte itself, as glibc prints it: the first byte of `é` is 0xC3.
            return Err((opts, message(prog, &[b"invalid option -- '", &[c], b"'"])));
        };
        let takes_arg = shorts.as_bytes().get(pos + 1) == Some(&b':');
        let val = char::from(c);
        if !takes_arg {
            opts.push(Opt { val, arg: None });
            continue;
        }
        if k < cluster.len() {
            opts.push(Opt { val, arg: Some(OsStr::from_bytes(&cluster[k..]).to_owned()) });
            return Ok(opts);
        }
        match args.get(*i) {
            Some(v) => {
                *i += 1;
                opts.push(Opt { val, arg: Some(v.clone()) });
                return Ok(opts);
            }
            None => {
                let msg = message(prog, &[b"option requires an argument -- '", &[c], b"'"]);
                return Err((opts, msg));
            }
        }
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONGS: &[LongOpt] = &[
        LongOpt { name: "all", has_arg: HasArg::No, val: 'a' },
        LongOpt { name: "basedir", has_arg: HasArg::Required, val: 'b' },
        LongOpt { name: "verbose", has_arg: HasArg::No, val: 'v' },
        LongOpt { name: "version", has_arg: HasArg::No, val: 'V' },
        LongOpt { name: "show", has_arg: HasArg::No, val: 'n' },
        LongOpt { name: "dry-run", has_arg: HasArg::No, val: 'n' },
    ];

    fn run(args: &[&str]) -> Result<Parsed, (Parsed, Vec<u8>)> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(b"depmod", &args, "ab:vVnF:e", LONGS, false)
    }

    fn opts(p: &Parsed) -> Vec<(char, Option<&str>)> {
        p.opts.iter().map(|o| (o.val, o.arg.as_deref().and_then(OsStr::to_str))).collect()
    }

    #[test]
    fn gnu_spellings() {
        let p =
            run(&["-ae", "-F", "System.map", "-bDIR", "6.1", "--basedir=/x", "--verb"]).unwrap();
        assert_eq!(
            opts(&p),
            [
                ('a', None),
                ('e', None),
                ('F', Some("System.map")),
                ('b', Some("DIR")),
                ('b', Some("/x")),
                ('v', None)
            ]
        );
        assert_eq!(p.positional, ["6.1"]);
        let p = run(&["-aeF", "map", "--basedir", "/y", "--", "-v", "x"]).unwrap();
        assert_eq!(opts(&p), [('a', None), ('e', None), ('F', Some("map")), ('b', Some("/y"))]);
        assert_eq!(p.positional, ["-v", "x"]);
        assert_eq!(opts(&run(&["--dry"]).unwrap()), [('n', None)]);
        assert_eq!(run(&["-"]).unwrap().positional, ["-"]);
    }

    #[test]
    fn getopt_messages() {
        let msg = |a: &[&str]| String::from_utf8(run(a).unwrap_err().1).unwrap();
        assert_eq!(msg(&["-x"]), "depmod: invalid option -- 'x'");
        assert_eq!(msg(&["-b"]), "depmod: option requires an argument -- 'b'");
        assert_eq!(msg(&["--nope=1"]), "depmod: unrecognized option '--nope=1'");
        assert_eq!(msg(&["--all=1"]), "depmod: option '--all' doesn't allow an argument");
        assert_eq!(msg(&["--basedir"]), "depmod: option '--basedir' requires an argument");
        assert_eq!(
            msg(&["--ver"]),
            "depmod: option '--ver' is ambiguous; possibilities: '--verbose' '--version'"
        );
        assert_eq!(
            msg(&["--ver=1"]),
            "depmod: option '--ver=1' is ambiguous; possibilities: '--verbose' '--version'"
        );
        // Options before the bad one are kept.
        assert_eq!(opts(&run(&["-a", "-x"]).unwrap_err().0), [('a', None)]);
    }

    /// glibc prints the byte getopt stopped at, and whole arguments, as they were given: kmod
    /// 34.2 says `invalid option -- '\xc3'` for `-é` (which is C3 A9 in UTF-8).
    #[test]
    fn messages_keep_the_bytes_given() {
        let raw = |a: &[u8]| OsString::from_vec(a.to_vec());
        let fail =
            |a: &[u8]| parse(b"/sbin/dep\xffmod", &[raw(a)], "ab:", LONGS, false).unwrap_err().1;
        assert_eq!(fail("-é".as_bytes()), b"/sbin/dep\xffmod: invalid option -- '\xc3'");
        assert_eq!(fail(b"-a\xff"), b"/sbin/dep\xffmod: invalid option -- '\xff'");
        assert_eq!(fail(b"--\xe9t\xe9"), b"/sbin/dep\xffmod: unrecognized option '--\xe9t\xe9'");
        // A value is taken as it is.
        let p = parse(b"depmod", &[raw(b"-b\xff")], "b:", LONGS, false).unwrap();
        assert_eq!(p.opts[0].arg.as_deref(), Some(OsStr::from_bytes(b"\xff")));
    }

    #[test]
    fn posixly_correct_stops_at_the_first_operand() {
        let args: Vec<OsString> = ["6.1", "-a"].iter().map(OsString::from).collect();
        let p = parse(b"depmod", &args, "a", LONGS, true).unwrap();
        assert!(p.opts.is_empty());
        assert_eq!(p.positional, ["6.1", "-a"]);
    }
}
