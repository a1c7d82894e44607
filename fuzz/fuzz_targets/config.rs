//! Client and bus configs from JSON and TOML: never panic; every refusal is a config error.
#![no_main]
use courierkit::{BusConfig, ClientConfig, ErrorKind, Validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for result in [
        ClientConfig::from_json(text).map(drop),
        ClientConfig::from_toml(text).map(drop),
        BusConfig::from_json(text).map(drop),
        BusConfig::from_toml(text).map(drop),
    ] {
        if let Err(e) = result {
            assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        }
    }
});
