// How a Swift `Duration` crosses to courier's core: whole milliseconds in an Int64
// (uniffi.toml maps core's `Millis` to `Duration` through this). A negative duration
// passes through as negative, and core refuses it naming the field (`deadline_ms`); an
// enormous one saturates instead of trapping, and core refuses it as beyond 30 days.

/// Converts `Duration` to core's whole milliseconds; used by the generated bindings.
public enum CourierDurations {
    /// Whole milliseconds of `duration`, rounded toward zero, saturating at Int64's range.
    public static func milliseconds(_ duration: Duration) -> Int64 {
        // `components` traps beyond Int64's seconds; anything that long saturates first.
        if duration >= .seconds(Int64.max) { return .max }
        if duration <= .seconds(Int64.min) { return .min }
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (total, carry) = whole.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        if carry { return seconds < 0 ? .min : .max }
        return total
    }
}
