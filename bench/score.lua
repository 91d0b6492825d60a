-- wrk script: POST /v1/scores for known clients, round robin (ids and key from the env).
local ids = {}
for id in string.gmatch(os.getenv("BENCH_CLIENT_IDS") or "", "%d+") do
  ids[#ids + 1] = id
end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("BENCH_API_KEY")

request = function()
  i = i % #ids + 1
  return wrk.format(nil, "/v1/scores", nil, '{"client_id": ' .. ids[i] .. '}')
end

done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"seconds\": %.3f, \"errors\": %d, " ..
    "\"non2xx\": %d, \"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, summary.errors.status,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
