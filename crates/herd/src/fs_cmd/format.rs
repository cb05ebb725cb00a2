//! How `herd fs` prints things, as Hadoop's shell does: `ls` lines, `stat` formats, sizes,
//! permissions, dates. Pure functions.

use dfs_client::{FileKind, FileStatus};

/// `rwxr-xr-x` (with `t`/`T` for the sticky bit), without the type letter.
pub fn perm_string(perm: u16) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (perm >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    if perm & 0o1000 != 0 {
        let x = s.pop() == Some('x');
        s.push(if x { 't' } else { 'T' });
    }
    s
}

/// A local calendar time from milliseconds since the epoch (UTC if `utc`).
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

pub fn civil(ms: u64, utc: bool) -> Civil {
    let secs = (ms / 1000) as libc::time_t;
    // SAFETY: `tm` is plain data, zero is a valid bit pattern; the *_r functions write only
    // into it and read only `secs`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe {
        if utc {
            !libc::gmtime_r(&secs, &mut tm).is_null()
        } else {
            !libc::localtime_r(&secs, &mut tm).is_null()
        }
    };
    if !ok {
        return Civil { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0 };
    }
    Civil {
        year: tm.tm_year as i64 + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        minute: tm.tm_min as u32,
        second: tm.tm_sec as u32,
    }
}

/// `yyyy-MM-dd HH:mm`, local time (Hadoop's `ls`).
pub fn ls_date(ms: u64) -> String {
    let c = civil(ms, false);
    format!("{:04}-{:02}-{:02} {:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute)
}

/// `yyyy-MM-dd HH:mm:ss`, UTC (Hadoop's `stat %y`).
pub fn stat_date(ms: u64) -> String {
    let c = civil(ms, true);
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// Hadoop's `TraditionalBinaryPrefix.long2String(n, "", 1)`: `512`, `1 K`, `1.5 M`.
pub fn human(n: u64) -> String {
    const SYMBOLS: [char; 6] = ['K', 'M', 'G', 'T', 'P', 'E'];
    if n < 1024 {
        return n.to_string();
    }
    let mut i = 0;
    while i + 1 < SYMBOLS.len() && n >= 1u64 << (10 * (i + 2)) {
        i += 1;
    }
    let shift = 10 * (i + 1);
    if n & ((1u64 << shift) - 1) == 0 {
        return format!("{} {}", n >> shift, SYMBOLS[i]);
    }
    let mut s = format!("{:.1}", n as f64 / (1u64 << shift) as f64);
    let mut sym = SYMBOLS[i];
    if s.starts_with("1024") && i + 1 < SYMBOLS.len() {
        s = format!("{:.1}", n as f64 / (1u64 << (shift + 10)) as f64);
        sym = SYMBOLS[i + 1];
    }
    format!("{s} {sym}")
}

/// Column widths of one `ls` listing (Hadoop's `Ls.adjustColumnWidths`: replication at
/// least 3, length at least 10, owner and group as wide as the widest).
pub struct LsWidths {
    repl: usize,
    owner: usize,
    group: usize,
    len: usize,
}

impl LsWidths {
    pub fn of<'a>(items: impl IntoIterator<Item = &'a FileStatus>, human_sizes: bool) -> LsWidths {
        let mut w = LsWidths { repl: 3, owner: 0, group: 0, len: 10 };
        for s in items {
            w.repl = w.repl.max(repl_field(s).len());
            w.owner = w.owner.max(s.owner.len());
            w.group = w.group.max(s.group.len());
            w.len = w.len.max(size_field(s.length, human_sizes).len());
        }
        w
    }
}

fn repl_field(s: &FileStatus) -> String {
    match s.kind {
        FileKind::File => s.replication.to_string(),
        FileKind::Dir => "-".to_string(),
    }
}

fn size_field(n: u64, human_sizes: bool) -> String {
    if human_sizes {
        human(n)
    } else {
        n.to_string()
    }
}

/// One `ls` line: `drwxr-xr-x   - owner group          0 2026-11-22 09:30 /path`.
pub fn ls_line(s: &FileStatus, path: &str, w: &LsWidths, human_sizes: bool) -> String {
    let kind = if s.kind == FileKind::Dir { 'd' } else { '-' };
    format!(
        "{kind}{} {:>rw$} {:<ow$} {:<gw$} {:>lw$} {} {path}",
        perm_string(s.perm),
        repl_field(s),
        s.owner,
        s.group,
        size_field(s.length, human_sizes),
        ls_date(s.mtime_ms),
        rw = w.repl,
        ow = w.owner,
        gw = w.group,
        lw = w.len,
    )
}

/// Hadoop's `stat` format: `%b` length, `%F` type, `%g` group, `%n` name, `%o` block size,
/// `%r` replication, `%u` owner, `%y` mtime (UTC), `%Y` mtime in ms, `%a` octal and `%A`
/// symbolic permission, `%x`/`%X` atime; anything else is printed as it is.
pub fn stat_line(format: &str, s: &FileStatus, name: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(&f) = chars.peek() else {
            out.push('%');
            break;
        };
        let field = match f {
            'b' => s.length.to_string(),
            'F' => if s.kind == FileKind::Dir { "directory" } else { "regular file" }.to_string(),
            'g' => s.group.clone(),
            'n' => name.to_string(),
            'o' => s.block_size.to_string(),
            'r' => s.replication.to_string(),
            'u' => s.owner.clone(),
            'y' => stat_date(s.mtime_ms),
            'Y' => s.mtime_ms.to_string(),
            'x' => stat_date(s.atime_ms),
            'X' => s.atime_ms.to_string(),
            'a' => format!("{:o}", s.perm),
            'A' => perm_string(s.perm),
            _ => {
                out.push('%');
                continue;
            }
        };
        chars.next();
        out.push_str(&field);
    }
    out
}

