//! The NameNode's `/status` page: its state as JSON (DataNodes, block health, namespace
//! size). Served on the NameNode's HTTP port (HDFS's 9870) beside WebHDFS, by the `webhdfs`
//! crate's router, which the `herd namenode` command puts together.

use std::sync::{Arc, Weak};

use super::Shared;

/// Makes the `/status` page of a running NameNode; once it has stopped, `None`.
#[derive(Clone)]
pub struct StatusPage(pub(super) Weak<Shared>);

impl StatusPage {
    pub async fn json(&self) -> Option<String> {
        let shared: Arc<Shared> = self.0.upgrade()?;
        Some(status_json(&shared).await)
    }
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

async fn status_json(shared: &Shared) -> String {
    let inodes = shared.journal.read(|ns| ns.inode_count()).await.unwrap_or(0);
    let st = shared.state();
    let b = st.blocks.stats();
    let mut datanodes = Vec::new();
    for (id, r) in &st.datanodes {
        let Some((rack, capacity, free, blocks, decommissioning)) = st.blocks.datanode_summary(id) else { continue };
        let state = match (decommissioning, st.blocks.decommission_done(id)) {
            (false, _) => "In Service",
            (true, Ok(true)) => "Decommissioned",
            (true, _) => "Decommission In Progress",
        };
        datanodes.push(format!(
            "{{\"id\":{},\"data\":{},\"rack\":{},\"incarnation\":{},\"state\":{},\"capacity\":{capacity},\"free\":{free},\"blocks\":{blocks}}}",
            quote(id),
            quote(&r.info.data_addr),
            quote(&rack),
            r.incarnation,
            quote(state)
        ));
    }
    format!(
        "{{\"namenode\":{},\"epoch\":{},\"inodes\":{inodes},\"datanodes\":[{}],\"blocks\":{{\"total\":{},\"under_construction\":{},\"under_replicated\":{},\"pending\":{},\"corrupt\":{},\"missing\":{}}}}}",
        quote(&shared.config.id),
        shared.epoch(),
        datanodes.join(","),
        b.blocks,
        b.under_construction,
        b.under_replicated,
        b.pending,
        b.corrupt,
        b.missing
    )
}
