#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| socklab::fuzzing::cluster_entry(data));
