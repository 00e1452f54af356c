#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strongroom_fuzzing::run("config", data));
