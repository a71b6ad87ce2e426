#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| socklab::fuzzing::rtt_probe(data));
