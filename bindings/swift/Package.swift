// swift-tools-version:5.9
//
// courier for Swift: the uniffi-generated bindings of crate courier-ffi, linked statically,
// plus a small idiomatic layer (AsyncSequence over Consumer) and XCTest tests.
//
// Run `bash bindings/swift/test.sh` rather than `swift test` directly: it builds the Rust
// library and generates the files this manifest expects (all gitignored):
//   Sources/CourierFFI/CourierFFI.h, Sources/CourierFFI/module.modulemap   (C module)
//   Sources/Courier/Generated/Courier.swift                                 (Swift API)
//
// The static library comes from $COURIER_FFI_LIB_DIR, else $CARGO_TARGET_DIR/debug, else
// ~/.cache/courier/target/debug. Linking it takes unsafeFlags, so this package builds as a
// root package (tests, examples) but cannot be a dependency of another package; shipping
// to apps goes through an XCFramework binary target instead.

import Foundation
import PackageDescription

let env = ProcessInfo.processInfo.environment
let cargoTargetDir = env["CARGO_TARGET_DIR"] ?? ((env["HOME"] ?? "~") + "/.cache/courier/target")
let libDir = env["COURIER_FFI_LIB_DIR"] ?? (cargoTargetDir + "/debug")
let archive = libDir + "/libcourier_ffi.a"

// Passed straight to the linker, after the archive, so its references resolve. The Linux
// list is what `cargo rustc -p courier-ffi --crate-type staticlib -- --print
// native-static-libs` reports; macOS needs the frameworks rustls-platform-verifier and
// reqwest use.
let linuxLink = ["-Xlinker", archive] + ["gcc_s", "util", "rt", "pthread", "m", "dl", "c"].flatMap {
    ["-Xlinker", "-l\($0)"]
}
let appleLink = ["-Xlinker", archive]

let package = Package(
    name: "Courier",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: [
        .library(name: "Courier", targets: ["Courier"]),
    ],
    targets: [
        // The C declarations of the FFI (header + module map from uniffi-bindgen).
        .systemLibrary(name: "CourierFFI", path: "Sources/CourierFFI"),
        .target(
            name: "Courier",
            dependencies: ["CourierFFI"],
            path: "Sources/Courier",
            linkerSettings: [
                .unsafeFlags(linuxLink, .when(platforms: [.linux])),
                .unsafeFlags(appleLink, .when(platforms: [.macOS, .iOS])),
                .linkedFramework("Security", .when(platforms: [.macOS, .iOS])),
                .linkedFramework("CoreFoundation", .when(platforms: [.macOS, .iOS])),
                .linkedFramework("SystemConfiguration", .when(platforms: [.macOS, .iOS])),
                .linkedLibrary("iconv", .when(platforms: [.macOS, .iOS])),
            ]
        ),
        .testTarget(
            name: "CourierTests",
            dependencies: ["Courier"],
            path: "Tests/CourierTests"
        ),
    ]
)
