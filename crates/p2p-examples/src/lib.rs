//! Runnable examples of the lotus-p2p node API; see the binaries in `src/bin`
//! and this crate's README.
#![deny(unsafe_code)]
#![warn(missing_docs)]
