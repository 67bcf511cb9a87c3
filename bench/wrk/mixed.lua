-- wrk script for the memory soak (bench/soak.py): a mix of the user routes, every connection's
-- requests in a cycle of five,
--   POST /users, GET /users/{id}, GET /users?limit=50, PATCH /users/{id}, DELETE /users/{id}
-- bench/soak.py calls it as
--   wrk -t2 -c8 -d10s -s bench/wrk/mixed.lua http://127.0.0.1:PORT -- TAG
-- TAG makes the emails unique to the step. The ids come from the POSTs' answers (201): GET and
-- PATCH take the newest, DELETE the oldest, and only while more than KEEP of this thread's users
-- are left, so no request races the DELETE of its user and the table stays the same size.
-- done() prints one line "BENCH_JSON {...}" with the counts and latency percentiles (microseconds).

local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

local KEEP = 16
local tag = "x"
local counter = 0
local created = 0
local ids = {}
local first, last = 1, 0
local headers = { ["Content-Type"] = "application/json" }
local list_request

function init(args)
   tag = args[1] or "x"
   list_request = wrk.format("GET", "/users?limit=50")
end

local function post()
   created = created + 1
   local body = string.format(
      '{"email":"soak-%s-%d-%d@example.org","name":"Soak %d"}', tag, tid or 0, created, created
   )
   return wrk.format("POST", "/users", headers, body)
end

function request()
   counter = counter + 1
   local step = counter % 5
   if step == 2 then
      return list_request
   end
   if last - first + 1 <= KEEP then
      return post()
   end
   if step == 1 then
      return wrk.format("GET", "/users/" .. ids[last])
   elseif step == 3 then
      return wrk.format("PATCH", "/users/" .. ids[last], headers, '{"name":"Soak renamed"}')
   elseif step == 4 then
      local id = ids[first]
      ids[first] = nil
      first = first + 1
      return wrk.format("DELETE", "/users/" .. id)
   end
   return post()
end

function response(status, _, body)
   if status == 201 then
      local id = body:match('"id":%s*"?([%w%-]+)')
      if id then
         last = last + 1
         ids[last] = id
      end
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
