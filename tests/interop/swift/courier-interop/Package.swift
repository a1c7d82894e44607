// swift-tools-version:5.9
//
// The Swift interop agent and parity driver (tests/interop/PROTOCOL.md), over CourierKit.
// Built and run by tests/interop/swift/run.sh; its `build` generates the bindings and the
// static library CourierKit links first, as bindings/swift/test.sh does.
//
// CourierKit is the package at bindings/swift, in its local development mode (the static
// library from $COURIER_FFI_LIB_DIR), which SwiftPM accepts from a path dependency. This
// package is tests/interop/swift/courier-interop, not tests/interop/swift itself: SwiftPM
// names a path package by its directory, and a root package named like its dependency
// ("swift", bindings/swift) is taken for it.

import PackageDescription

let package = Package(
    name: "CourierInterop",
    // CourierKit's macOS minimum: a package cannot ask for less than its dependencies.
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: "../../../../bindings/swift"),
    ],
    targets: [
        // What both programs share: JSON, stdout lines, stderr logs.
        .target(name: "InteropSupport"),
        .executableTarget(
            name: "InteropAgent",
            dependencies: ["InteropSupport", .product(name: "CourierKit", package: "swift")]
        ),
        .executableTarget(
            name: "ParityDriver",
            dependencies: ["InteropSupport", .product(name: "CourierKit", package: "swift")]
        ),
    ]
)
