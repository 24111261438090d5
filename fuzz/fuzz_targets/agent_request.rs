//! Untrusted fields of the guest agent's requests: a CreateProcess OCI
//! spec through every conversion vmexec applies (user and groups, rlimits,
//! capabilities, seccomp, mounts, devices, sysctls, masked paths), request
//! paths, and a CopyIn tar unpacked into a temporary directory that nothing
//! may leave. No mount, process or write outside that directory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vminitd::fuzzing::request(data);
});
