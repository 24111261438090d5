//! Hostile layer tarballs must give errors, never panics or hangs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    containerization_ext4::fuzzing::layer_unpack(data);
});
