//! `herd chaos random`: a seeded schedule of faults.

use std::path::Path;

use clap::Args;

#[derive(Args)]
pub struct RandomArgs {
    /// How long to inject faults, e.g. 60s, 5m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: std::time::Duration,
    /// The schedule's seed (default: from the clock; printed either way).
    #[arg(long)]
    seed: Option<u64>,
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map(|i| s.split_at(i)).unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 60s, 5m or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unit {unit:?}; use ms, s, m or h")),
    };
    Ok(std::time::Duration::from_secs_f64(secs))
}

pub fn seed_from_clock() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
}

pub fn run(_dir: &Path, _a: RandomArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not yet")
}
