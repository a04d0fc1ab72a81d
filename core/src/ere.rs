//! POSIX extended regular expressions, just enough for depmod.d's kernel-version patterns:
//! `regcomp(REG_EXTENDED | REG_NOSUB)` then an unanchored `regexec`. Supports alternation,
//! groups, `* + ? {m} {m,} {m,n}`, `^ $ .`, bracket expressions with ranges, negation and
//! `[:class:]`, and backslash escapes.
//!
//! Matching follows the sets of positions where each part of the pattern can end, with the ends
//! of each group from each position computed once: time and memory stay polynomial in the length
//! of the text for any pattern (a backtracking matcher is exponential in the nesting of
//! repetitions, such as `((a+)+)+`, and a budget on its steps gives wrong answers).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Regex {
    alternatives: Vec<Vec<Piece>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Atom {
    Byte(u8),
    Any,
    Set {
        negate: bool,
        items: Vec<SetItem>,
    },
    Start,
    End,
    /// A parenthesised group (or a repetition of a repetition), with its number in the pattern.
    Group(Box<Regex>, u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SetItem {
    Range(u8, u8),
    Class(Class),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Alpha,
    Digit,
    Alnum,
    Upper,
    Lower,
    Space,
    Xdigit,
    Punct,
    Print,
    Graph,
    Cntrl,
    Blank,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Piece {
    atom: Atom,
    min: u32,
    max: Option<u32>,
}

/// Why a pattern does not compile (kmod then treats it as matching nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPattern;

/// Repetition counts above this are refused, as glibc refuses counts above `RE_DUP_MAX`.
const DUP_MAX: u32 = 0x7fff;

struct Parser<'a> {
    p: &'a [u8],
    i: usize,
    depth: usize,
    /// Groups numbered so far.
    groups: u32,
}

/// How deep groups may nest (parenthesised, or made by stacked quantifiers).
const MAX_DEPTH: usize = 64;

/// The counts `{c,d}` repetitions of `{a,b}` repetitions allow, as one `{min,max}`, when they
/// form an interval (`None` as max: unbounded). `(x+)*` is `x*`, `(x{2,3}){2}` is `x{4,6}`;
/// `(x{2}){0,}` (0, 2, 4, ...) is no interval.
fn stacked(a: u32, b: Option<u32>, c: u32, d: Option<u32>) -> Option<(u32, Option<u32>)> {
    if d == Some(0) {
        return Some((0, Some(0)));
    }
    // From one count of repetitions to the next, the ranges [k*a, k*b] must touch.
    let k = c.max(1);
    let touching = match b {
        None => true,
        Some(b) => u64::from(a) <= u64::from(k) * u64::from(b.saturating_sub(a)) + 1,
    };
    let from_zero = c > 0 || a <= 1;
    if d != Some(c) && !(touching && from_zero) {
        return None;
    }
    let min = c.checked_mul(a)?;
    let max = match (b, d) {
        (Some(b), Some(d)) => Some(d.checked_mul(b)?),
        _ => None,
    };
    Some((min, max))
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.p.get(self.i).copied()
    }

    /// A new group number.
    fn group(&mut self) -> u32 {
        self.groups += 1;
        self.groups
    }

    fn regex(&mut self) -> Result<Regex, BadPattern> {
        if self.depth > MAX_DEPTH {
            return Err(BadPattern);
        }
        let mut alternatives = alloc::vec![self.branch()?];
        while self.peek() == Some(b'|') {
            self.i += 1;
            alternatives.push(self.branch()?);
        }
        Ok(Regex { alternatives })
    }

    fn branch(&mut self) -> Result<Vec<Piece>, BadPattern> {
        let mut pieces: Vec<Piece> = Vec::new();
        while let Some(c) = self.peek() {
            // glibc treats an unmatched `)` as an ordinary character.
            if c == b'|' || (c == b')' && self.depth > 0) {
                break;
            }
            let atom = self.atom()?;
            // glibc refuses a repeated anchor (REG_BADRPT), at either end.
            let anchor = matches!(atom, Atom::Start | Atom::End);
            if anchor && matches!(self.peek(), Some(b'*' | b'+' | b'?' | b'{')) {
                return Err(BadPattern);
            }
            let mut piece = Piece { atom, min: 1, max: Some(1) };
            let mut wraps = 0;
            while let Some(q) = self.peek() {
                let (min, max) = match q {
                    b'*' => (0, None),
                    b'+' => (1, None),
                    b'?' => (0, Some(1)),
                    b'{' => match self.bounds()? {
                        Some(b) => b,
                        None => break,
                    },
                    _ => break,
                };
                if q != b'{' {
                    self.i += 1;
                }
                // Stacked quantifiers apply to the repetition so far: one repetition when the
                // counts allow (`a**`, `a+*`), else a group repeated.
                if piece.min == 1 && piece.max == Some(1) {
                    piece.min = min;
                    piece.max = max;
                } else if let Some((lo, hi)) = stacked(piece.min, piece.max, min, max) {
                    piece.min = lo;
                    piece.max = hi;
                } else {
                    wraps += 1;
                    if self.depth + wraps > MAX_DEPTH {
                        return Err(BadPattern);
                    }
                    let inner = Regex { alternatives: alloc::vec![alloc::vec![piece]] };
                    piece = Piece { atom: Atom::Group(Box::new(inner), self.group()), min, max };
                }
            }
            pieces.push(piece);
        }
        Ok(pieces)
    }

    /// `{m}`, `{m,}`, `{m,n}` at the cursor; `None` (cursor unmoved) if not a bound.
    fn bounds(&mut self) -> Result<Option<(u32, Option<u32>)>, BadPattern> {
        let start = self.i;
        self.i += 1;
        let number = |s: &mut Self| {
            let from = s.i;
            while s.peek().is_some_and(|c| c.is_ascii_digit()) {
                s.i += 1;
            }
            let digits = s.p.get(from..s.i).unwrap_or_default();
            if digits.is_empty() {
                return Ok(None);
            }
            let n = digits.iter().try_fold(0u32, |acc, &d| {
                acc.checked_mul(10).and_then(|a| a.checked_add(u32::from(d - b'0')))
            });
            n.filter(|&n| n <= DUP_MAX).map(Some).ok_or(BadPattern)
        };
        // glibc reads `{,n}` as `{0,n}`.
        let min = number(self)?.unwrap_or(0);
        if self.p.get(start + 1) == Some(&b'}') {
            return Err(BadPattern);
        }
        let max = if self.peek() == Some(b',') {
            self.i += 1;
            number(self)?
        } else {
            Some(min)
        };
        if self.peek() != Some(b'}') || max.is_some_and(|m| m < min) {
            return Err(BadPattern);
        }
        self.i += 1;
        Ok(Some((min, max)))
    }

    fn atom(&mut self) -> Result<Atom, BadPattern> {
        let c = self.peek().ok_or(BadPattern)?;
        self.i += 1;
        Ok(match c {
            b'.' => Atom::Any,
            b'^' => Atom::Start,
            b'$' => Atom::End,
            b'(' => {
                self.depth += 1;
                let inner = self.regex()?;
                self.depth -= 1;
                if self.peek() != Some(b')') {
                    return Err(BadPattern);
                }
                self.i += 1;
                Atom::Group(Box::new(inner), self.group())
            }
            b'[' => self.set()?,
            b'\\' => {
                let e = self.peek().ok_or(BadPattern)?;
                self.i += 1;
                Atom::Byte(e)
            }
            b'*' | b'+' | b'?' | b'{' => return Err(BadPattern),
            other => Atom::Byte(other),
        })
    }

    fn set(&mut self) -> Result<Atom, BadPattern> {
        let negate = self.peek() == Some(b'^');
        if negate {
            self.i += 1;
        }
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let c = self.peek().ok_or(BadPattern)?;
            if c == b']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            if c == b'[' && self.p.get(self.i + 1) == Some(&b':') {
                let rest = self.p.get(self.i + 2..).unwrap_or_default();
                let end = rest.windows(2).position(|w| w == b":]").ok_or(BadPattern)?;
                let class = match rest.get(..end).unwrap_or_default() {
                    b"alpha" => Class::Alpha,
                    b"digit" => Class::Digit,
                    b"alnum" => Class::Alnum,
                    b"upper" => Class::Upper,
                    b"lower" => Class::Lower,
                    b"space" => Class::Space,
                    b"xdigit" => Class::Xdigit,
                    b"punct" => Class::Punct,
                    b"print" => Class::Print,
                    b"graph" => Class::Graph,
                    b"cntrl" => Class::Cntrl,
                    b"blank" => Class::Blank,
                    _ => return Err(BadPattern),
                };
                items.push(SetItem::Class(class));
                self.i += 2 + end + 2;
                continue;
            }
            self.i += 1;
            let is_range =
                self.peek() == Some(b'-') && self.p.get(self.i + 1).is_some_and(|&n| n != b']');
            if is_range {
                let hi = *self.p.get(self.i + 1).ok_or(BadPattern)?;
                if hi < c {
                    return Err(BadPattern);
                }
                items.push(SetItem::Range(c, hi));
                self.i += 2;
            } else {
                items.push(SetItem::Range(c, c));
            }
        }
        Ok(Atom::Set { negate, items })
    }
}

