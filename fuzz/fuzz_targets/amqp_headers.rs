//! AMQP header tables as a broker sends them, read into courier's message model: never
//! panics, whatever the nesting or value types.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = courierkit::fuzzing::amqp_headers(data);
});
