-- wrk script for the three benchmarked routes; bench/run.py calls it as
--   wrk -t2 -c32 -d8s -s bench/wrk/users.lua http://127.0.0.1:PORT -- MODE ARG
-- MODE "get":  GET /users/{id}, id drawn at random from the file ARG (one existing id per line)
-- MODE "list": GET /users?limit=50
-- MODE "post": POST /users with a unique email per request; ARG is a tag unique to the run
-- done() prints one line "BENCH_JSON {...}" with the counts and latency percentiles (microseconds).

local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

local mode
local ids = {}
local tag = "x"
local counter = 0
local list_request

function init(args)
   mode = args[1]
   if mode == "get" then
      for line in io.lines(args[2]) do
         if line ~= "" then
            ids[#ids + 1] = line
         end
      end
      assert(#ids > 0, "no ids in " .. tostring(args[2]))
   elseif mode == "post" then
      tag = args[2] or "x"
   elseif mode == "list" then
      list_request = wrk.format("GET", "/users?limit=50")
   else
      error("unknown mode " .. tostring(mode))
   end
   math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end

local post_headers = { ["Content-Type"] = "application/json" }

function request()
   if mode == "get" then
      return wrk.format("GET", "/users/" .. ids[math.random(#ids)])
   elseif mode == "list" then
      return list_request
   else
      counter = counter + 1
      local body = string.format(
         '{"email":"wrk-%s-%d-%d@example.org","name":"Load Test %d"}', tag, tid or 0, counter, counter
      )
      return wrk.format("POST", "/users", post_headers, body)
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
      '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
      '"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
   ))
end
