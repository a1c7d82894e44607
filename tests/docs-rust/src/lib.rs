//! The ```rust snippets of the docs, compiled (never run): build.rs writes each as an
//! async function over courierkit, so a renamed or removed API breaks this build.

#![allow(missing_docs)]

use std::time::Duration;

use courierkit::*;

include!(concat!(env!("OUT_DIR"), "/snippets.rs"));
