//! Hostile ext4 images must give errors, never panics, hangs or huge
//! allocations.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    containerization_ext4::fuzzing::ext4_reader(data);
});
