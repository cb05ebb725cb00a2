//! Hadoop's glob patterns (`FileSystem.globStatus`): `*` (any run of characters), `?` (one
//! character), `[abc]`, `[a-z]`, `[^a]` or `[!a]` (one character of, or not of, a set), `{a,b}`
//! (alternatives, which may nest and hold `/`), `\` (the next character as itself). A pattern
//! never matches across `/`.
//!
//! Expansion: braces first (into at most [`MAX_EXPANSIONS`] plain patterns), then component
//! by component from the root: a component without wildcards is appended as is, one with
//! wildcards is matched against the listing of each directory reached so far. A path that
//! does not exist matches nothing; what is left at the end is looked up.

use dfs_proto::client_nn::FileKind;
use dfs_proto::FileStatus;

use crate::client::Dfs;
use crate::error::{DfsError, Result};

/// The most plain patterns one pattern's braces may expand to.
pub const MAX_EXPANSIONS: usize = 4096;

/// Expands `{a,b}` groups (nested ones too) into plain patterns, in order.
pub fn expand_braces(pattern: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    expand_into(pattern, &mut out)?;
    Ok(out)
}

fn expand_into(p: &str, out: &mut Vec<String>) -> std::result::Result<(), String> {
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    let mut open = None;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '{' => {
                open = Some(i);
                break;
            }
            '}' => return Err(format!("Illegal file pattern: Unexpected '}}' near index {i} in {p}")),
            _ => {}
        }
        i += 1;
    }
    let Some(start) = open else {
        if out.len() >= MAX_EXPANSIONS {
            return Err(format!("{p}: the pattern expands to more than {MAX_EXPANSIONS} patterns"));
        }
        out.push(p.to_string());
        return Ok(());
    };
    // The matching close, and the top-level commas in between.
    let (mut depth, mut j, mut commas) = (0usize, start + 1, vec![]);
    let close = loop {
        let Some(&c) = chars.get(j) else {
            return Err(format!("Illegal file pattern: Unclosed group near index {start} in {p}"));
        };
        match c {
            '\\' => j += 1,
            '{' => depth += 1,
            '}' if depth == 0 => break j,
            '}' => depth -= 1,
            ',' if depth == 0 => commas.push(j),
            _ => {}
        }
        j += 1;
    };
    let prefix: String = chars[..start].iter().collect();
    let suffix: String = chars[close + 1..].iter().collect();
    let mut bounds = vec![start];
    bounds.extend(commas);
    bounds.push(close);
    for w in bounds.windows(2) {
        let alt: String = chars[w[0] + 1..w[1]].iter().collect();
        expand_into(&format!("{prefix}{alt}{suffix}"), out)?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    One,
    Class { negated: bool, ranges: Vec<(char, char)> },
}

/// One path component's pattern (after brace expansion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentPattern {
    toks: Vec<Tok>,
}

impl ComponentPattern {
    pub fn parse(s: &str) -> std::result::Result<ComponentPattern, String> {
        let chars: Vec<char> = s.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '\\' => {
                    let Some(&n) = chars.get(i + 1) else {
                        return Err(format!("Illegal file pattern: Illegal escape at the end of {s}"));
                    };
                    toks.push(Tok::Lit(n));
                    i += 1;
                }
                '*' => toks.push(Tok::Any),
                '?' => toks.push(Tok::One),
                '[' => {
                    let mut j = i + 1;
                    let negated = matches!(chars.get(j), Some('^' | '!'));
                    if negated {
                        j += 1;
                    }
                    let mut ranges = Vec::new();
                    loop {
                        let Some(&a) = chars.get(j) else {
                            return Err(format!(
                                "Illegal file pattern: Unclosed character class near index {i} in {s}"
                            ));
                        };
                        if a == ']' && (!ranges.is_empty() || j > i + 1 + negated as usize) {
                            break;
                        }
                        let a = if a == '\\' {
                            j += 1;
                            *chars.get(j).ok_or_else(|| format!("Illegal file pattern: Illegal escape in {s}"))?
                        } else {
                            a
                        };
                        if chars.get(j + 1) == Some(&'-') && chars.get(j + 2).is_some_and(|&c| c != ']') {
                            let b = chars[j + 2];
                            if b < a {
                                return Err(format!(
                                    "Illegal file pattern: Illegal character range near index {j} in {s}"
                                ));
                            }
                            ranges.push((a, b));
                            j += 3;
                        } else {
                            ranges.push((a, a));
                            j += 1;
                        }
                    }
                    toks.push(Tok::Class { negated, ranges });
                    i = j;
                }
                c => toks.push(Tok::Lit(c)),
            }
            i += 1;
        }
        Ok(ComponentPattern { toks })
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let s: Vec<char> = name.chars().collect();
        let t = &self.toks;
        let (mut ti, mut si) = (0, 0);
        // The last `*` seen and the name position it was tried at (backtracking point).
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            let step = match t.get(ti) {
                Some(Tok::Any) => {
                    star = Some((ti, si));
                    ti += 1;
                    continue;
                }
                Some(Tok::One) => true,
                Some(Tok::Lit(c)) => *c == s[si],
                Some(Tok::Class { negated, ranges }) => {
                    ranges.iter().any(|&(a, b)| a <= s[si] && s[si] <= b) != *negated
                }
                None => false,
            };
            if step {
                ti += 1;
                si += 1;
            } else if let Some((st, ss)) = star {
                ti = st + 1;
                si = ss + 1;
                star = Some((st, ss + 1));
            } else {
                return false;
            }
        }
        t[ti..].iter().all(|x| *x == Tok::Any)
    }
}

