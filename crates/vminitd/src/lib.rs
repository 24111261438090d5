//! `vminitd` as a library: the agent's modules, so its request decoding and
//! validation can be reached by the fuzz target (`fuzz/`, through
//! [`fuzzing`]) and by tests. The binary (`src/main.rs`) is a thin `main`.

pub mod boot;
pub mod container;
#[doc(hidden)]
pub mod fuzzing;
pub mod listen;
pub mod modules;
pub mod reaper;
pub mod service;
pub mod sys;
pub mod timeline;
