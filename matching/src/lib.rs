//! How a child is matched: the rules a node ranks its search candidates by,
//! shared by the node (which scores) and the benchmark (which estimates the
//! weights and measures recall).
//!
//! - `keys`: the canonical forms names are stored and compared under;
//! - `nicknames`: forename variants, from a reviewed table in `data/`;
//! - `compare`: each field's agreement level between what was asked and a
//!   record (exact, phonetic, within one edit, day and month swapped...);
//! - `weights`: the Fellegi–Sunter weight of each level, log2(m/u), from the
//!   table `data/match-weights.csv`.
//!
//! Invariants: pure functions of their inputs (no I/O but reading a key
//! file; phonetic codes come
//! from PostgreSQL's fuzzystrmatch at the node and arrive here as a flag);
//! a field not asked contributes nothing, never a penalty; the same inputs
//! always give the same score, so a ranking is reproducible.
#![forbid(unsafe_code)]

pub mod blocking;
pub mod compare;
pub mod keys;
pub mod nicknames;
pub mod weights;

pub use compare::{score, Agreement, Asked, Candidate, Field, Scored};
pub use weights::Weights;
