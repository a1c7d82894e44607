//! baggage: never panics; the header it writes parses to the same header.
#![no_main]
use courierkit::Baggage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let baggage = Baggage::parse(text.split('\n'));
    let header = baggage.header();
    assert_eq!(Baggage::parse([header.as_str()]).header(), header);
});
