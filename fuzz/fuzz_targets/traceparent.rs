//! traceparent (+ tracestate): never panics; what parses writes a carrier that parses
//! back to the same context.
#![no_main]
use courierkit::TraceContext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (traceparent, tracestate) = text.split_once('\n').unwrap_or((text, ""));
    if let Some(ctx) = TraceContext::parse(traceparent, Some(tracestate)) {
        let again = TraceContext::from_carrier(&ctx.to_carrier());
        assert_eq!(again, ctx, "a parsed context must survive its own carrier");
    }
});
