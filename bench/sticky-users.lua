-- wrk script: every request comes from one of USERS users (default 1000), named in
-- X-User-Id as `liftoff load` names them, so a sticky split sends each user to one
-- version. Used by bench/fleet.sh and bench/restarts.sh.
-- COUNT_CLOSE=1 also counts responses that carry `Connection: close` (a draining
-- router's answer to a keep-alive client) and prints "Connection: close responses: N"
-- at the end; reading every response's headers costs some throughput.
local users = tonumber(os.getenv("USERS") or "1000")
local threads = {}

function setup(thread)
  thread:set("seed", math.random(1, 2 ^ 30))
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(seed or os.time())
  closes = 0
end

function request()
  return wrk.format(nil, nil, { ["X-User-Id"] = "user-" .. math.random(0, users - 1) })
end

if os.getenv("COUNT_CLOSE") == "1" then
  function response(status, headers, body)
    for k, v in pairs(headers) do
      if k:lower() == "connection" and v:lower():find("close") then
        closes = closes + 1
      end
    end
  end

  function done(summary, latency, requests)
    local n = 0
    for _, t in ipairs(threads) do n = n + t:get("closes") end
    io.write(string.format("Connection: close responses: %d\n", n))
  end
end
