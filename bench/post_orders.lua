-- wrk script: POST a fresh 12345 work order on every request (unique order_no per thread).
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("FQ_BENCH_KEY")
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"order_no":"W%s-%d-%d","content":"楼上邻居装修噪音太大，周末早上七点就开始施工。",' ..
    '"received_at":"2026-11-23T09:30:00+08:00","caller_phone":"13800138000",' ..
    '"category":"邻里纠纷","address":"城关街道"}', os.getenv("FQ_BENCH_RUN"), thread_id, counter)
  return wrk.format(nil, "/v1/intake/hotline_12345", nil, body)
end

function done(summary, latency, requests)
  io.write(string.format("JSON {\"requests\":%d,\"seconds\":%f,\"p50_ms\":%f,\"p99_ms\":%f," ..
    "\"non2xx\":%d,\"errors\":%d}\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
