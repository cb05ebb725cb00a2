//! Membership over the keeper: how every herd daemon tells the cluster it is alive, learns who
//! else is, and refuses orders from the past.
//!
//! This crate promises that a daemon using it (1) holds one keeper session and one ephemeral
//! member znode per incarnation, (2) learns promptly when the keeper declared it dead, and stops
//! acting as that incarnation, and (3) can tell a request of a current master or worker from a
//! stale one by its epoch. It speaks only the ZooKeeper client protocol (through
//! `keeper-proto`), so it works against any ZooKeeper server as well as herd's keeper.
//!
//! Layout: [`client`] an async ZooKeeper session (pings, reconnects, watches, expiry);
//! [`report`] how a daemon hands its session to its supervisor; [`view`] `join`, `read_view`
//! and the [`view::Watcher`] over `/herd/members/<group>/<id>`; [`membership`] a daemon's own
//! membership (join, notice expulsion, rejoin as a new incarnation); [`fence`] epoch checks.
//! The adaptive failure detector is the `detector` crate.

pub mod client;
pub mod fence;
pub mod membership;
pub mod report;
pub mod view;
