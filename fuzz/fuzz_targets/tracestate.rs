//! tracestate: never panics; the header it writes parses to the same header.
#![no_main]
use courierkit::TraceState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(state) = TraceState::parse(text.split('\n')) {
        let header = state.header();
        let again = TraceState::parse([header.as_str()]).expect("its own header parses");
        assert_eq!(again.header(), header);
    }
});