/// Whether a component has wildcards (`*`, `?`, `[`) outside escapes.
pub fn has_wildcard(component: &str) -> bool {
    let mut escaped = false;
    for c in component.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// A component without wildcards with its escapes removed.
pub fn unescape(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    let mut escaped = false;
    for c in component.chars() {
        if !escaped && c == '\\' {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// Whether the pattern has any glob syntax at all (wildcards or braces).
pub fn is_glob(pattern: &str) -> bool {
    has_wildcard(pattern) || {
        let mut escaped = false;
        pattern.chars().any(|c| {
            let hit = !escaped && c == '{';
            escaped = !escaped && c == '\\';
            hit
        })
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// `Dfs::glob`: see the module documentation.
pub(crate) fn glob_status(dfs: &Dfs, pattern: &str) -> Result<Vec<(String, FileStatus)>> {
    crate::client::check_path(pattern)?;
    let mut found: Vec<(String, FileStatus)> = Vec::new();
    for plain in expand_braces(pattern).map_err(DfsError::Invalid)? {
        let mut reached: Vec<(String, Option<FileStatus>)> = vec![("/".to_string(), None)];
        for comp in plain.split('/').filter(|c| !c.is_empty()) {
            let mut next = Vec::new();
            if !has_wildcard(comp) {
                let name = unescape(comp);
                next.extend(reached.into_iter().map(|(dir, _)| (join(&dir, &name), None)));
            } else {
                let pat = ComponentPattern::parse(comp).map_err(DfsError::Invalid)?;
                for (dir, st) in reached {
                    if st.as_ref().is_some_and(|s| s.kind == FileKind::File) {
                        continue;
                    }
                    let entries = match dfs.list(&dir) {
                        Ok(e) => e,
                        Err(e) if e.is_not_found() || e.exception_name() == Some("ParentNotDirectoryException") => {
                            continue
                        }
                        Err(e) => return Err(e),
                    };
                    for e in entries {
                        if !e.name.is_empty() && pat.matches(&e.name) {
                            next.push((join(&dir, &e.name), Some(e)));
                        }
                    }
                }
            }
            reached = next;
        }
        for (path, st) in reached {
            let st = match st {
                Some(s) => s,
                None => match dfs.status(&path) {
                    Ok(Some(s)) => s,
                    Ok(None) => continue,
                    Err(e) if e.is_not_found() || e.exception_name() == Some("ParentNotDirectoryException") => continue,
                    Err(e) => return Err(e),
                },
            };
            found.push((path, st));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.dedup_by(|a, b| a.0 == b.0);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        ComponentPattern::parse(p).unwrap().matches(s)
    }

    #[test]
    fn wildcards() {
        assert!(m("*", "anything"));
        assert!(m("*", ""));
        assert!(m("a*", "abc"));
        assert!(!m("a*", "bac"));
        assert!(m("*.txt", "x.txt"));
        assert!(!m("*.txt", "x.txt.gz"));
        assert!(m("a*b*c", "aXXbYYbc"));
        assert!(!m("a*b*c", "aXXbYYb"));
        assert!(m("?", "x"));
        assert!(!m("?", ""));
        assert!(!m("?", "xy"));
        assert!(m("part-?????", "part-00001"));
        assert!(m("plain", "plain"));
        assert!(!m("plain", "plainer"));
    }

    #[test]
    fn classes() {
        assert!(m("[abc]", "b"));
        assert!(!m("[abc]", "d"));
        assert!(m("[a-z]x", "qx"));
        assert!(!m("[a-z]x", "Qx"));
        assert!(m("[^a]", "b"));
        assert!(!m("[^a]", "a"));
        assert!(m("[!a-c]", "d"));
        assert!(!m("[!a-c]", "b"));
        assert!(m("[]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("f[0-9][0-9]", "f42"));
        assert!(ComponentPattern::parse("[ab").is_err());
        assert!(ComponentPattern::parse("[z-a]").is_err());
    }

    #[test]
    fn escapes() {
        assert!(m("a\\*", "a*"));
        assert!(!m("a\\*", "ab"));
        assert!(!has_wildcard("a\\*b"));
        assert!(has_wildcard("a*"));
        assert_eq!(unescape("a\\*b\\\\"), "a*b\\");
        assert!(is_glob("/a/{b,c}"));
        assert!(!is_glob("/a/\\{b"));
    }

    #[test]
    fn braces() {
        assert_eq!(expand_braces("/a/{b,c}/d").unwrap(), vec!["/a/b/d", "/a/c/d"]);
        assert_eq!(expand_braces("{x,y}{1,2}").unwrap(), vec!["x1", "x2", "y1", "y2"]);
        assert_eq!(expand_braces("/{a/b,c}").unwrap(), vec!["/a/b", "/c"]);
        assert_eq!(expand_braces("a{b,{c,d}e}").unwrap(), vec!["ab", "ace", "ade"]);
        assert_eq!(expand_braces("{,x}y").unwrap(), vec!["y", "xy"]);
        assert_eq!(expand_braces("no\\{brace").unwrap(), vec!["no\\{brace"]);
        assert!(expand_braces("{a,b").is_err());
        assert!(expand_braces("a}").is_err());
        let bomb = "{a,b,c,d}".repeat(8);
        assert!(expand_braces(&bomb).is_err(), "4^8 expansions are refused");
    }
}
