//! The ResourceManager's state in the keeper (YARN's `ZKRMStateStore`), under `/herd/rm`:
//!
//! ```text
//! /herd/rm/secret          32 random bytes, made once: the container-token key
//! /herd/rm/seq/app-NNNN    sequential, deleted at once: the parent's counter numbers apps
//! /herd/rm/seq/epoch-NNNN  sequential, deleted at once: the container-id epoch of one RM run
//! /herd/rm/apps/<app id>   one app: its submission and every attempt ([`StoredApp`], rpc codec)
//! ```
//!
//! A sequential znode's number comes from its parent's counter, which survives the child's
//! deletion, so a restarted RM never reuses an app number or a container epoch.
//!
//! **Invariant:** an app's node is written before its submission is acknowledged and at
//! every attempt change, and the writes of one app are made in the order of the states they
//! hold (the daemon serializes them, see `server::flush`).

use compute_proto::ids::ApplicationId;
use compute_proto::records::ApplicationSubmission;
use keeper_proto::{CreateMode, ErrorCode};
use member::client::{self, ClientConfig, Session};
use rpc::codec::Message;
use rpc::wire_struct;

/// The store's root.
pub const ROOT: &str = "/herd/rm";
/// The length of the container-token key.
pub const SECRET_LEN: usize = 32;

wire_struct! {
    /// An attempt's AM container, as stored.
    pub struct StoredContainer {
        pub epoch: u64,
        pub seq: u64,
        pub node: String,
    }
}

wire_struct! {
    /// One attempt, as stored (`attempts::AttemptRecord`; states as their index).
    pub struct StoredAttempt {
        pub number: u32,
        pub state: u8,
        pub am_container: Option<StoredContainer>,
        pub counted: bool,
        pub diagnostics: String,
    }
}

wire_struct! {
    /// One application, as stored at `/herd/rm/apps/<app id>`.
    pub struct StoredApp {
        pub app_id: ApplicationId,
        pub user: String,
        pub submission: ApplicationSubmission,
        pub start_ms: u64,
        pub finish_ms: Option<u64>,
        pub max_attempts: u32,
        /// `attempts::AppState` as its index.
        pub state: u8,
        /// `attempts::FinalStatus` as its index + 1; 0 while undecided.
        pub final_status: u8,
        pub diagnostics: String,
        pub attempts: Vec<StoredAttempt>,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("keeper: {0}")]
    Keeper(#[from] client::Error),
    #[error("{path}: {why}")]
    Corrupt { path: String, why: String },
    #[error("reading /dev/urandom: {0}")]
    Random(std::io::Error),
}

/// The store: one keeper session of its own (not the membership's, whose expiry means
/// something else). The store holds no ephemeral node and no watch, so a write that finds its
/// session expired replaces it before it returns the error: a keeper paused or cut off for
/// longer than the session time-out must not leave the RM unable to write for the rest of its
/// life, and the caller's next write (a retry, the next flush) goes through.
pub struct Store {
    session: Session,
    cfg: ClientConfig,
}

fn apps_dir() -> String {
    format!("{ROOT}/apps")
}

fn seq_dir() -> String {
    format!("{ROOT}/seq")
}

pub fn app_path(app: &ApplicationId) -> String {
    format!("{ROOT}/apps/{app}")
}

impl Store {
    pub async fn open(cfg: ClientConfig) -> Result<Store, StoreError> {
        let session = Session::connect(cfg.clone()).await?;
        member::view::ensure_path(&session, &apps_dir()).await?;
        member::view::ensure_path(&session, &seq_dir()).await?;
        Ok(Store { session, cfg })
    }

    /// Passes a write's result through, first replacing the session if the keeper ended it.
    async fn renewing<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Keeper(client::Error::Expired)) = &result {
            match Session::connect(self.cfg.clone()).await {
                Ok(fresh) => {
                    tracing::warn!("the RM store's keeper session expired; writing through a new one");
                    let old = std::mem::replace(&mut self.session, fresh);
                    let _ = old.close().await;
                }
                Err(e) => tracing::warn!("renewing the RM store's session: {e}"),
            }
        }
        result
    }

    /// The container-token key, made on the first start of the first RM.
    pub async fn secret(&self) -> Result<Vec<u8>, StoreError> {
        let path = format!("{ROOT}/secret");
        loop {
            match self.session.get_data(&path, false).await {
                Ok((data, _)) if data.len() == SECRET_LEN => return Ok(data),
                Ok((data, _)) => {
                    return Err(StoreError::Corrupt {
                        path,
                        why: format!("{} bytes, expected {SECRET_LEN}", data.len()),
                    })
                }
                Err(client::Error::Keeper(ErrorCode::NoNode)) => {}
                Err(e) => return Err(e.into()),
            }
            let mut key = [0u8; SECRET_LEN];
            use std::io::Read as _;
            std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut key)).map_err(StoreError::Random)?;
            match self.session.create(&path, &key, client::open_acl(), CreateMode::Persistent).await {
                Ok(_) => return Ok(key.to_vec()),
                // Another RM made it first: read theirs.
                Err(client::Error::Keeper(ErrorCode::NodeExists)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next number of the sequence `name` (`app`, `epoch`).
    pub async fn next(&mut self, name: &str) -> Result<u64, StoreError> {
        let result = self.next_once(name).await;
        self.renewing(result).await
    }

    async fn next_once(&self, name: &str) -> Result<u64, StoreError> {
        let prefix = format!("{}/{name}-", seq_dir());
        let (path, _) = self.session.create(&prefix, &[], client::open_acl(), CreateMode::PersistentSequential).await?;
        let n = path
            .strip_prefix(&prefix)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| StoreError::Corrupt { path: path.clone(), why: "not a sequential node".into() })?;
        // The counter lives in the parent; the node itself is not needed.
        if let Err(e) = self.session.delete(&path, -1).await {
            tracing::debug!("deleting {path}: {e}");
        }
        Ok(n)
    }

    /// Writes an app's node (creates it the first time).
    pub async fn save(&mut self, app: &StoredApp) -> Result<(), StoreError> {
        let result = self.save_once(app).await;
        self.renewing(result).await
    }

    async fn save_once(&self, app: &StoredApp) -> Result<(), StoreError> {
        let path = app_path(&app.app_id);
        let data = app.to_bytes();
        match self.session.set_data(&path, &data, -1).await {
            Ok(_) => Ok(()),
            Err(client::Error::Keeper(ErrorCode::NoNode)) => {
                match self.session.create(&path, &data, client::open_acl(), CreateMode::Persistent).await {
                    Ok(_) => Ok(()),
                    Err(client::Error::Keeper(ErrorCode::NodeExists)) => {
                        self.session.set_data(&path, &data, -1).await?;
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every stored app; a node that does not decode is skipped with an error logged (it is
    /// kept for a human to look at).
    pub async fn load_all(&self) -> Result<Vec<StoredApp>, StoreError> {
        let (mut children, _) = self.session.get_children2(&apps_dir(), false).await?;
        children.sort();
        let mut out = Vec::new();
        for c in children {
            let path = format!("{}/{c}", apps_dir());
            match self.session.get_data(&path, false).await {
                Ok((data, _)) => match StoredApp::from_bytes(&data) {
                    Ok(a) => out.push(a),
                    Err(e) => tracing::error!("{path}: cannot decode the stored app: {e}"),
                },
                Err(client::Error::Keeper(ErrorCode::NoNode)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    pub async fn close(self) {
        let _ = self.session.close().await;
    }
}
