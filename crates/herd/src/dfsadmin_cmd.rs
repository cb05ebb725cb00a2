//! `herd dfsadmin`: the file system's administration (Hadoop's `hdfs dfsadmin`), for now the
//! DataNode report and decommissioning through the NameNode's exclude file.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use dfs_client::AdminState;

#[derive(Args)]
pub struct DfsadminArgs {
    /// Cluster directory of `herd up`: its cluster.json names the NameNode.
    #[arg(long, env = "HERD_CLUSTER", value_name = "DIR")]
    cluster: Option<PathBuf>,
    /// The NameNode's RPC address, host:port (instead of --cluster).
    #[arg(long, value_name = "ADDR")]
    namenode: Option<String>,
    #[command(subcommand)]
    cmd: DfsadminCmd,
}

impl DfsadminArgs {
    /// The `herd up` cluster dir given (--cluster or HERD_CLUSTER), if any.
    pub fn cluster_dir(&self) -> Option<&std::path::Path> {
        self.cluster.as_deref()
    }
}

#[derive(Subcommand)]
enum DfsadminCmd {
    /// Every DataNode: address, rack, state (In Service, Decommission In Progress,
    /// Decommissioned), capacity, free space and replicas (`hdfs dfsadmin -report`).
    Report,
    /// Make the NameNode re-read its exclude file (superuser): DataNodes it lists are drained
    /// and then shown Decommissioned; stop them after that (`hdfs dfsadmin -refreshNodes`).
    RefreshNodes,
}

pub fn run(a: DfsadminArgs) -> anyhow::Result<()> {
    let user = dfs_client::default_user();
    let (dfs, namenode) = crate::fs_cmd::connect("dfsadmin", a.cluster.as_deref(), a.namenode.as_deref(), &user)?;
    match a.cmd {
        DfsadminCmd::Report => {
            let nodes = dfs.datanode_report()?;
            println!("Live datanodes ({}):", nodes.len());
            for n in nodes {
                let state = match n.state {
                    AdminState::InService => "Normal",
                    AdminState::Decommissioning => "Decommission in progress",
                    AdminState::Decommissioned => "Decommissioned",
                };
                println!();
                println!("Name: {} ({})", n.datanode.data_addr, n.datanode.id);
                println!("Rack: {}", n.datanode.rack);
                println!("Decommission Status : {state}");
                println!("Configured Capacity: {}", n.capacity);
                println!("DFS Remaining: {}", n.free);
                println!("Num of Blocks: {}", n.blocks);
                println!("Incarnation: {:#x}", n.incarnation);
            }
        }
        DfsadminCmd::RefreshNodes => {
            dfs.refresh_nodes()?;
            println!("Refresh nodes successful for {namenode}");
        }
    }
    Ok(())
}
