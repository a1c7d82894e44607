// swift-tools-version:5.9
//
// CourierKit for Swift: the uniffi-generated bindings of crate courier-ffi, linked statically,
// plus a small idiomatic layer (AsyncSequence over Consumer, the HTTP verb shortcuts) and
// XCTest tests.
//
// The CourierKit target is Sources/CourierKit: Deliveries.swift and Client+Verbs.swift
// (checked in) and Generated/CourierKit.swift (gitignored, written by test.sh or
// scripts/mobile-apple.sh).
// The C module CourierFFI comes from one of two places, chosen when the manifest is read:
//
// 1. Release mode: an XCFramework. Used when $COURIER_XCFRAMEWORK names one, or when
//    CourierFFI.xcframework sits next to this file and $COURIER_FFI_LIB_DIR is unset.
//    `bash scripts/mobile-apple.sh` (macOS + Xcode) builds it. CourierFFI is then a
//    `.binaryTarget` and the manifest uses no unsafeFlags, so other packages can depend on
//    this one (`.package(path: ".../bindings/swift")`). The XCFramework carries the C header
//    and the module map inside each slice's Headers directory
//    (Headers/CourierFFI/{CourierFFI.h,module.modulemap}); a module map anywhere else is not
//    found by SwiftPM or Xcode. Package.release.swift.template is the manifest for a
//    published repo that downloads the zipped XCFramework instead.
//
// 2. Local development mode (otherwise): `bash bindings/swift/test.sh` builds the Rust
//    library and generates Sources/CourierFFI/{CourierFFI.h,module.modulemap}, a
//    systemLibrary target, then runs `swift test` with COURIER_FFI_LIB_DIR set. The static
//    library comes from $COURIER_FFI_LIB_DIR, else $CARGO_TARGET_DIR/debug, else
//    ~/.cache/courier/target/debug. Linking it takes unsafeFlags, so in this mode the package
//    builds as a root package (tests, examples) or a local/branch dependency, but SwiftPM
//    refuses it as a dependency at a version.
//
// Because test.sh sets COURIER_FFI_LIB_DIR, it always tests the library it just built, even
// when an older XCFramework is lying next to this file.

import Foundation
import PackageDescription

let env = ProcessInfo.processInfo.environment

// SwiftPM only accepts a local binary target path relative to the package root, so an
// absolute $COURIER_XCFRAMEWORK is rewritten as one ("../../elsewhere/CourierFFI.xcframework").
func pathRelativeToPackage(_ path: String) -> String {
    let root = URL(fileURLWithPath: Context.packageDirectory, isDirectory: true)
    let base = root.standardizedFileURL.resolvingSymlinksInPath().pathComponents
    let target = URL(fileURLWithPath: path, relativeTo: root).absoluteURL
        .standardizedFileURL.resolvingSymlinksInPath().pathComponents
    var shared = 0
    while shared < min(base.count, target.count), base[shared] == target[shared] {
        shared += 1
    }
    let up = [String](repeating: "..", count: base.count - shared)
    return (up + Array(target[shared...])).joined(separator: "/")
}

let bundledXCFramework = Context.packageDirectory + "/CourierFFI.xcframework"
let xcframework: String? = {
    if let named = env["COURIER_XCFRAMEWORK"], !named.isEmpty {
        return named
    }
    if env["COURIER_FFI_LIB_DIR"] == nil, FileManager.default.fileExists(atPath: bundledXCFramework) {
        return bundledXCFramework
    }
    return nil
}()

// Local development mode: the archive is passed straight to the linker, after the objects,
// so its references resolve. The Linux list is what `cargo rustc -p courier-ffi
// --crate-type staticlib -- --print native-static-libs` reports.
let cargoTargetDir = env["CARGO_TARGET_DIR"] ?? ((env["HOME"] ?? "~") + "/.cache/courier/target")
let libDir = env["COURIER_FFI_LIB_DIR"] ?? (cargoTargetDir + "/debug")
let archive = libDir + "/libcourier_ffi.a"
let linuxLink = ["-Xlinker", archive] + ["gcc_s", "util", "rt", "pthread", "m", "dl", "c"].flatMap {
    ["-Xlinker", "-l\($0)"]
}
let appleLink = ["-Xlinker", archive]
let localLinkerSettings: [LinkerSetting] = [
    .unsafeFlags(linuxLink, .when(platforms: [.linux])),
    .unsafeFlags(appleLink, .when(platforms: [.macOS, .iOS])),
]

// Both modes: the Apple frameworks and libraries that rustls-platform-verifier, reqwest and
// the Rust standard library use. These are ordinary settings, allowed in dependencies.
let appleSystemLinkerSettings: [LinkerSetting] = [
    .linkedFramework("Security", .when(platforms: [.macOS, .iOS])),
    .linkedFramework("CoreFoundation", .when(platforms: [.macOS, .iOS])),
    .linkedFramework("SystemConfiguration", .when(platforms: [.macOS, .iOS])),
    .linkedLibrary("iconv", .when(platforms: [.macOS, .iOS])),
]

let ffiTarget: Target = xcframework.map {
    Target.binaryTarget(name: "CourierFFI", path: pathRelativeToPackage($0))
} ?? Target.systemLibrary(name: "CourierFFI", path: "Sources/CourierFFI")

let courierKitLinkerSettings: [LinkerSetting] =
    (xcframework == nil ? localLinkerSettings : []) + appleSystemLinkerSettings

let package = Package(
    name: "CourierKit",
    platforms: [.macOS(.v13), .iOS(.v16)],
    products: [
        .library(name: "CourierKit", targets: ["CourierKit"]),
    ],
    targets: [
        // The C declarations of the FFI (header + module map from uniffi-bindgen), and in
        // release mode the static libraries too.
        ffiTarget,
        .target(
            name: "CourierKit",
            dependencies: ["CourierFFI"],
            path: "Sources/CourierKit",
            linkerSettings: courierKitLinkerSettings
        ),
        .testTarget(
            name: "CourierKitTests",
            dependencies: ["CourierKit"],
            path: "Tests/CourierKitTests"
        ),
    ]
)