/// Rows of left-aligned columns separated by two spaces (Hadoop's `du` table).
pub fn table(rows: &[Vec<String>]) -> Vec<String> {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.len()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    line.push_str(&format!("{c:<w$}  ", w = widths[i]));
                }
            }
            line
        })
        .collect()
}

/// A size given on the command line: bytes, or with a k/m/g/t suffix (binary).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()?.to_ascii_lowercase() {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(kind: FileKind, len: u64, perm: u16) -> FileStatus {
        FileStatus {
            name: String::new(),
            kind,
            length: len,
            owner: "alice".into(),
            group: "supergroup".into(),
            perm,
            replication: if kind == FileKind::File { 3 } else { 0 },
            block_size: if kind == FileKind::File { 134_217_728 } else { 0 },
            mtime_ms: 1_700_000_000_123,
            atime_ms: 1_700_000_000_000,
            file_id: 16386,
            children: 0,
            under_construction: false,
        }
    }

    #[test]
    fn permissions() {
        assert_eq!(perm_string(0o755), "rwxr-xr-x");
        assert_eq!(perm_string(0o644), "rw-r--r--");
        assert_eq!(perm_string(0o1777), "rwxrwxrwt");
        assert_eq!(perm_string(0o1776), "rwxrwxrwT");
        assert_eq!(perm_string(0), "---------");
    }

    #[test]
    fn ls_lines_as_hadoop() {
        let dir = st(FileKind::Dir, 0, 0o755);
        let file = st(FileKind::File, 1234, 0o644);
        let w = LsWidths::of([&dir, &file], false);
        let date = ls_date(dir.mtime_ms);
        assert_eq!(ls_line(&dir, "/d", &w, false), format!("drwxr-xr-x   - alice supergroup          0 {date} /d"));
        assert_eq!(ls_line(&file, "/f", &w, false), format!("-rw-r--r--   3 alice supergroup       1234 {date} /f"));
        let big = st(FileKind::File, 12_345_678_901, 0o600);
        let w = LsWidths::of([&big, &file], false);
        assert_eq!(ls_line(&file, "/f", &w, false), format!("-rw-r--r--   3 alice supergroup        1234 {date} /f"));
        assert_eq!(
            ls_line(&big, "/b", &LsWidths::of([&big], true), true),
            format!("-rw-------   3 alice supergroup     11.5 G {date} /b")
        );
    }

    #[test]
    fn stat_formats() {
        let f = st(FileKind::File, 42, 0o640);
        assert_eq!(stat_line("%b %F %g %n %o %r %u", &f, "x"), "42 regular file supergroup x 134217728 3 alice");
        assert_eq!(stat_line("%y", &f, "x"), "2023-11-14 22:13:20");
        assert_eq!(stat_line("%Y|%a|%A", &f, "x"), "1700000000123|640|rw-r-----");
        assert_eq!(stat_line("%F", &st(FileKind::Dir, 0, 0o755), "d"), "directory");
        // Unknown specifiers and a trailing % are printed as they are.
        assert_eq!(stat_line("%q 100%", &f, "x"), "%q 100%");
    }

    #[test]
    fn human_sizes_as_hadoop() {
        assert_eq!(human(0), "0");
        assert_eq!(human(1023), "1023");
        assert_eq!(human(1024), "1 K");
        assert_eq!(human(1536), "1.5 K");
        assert_eq!(human(3 << 20), "3 M");
        assert_eq!(human((1 << 30) - 1), "1.0 G");
        assert_eq!(human(5 * (1 << 40) + (1 << 39)), "5.5 T");
    }

    #[test]
    fn tables_and_sizes() {
        let rows =
            vec![vec!["1".to_string(), "3".into(), "/a".into()], vec!["1234".into(), "3702".into(), "/bb".into()]];
        assert_eq!(table(&rows), vec!["1     3     /a", "1234  3702  /bb"]);
        assert_eq!(parse_size("128m"), Some(128 << 20));
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("4K"), Some(4096));
        assert_eq!(parse_size("x"), None);
    }
}
