//! Request paths joined to an endpoint's base path: a path that is not refused never
//! leaves the base path (`../` plain, percent-encoded or hidden behind encoded slashes).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let base = url::Url::parse("http://h:1/api/v1").unwrap();
    if let Some(url) = courierkit::fuzzing::request_url(&base, path) {
        assert_eq!(url.host_str(), Some("h"), "{path:?} -> {url}");
        assert!(url.path().starts_with("/api/v1"), "{path:?} -> {url}");
    }
});
