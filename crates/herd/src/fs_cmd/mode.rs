//! `chmod` modes as Hadoop's `ChmodParser` reads them: octal (`755`, `1777`) or symbolic
//! clauses separated by commas (`u+x`, `go-w`, `a=rX`, `+t`).

/// A parsed mode: applied to a path's current permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Octal(u16),
    Symbolic(Vec<Clause>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Bit mask of the classes: 0o700 user, 0o070 group, 0o007 other.
    who: u16,
    op: char,
    read: bool,
    write: bool,
    exec: bool,
    /// `X`: execute only for directories or if someone may execute already.
    cond_exec: bool,
    sticky: bool,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode, String> {
        let bad = || format!("chmod : mode '{s}' does not match the expected pattern.");
        if !s.is_empty() && s.len() <= 4 && s.chars().all(|c| c.is_digit(8)) {
            if s.len() < 3 || (s.len() == 4 && !s.starts_with(['0', '1'])) {
                return Err(bad());
            }
            return u16::from_str_radix(s, 8).map(Mode::Octal).map_err(|_| bad());
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let who_end = part.find(|c: char| !"ugoa".contains(c)).unwrap_or(part.len());
            let (who_s, rest) = part.split_at(who_end);
            let mut who = 0;
            for c in who_s.chars() {
                who |= match c {
                    'u' => 0o700,
                    'g' => 0o070,
                    'o' => 0o007,
                    _ => 0o777,
                };
            }
            if who == 0 {
                who = 0o777;
            }
            let mut chars = rest.chars().peekable();
            let mut any = false;
            // One who may carry several op+perms groups: `u+x-w`.
            while let Some(op) = chars.next() {
                if !"+-=".contains(op) {
                    return Err(bad());
                }
                let mut c = Clause { who, op, read: false, write: false, exec: false, cond_exec: false, sticky: false };
                while let Some(&p) = chars.peek() {
                    match p {
                        'r' => c.read = true,
                        'w' => c.write = true,
                        'x' => c.exec = true,
                        'X' => c.cond_exec = true,
                        't' => c.sticky = true,
                        '+' | '-' | '=' => break,
                        _ => return Err(bad()),
                    }
                    chars.next();
                }
                clauses.push(c);
                any = true;
            }
            if !any {
                return Err(bad());
            }
        }
        Ok(Mode::Symbolic(clauses))
    }

    /// The new permission of a path whose permission is `perm`.
    pub fn apply(&self, perm: u16, is_dir: bool) -> u16 {
        let clauses = match self {
            Mode::Octal(m) => return *m,
            Mode::Symbolic(c) => c,
        };
        let mut p = perm & 0o1777;
        for c in clauses {
            let any_exec = p & 0o111 != 0;
            let mut bits = 0u16;
            if c.read {
                bits |= 0o444;
            }
            if c.write {
                bits |= 0o222;
            }
            if c.exec || (c.cond_exec && (is_dir || any_exec)) {
                bits |= 0o111;
            }
            bits &= c.who;
            // The sticky bit belongs to "other" (Hadoop applies it for o or a).
            let sticky = if c.sticky && c.who & 0o007 != 0 { 0o1000 } else { 0 };
            p = match c.op {
                '+' => p | bits | sticky,
                '-' => p & !(bits | sticky),
                _ => {
                    let sticky_mask = if c.who & 0o007 != 0 { 0o1000 } else { 0 };
                    (p & !(c.who | sticky_mask)) | bits | sticky
                }
            };
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(m: &str, perm: u16, dir: bool) -> u16 {
        Mode::parse(m).unwrap().apply(perm, dir)
    }

    #[test]
    fn octal_modes() {
        assert_eq!(Mode::parse("755").unwrap(), Mode::Octal(0o755));
        assert_eq!(Mode::parse("1777").unwrap(), Mode::Octal(0o1777));
        assert_eq!(Mode::parse("0644").unwrap(), Mode::Octal(0o644));
        assert!(Mode::parse("75").is_err());
        assert!(Mode::parse("2755").is_err());
        assert!(Mode::parse("789").is_err());
    }

    #[test]
    fn symbolic_modes() {
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("go-w", 0o666, false), 0o644);
        assert_eq!(apply("a=r", 0o777, false), 0o444);
        assert_eq!(apply("+x", 0o644, false), 0o755);
        assert_eq!(apply("u=rwx,g=rx,o=", 0o000, false), 0o750);
        assert_eq!(apply("o-rwx", 0o777, true), 0o770);
        assert_eq!(apply("u+x-w", 0o644, false), 0o544);
        // X: directories, or files someone may execute already.
        assert_eq!(apply("a+X", 0o644, true), 0o755);
        assert_eq!(apply("a+X", 0o644, false), 0o644);
        assert_eq!(apply("a+X", 0o744, false), 0o755);
        // The sticky bit.
        assert_eq!(apply("+t", 0o777, true), 0o1777);
        assert_eq!(apply("o-t", 0o1777, true), 0o777);
        assert_eq!(apply("u+t", 0o777, true), 0o777);
        for bad in ["", "q+x", "u", "u+z", "u+x,"] {
            assert!(Mode::parse(bad).is_err(), "{bad:?}");
        }
    }
}
