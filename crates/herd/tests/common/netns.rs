//! The netns crate's hosts and partitions, under the name the tests have always used.
#![allow(unused_imports)]

pub use netns::*;
