-- Prints one machine-readable line when wrk ends, which bench/run.sh reads:
-- the completed requests, the run time, the error counts and latency
-- percentiles in microseconds. Defines no request function, so wrk keeps
-- sending its one static request.

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      "BENCH_RESULT {\"requests\": %d, \"duration_us\": %d, " ..
      "\"errors_connect\": %d, \"errors_read\": %d, \"errors_write\": %d, " ..
      "\"errors_status\": %d, \"errors_timeout\": %d, " ..
      "\"latency_p50_us\": %d, \"latency_p99_us\": %d, \"latency_max_us\": %d, " ..
      "\"latency_mean_us\": %.1f}\n",
      summary.requests, summary.duration,
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
