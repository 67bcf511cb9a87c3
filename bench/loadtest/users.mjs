// Fixed-rate load on the three benchmarked routes; bench/harness/load.py calls it as
//   node bench/loadtest/users.mjs http://127.0.0.1:PORT RATE SECONDS MODE ARG
// MODE "get":  GET /users/{id}, id drawn at random from the file ARG (one existing id per line)
// MODE "list": GET /users?limit=50
// MODE "post": POST /users with a unique email per request; ARG is a tag unique to the run
//
// loadtest (open model) issues RATE requests per second from a timer whether or not earlier ones
// have been answered, and opens another keep-alive connection whenever none is free. This script
// only builds the requests and takes the latencies, in loadtest's requestGenerator hook: from the
// moment loadtest issues a request to the end of its response, on a microsecond clock (loadtest's
// own histogram has 1 ms buckets). Requests still in flight when the sending stops are waited for
// (up to twice the run's length) and counted (loadtest itself leaves them out), so that an app that
// fell behind is measured on its whole queue and has worked it off before the next run. An app that keeps up
// answers about as many requests while they are being sent as were sent; one that cannot answers
// fewer, and its queue (and the connections open) grow for as long as the run lasts.
// Prints one line "BENCH_JSON {...}" with the counts and latency percentiles (microseconds; null
// where the percentile falls on a request that got no answer).

import { readFileSync } from "node:fs";
import { loadTest } from "loadtest";

const [base, rateArg, secondsArg, mode, arg] = process.argv.slice(2);
const rate = Number(rateArg);
const seconds = Number(secondsArg);
// How long to wait for the last answers once the sending stops: time for an app with half the
// offered capacity to work off its queue, and a bound on an app that has stalled.
const DRAIN_MS = Math.max(5, 2 * seconds) * 1000;

let ids = [];
if (mode === "get") {
  ids = readFileSync(arg, "utf8").split("\n").filter((line) => line !== "");
  if (ids.length === 0) throw new Error(`no ids in ${arg}`);
} else if (mode !== "list" && mode !== "post") {
  throw new Error(`unknown mode ${mode}`);
}

const latenciesUs = [];
let sent = 0;
let pending = 0;
let sending = true;
let answeredWhileSending = 0;
let statusErrors = 0;
let socketErrors = 0;
let counter = 0;

function finish(started, failed) {
  pending -= 1;
  if (failed) {
    socketErrors += 1;
  } else {
    latenciesUs.push(Number(process.hrtime.bigint() - started) / 1000);
    if (sending) answeredWhileSending += 1;
  }
}

// (loadtest options, this request's http.request options, http.request, loadtest's callback)
function requestGenerator(_options, params, request, callback) {
  const started = process.hrtime.bigint();
  let body = null;
  if (mode === "get") {
    params.path = `/users/${ids[Math.floor(Math.random() * ids.length)]}`;
  } else if (mode === "list") {
    params.path = "/users?limit=50";
  } else {
    counter += 1;
    body = JSON.stringify({
      email: `rate-${arg}-${counter}@example.org`,
      name: `Load Test ${counter}`,
    });
    params.method = "POST";
    params.path = "/users";
    params.headers["Content-Type"] = "application/json";
    params.headers["Content-Length"] = Buffer.byteLength(body);
  }
  sent += 1;
  pending += 1;
  let done = false;
  const req = request(params, (response) => {
    if (response.statusCode < 200 || response.statusCode >= 300) statusErrors += 1;
    response.on("end", () => {
      if (!done) finish(started, false);
      done = true;
    });
    callback(response);
  });
  req.on("error", () => {
    if (!done) finish(started, true);
    done = true;
  });
  if (body !== null) req.write(body);
  return req;
}

const startedAt = process.hrtime.bigint();
const result = await loadTest({
  url: `${base}/users`,
  requestsPerSecond: rate,
  maxSeconds: seconds,
  agentKeepAlive: true,
  quiet: true,
  requestGenerator,
});
sending = false;
const deadline = Date.now() + DRAIN_MS;
while (pending > 0 && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 10));
}
const elapsedUs = Number(process.hrtime.bigint() - startedAt) / 1000;

// Percentiles over every request sent: one that failed on its socket or was never answered ranks
// above every answer, and a percentile that falls on one is null (no latency: it never came).
latenciesUs.sort((a, b) => a - b);
const failed = socketErrors + pending;
const percentile = (p) => {
  const rank = Math.max(0, Math.ceil((p / 100) * (latenciesUs.length + failed)) - 1);
  return rank < latenciesUs.length ? Math.round(latenciesUs[rank]) : null;
};
const summary = {
  offered_rps: rate,
  seconds,
  sent,
  completed: latenciesUs.length,
  answered_while_sending: answeredWhileSending,
  status_errors: statusErrors,
  socket_errors: socketErrors,
  unanswered: pending,
  connections: result.clients,
  elapsed_us: Math.round(elapsedUs),
  p50_us: percentile(50),
  p90_us: percentile(90),
  p99_us: percentile(99),
  max_us: failed ? null : percentile(100),
};
process.stdout.write(`BENCH_JSON ${JSON.stringify(summary)}\n`);
process.exit(0); // keep-alive sockets would hold the process open
