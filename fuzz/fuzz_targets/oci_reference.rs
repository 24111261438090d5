//! Hostile image references and platform strings: errors, never panics;
//! a parsed reference prints back to one that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    containerization_oci::fuzzing::reference(data);
});
