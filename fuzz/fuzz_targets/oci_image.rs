//! Hostile image indexes, manifests and configs in the content store:
//! every read of the image gives an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    containerization_oci::fuzzing::image_json(data);
});
