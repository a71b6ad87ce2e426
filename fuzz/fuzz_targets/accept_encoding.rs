#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| socklab::fuzzing::accept_encoding(data));