impl Class {
    fn contains(self, c: u8) -> bool {
        match self {
            Class::Alpha => c.is_ascii_alphabetic(),
            Class::Digit => c.is_ascii_digit(),
            Class::Alnum => c.is_ascii_alphanumeric(),
            Class::Upper => c.is_ascii_uppercase(),
            Class::Lower => c.is_ascii_lowercase(),
            Class::Space => matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'),
            Class::Xdigit => c.is_ascii_hexdigit(),
            Class::Punct => c.is_ascii_punctuation(),
            Class::Print => (0x20..0x7f).contains(&c),
            Class::Graph => c.is_ascii_graphic(),
            Class::Cntrl => c.is_ascii_control(),
            Class::Blank => c == b' ' || c == b'\t',
        }
    }
}

impl Regex {
    /// Compiles `pattern` as `regcomp(REG_EXTENDED)` would.
    pub fn new(pattern: &[u8]) -> Result<Regex, BadPattern> {
        let mut parser = Parser { p: pattern, i: 0, depth: 0, groups: 0 };
        let re = parser.regex()?;
        if parser.i != pattern.len() {
            return Err(BadPattern);
        }
        Ok(re)
    }

    /// Whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &[u8]) -> bool {
        let starts: Vec<usize> = (0..=text.len()).collect();
        !self.ends(text, &starts, &mut Memo::new()).is_empty()
    }

    /// Every position where a match of this regex starting at one of `starts` can end, sorted.
    fn ends(&self, text: &[u8], starts: &[usize], memo: &mut Memo) -> Vec<usize> {
        let mut out = Vec::new();
        for alt in &self.alternatives {
            let mut positions = starts.to_vec();
            for piece in alt {
                positions = piece.ends(text, &positions, memo);
                if positions.is_empty() {
                    break;
                }
            }
            out.extend(positions);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The ends of each group from each start position, once computed: `(group, start)`.
type Memo = BTreeMap<(u32, usize), Vec<usize>>;

impl Piece {
    /// The positions where `min..=max` repetitions of the atom from one of `starts` (sorted) can
    /// end, sorted.
    ///
    /// The set of ends after `k` repetitions is the same for every `k` past `text.len()`:
    /// at most `text.len()` repetitions move forward, the others match the empty string in
    /// place, and there is one more or one less of those. So the loop stops once the set repeats
    /// itself, or (past `min`) once it adds nothing to what earlier counts gave: every later set
    /// would then be made of earlier ones.
    fn ends(&self, text: &[u8], starts: &[usize], memo: &mut Memo) -> Vec<usize> {
        let mut found: Vec<usize> = Vec::new();
        if self.min == 0 {
            found.extend_from_slice(starts);
        }
        let mut current = starts.to_vec();
        let mut count = 0u32;
        while !current.is_empty() && self.max.is_none_or(|m| count < m) {
            let mut next = Vec::new();
            for &p in &current {
                self.atom.ends(text, p, memo, &mut next);
            }
            next.sort_unstable();
            next.dedup();
            count += 1;
            let repeats = next == current;
            if count >= self.min || repeats {
                let before = found.len();
                found.extend(next.iter().copied());
                found.sort_unstable();
                found.dedup();
                if repeats || (found.len() == before && count > self.min) {
                    break;
                }
            }
            current = next;
        }
        found
    }
}

impl Atom {
    /// Appends the positions where this atom matching at `at` ends.
    fn ends(&self, text: &[u8], at: usize, memo: &mut Memo, out: &mut Vec<usize>) {
        let mut one = |ok: bool| {
            if ok {
                out.push(at + 1);
            }
        };
        match self {
            Atom::Byte(b) => one(text.get(at) == Some(b)),
            Atom::Any => one(text.get(at).is_some_and(|&c| c != b'\n')),
            Atom::Set { negate, items } => one(text.get(at).is_some_and(|&c| {
                let hit = items.iter().any(|i| match *i {
                    SetItem::Range(lo, hi) => lo <= c && c <= hi,
                    SetItem::Class(k) => k.contains(c),
                });
                hit != *negate
            })),
            Atom::Start => {
                if at == 0 {
                    out.push(at);
                }
            }
            Atom::End => {
                if at == text.len() {
                    out.push(at);
                }
            }
            Atom::Group(re, id) => {
                if let Some(ends) = memo.get(&(*id, at)) {
                    out.extend_from_slice(ends);
                    return;
                }
                let ends = re.ends(text, &[at], memo);
                out.extend_from_slice(&ends);
                memo.insert((*id, at), ends);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Regex::new(p.as_bytes()).map(|r| r.is_match(t.as_bytes())).unwrap_or(false)
    }

    #[test]
    fn unanchored_extended_matching() {
        assert!(m("1.0", "21.05"));
        assert!(m(r"4\.4\..*", "4.4.4"));
        assert!(!m(r"^4\.4\.4$", "14.4.4"));
        assert!(m("^6\\.1\\.0-[0-9]+-amd64$", "6.1.0-56-amd64"));
        assert!(!m("^6\\.1\\.0-[0-9]+-amd64$", "6.1.0-56-cloud-amd64"));
        assert!(m("(cloud|rt)-amd64", "6.1.0-56-rt-amd64"));
        assert!(m("a{2,3}b", "xaab"));
        assert!(!m("^a{2,3}b", "ab"));
        assert!(m("[[:digit:]]+\\.[^.]+$", "4.4"));
        assert!(m("", "anything"));
        assert!(m("x*", ""));
        assert!(m("(a|)+b", "b"));
        assert!(m("(a*)*b", "aaab"));
        // Checked against glibc's regcomp/regexec.
        assert!(m("a)", "a)"));
        assert!(m("a{,3}", "b"));
        assert!(m("()", "x"));
        assert!(m("a||b", "c"));
        assert!(m("[]a]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("\\d", "d"));
        assert!(m("a**", "aa"));
        assert!(m("a+?", "x"));
        assert!(m("a{1}{2}", "aa"));
        assert!(m("^^a", "a"));
        assert!(!m(".", ""));
        assert!(!m("a$b", "a$b"));
        // A group of an anchor may be repeated.
        assert!(m("($)*", "x") && m("(^)*", "x"));
    }

    /// Found by fuzzing (fuzz/regressions/config/): nested repetitions took the backtracking
    /// matcher exponential time (a 21-byte pattern: 9 s in the fuzzer), and the step budget that
    /// bounded it answered "no match" where glibc matches. Answers checked against glibc.
    #[test]
    fn nested_repetitions_are_exact_and_fast() {
        assert!(m("..++++++++++++++*...6", "6.1.0-56-amd64"));
        let aaa = "a".repeat(63);
        assert!(m("((((((.+x?)+x?)+x?)+x?)+x?)+x?)+6", &(aaa.clone() + "6")));
        assert!(!m("((((((.+x?)+x?)+x?)+x?)+x?)+x?)+6", &aaa));
        assert!(m("((a|){32767}){32767}", &aaa));
        assert!(!m(&("((a?){2}|b){32767}".repeat(50) + "c"), &aaa));
        // Stacked quantifiers are one repetition where the counts allow: no deep nesting.
        let stars = alloc::format!("a{}b", "*".repeat(100_000));
        assert!(m(&stars, "xaaab") && m(&stars, "b") && !m(&stars, "aaa"));
        assert!(m("^a{2}*$", "aaaa") && m("^a{2}*$", "") && !m("^a{2}*$", "aaa"));
        assert!(m("^a{2,3}{2}$", "aaaaaa") && !m("^a{2,3}{2}$", "aaaaaaa"));
        assert!(m("^a{2}{2,3}$", "aaaaaa") && !m("^a{2}{2,3}$", "aaaaa"));
        assert!(m("^a?{3}$", "aa") && !m("^a?{3}$", "aaaa"));
    }

    #[test]
    fn bad_patterns_do_not_compile() {
        for p in [
            "(",
            "[a",
            "*a",
            "a{2",
            "a{3,2}",
            "[[:nope:]]",
            "\\",
            "a{99999}",
            "^*",
            "$*",
            "a$+b",
            "$?",
            "${2}",
            "x|*",
            "{1}",
            "[z-a]",
        ] {
            assert_eq!(Regex::new(p.as_bytes()), Err(BadPattern), "{p}");
        }
    }
}
