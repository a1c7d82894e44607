// ESM entry point. It re-exports the CommonJS entry rather than loading the addon a second
// time, so `import` and `require` in one process share one native module and `instanceof`
// agrees between them.
import courier from './index.js'

export const {
  Client, Bus, Consumer, Delivery, Response, TraceContext,
  setLogger, setLogLevel, logLevel, configureTelemetry, flushTelemetry, metricsText, LOG_CHANNEL,
} = courier
export default courier
