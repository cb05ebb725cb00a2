//! Znode path rules, exactly as ZooKeeper's `PathUtils.validatePath`.

/// Why a path is refused; the server answers `BadArguments`.
pub fn validate(path: &str) -> Result<(), &'static str> {
    let chars: Vec<char> = path.chars().collect();
    if chars.is_empty() {
        return Err("path length must be > 0");
    }
    if chars[0] != '/' {
        return Err("path must start with / character");
    }
    if chars.len() == 1 {
        return Ok(());
    }
    if chars[chars.len() - 1] == '/' {
        return Err("path must not end with / character");
    }
    let mut last = '/';
    for i in 1..chars.len() {
        let c = chars[i];
        let at_end = i + 1 == chars.len() || chars[i + 1] == '/';
        if c == '\0' {
            return Err("null character not allowed");
        } else if c == '/' && last == '/' {
            return Err("empty node name specified");
        } else if c == '.' && at_end && (chars[i - 1] == '/' || (last == '.' && chars[i - 2] == '/')) {
            return Err("relative paths not allowed");
        } else if ('\u{1}'..='\u{1f}').contains(&c)
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || ('\u{e000}'..='\u{f8ff}').contains(&c)
            || ('\u{fff0}'..='\u{ffff}').contains(&c)
        {
            return Err("invalid character");
        }
        last = c;
    }
    Ok(())
}

/// The parent of a valid non-root path ("/a" -> "/", "/a/b" -> "/a").
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a valid non-root path.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// `child` is `base` itself or below it.
pub fn is_within(child: &str, base: &str) -> bool {
    base == "/"
        || child == base
        || (child.len() > base.len() && child.starts_with(base) && child.as_bytes()[base.len()] == b'/')
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_path_rules() {
        for ok in ["/", "/a", "/a/b", "/a.b", "/..a", "/a/...", "/zookeeper"] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a", "/a/", "//a", "/a//b", "/.", "/a/..", "/a/./b", "/a\0b", "/a\u{1}", "/\u{e000}"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parents_and_names() {
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(name("/a/b"), "b");
        assert!(is_within("/a/b", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(is_within("/x", "/"));
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
