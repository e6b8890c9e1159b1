-- wrk script: POST one fixed OpenAI chat request, for moat and for the nginx baseline alike.
-- BENCH_BODY_FILE names a file holding the JSON body; BENCH_PATH the request path.
local path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
local file = assert(io.open(assert(os.getenv("BENCH_BODY_FILE"), "BENCH_BODY_FILE not set"), "rb"))
local body = file:read("*a")
file:close()

wrk.method = "POST"
wrk.path = path
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer unused"

-- No request() function: wrk then builds the request once per thread and reuses its bytes.
