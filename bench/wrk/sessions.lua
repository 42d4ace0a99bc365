-- Sends each request with its own `session` cookie, in the shape of
-- Authgear's browser session: `<session id>.<32 letters or digits>`.
--
-- Arguments after `--`:
--   random COUNT        a session picked at random from COUNT sessions
--   sequential COUNT N  sessions N, N+1, ... of COUNT, wrapping around
--   unique PREFIX       a session never sent before: PREFIX and a counter
--
-- The sessions of `random` and `sequential` are the same COUNT cookies, so
-- a `sequential` run warms the cache for a later `random` run.

local script_dir = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
dofile(script_dir .. "/report.lua")

local mode
local count
local next_index
local prefix
local requests = {}

local function session_cookie(index)
   return string.format("session=bench-%08d.%032d", index, index)
end

-- wrk calls setup in its main Lua state once per thread, before that
-- thread's init, so each thread learns its own number.
local thread_count = 0
function setup(thread)
   thread_count = thread_count + 1
   thread:set("thread_number", thread_count)
end

local function request_for(cookie)
   return wrk.format(nil, nil, { ["Cookie"] = cookie })
end

function init(args)
   mode = args[1]
   if mode == "random" or mode == "sequential" then
      count = tonumber(args[2])
      if count == nil or count < 1 then
         error("sessions.lua: " .. mode .. " needs a session count, got " .. tostring(args[2]))
      end
      -- Formatting every request once here keeps the per-request work to a
      -- table lookup.
      for index = 1, count do
         requests[index] = request_for(session_cookie(index))
      end
      next_index = tonumber(args[3] or "0") % count
      math.randomseed(os.time())
   elseif mode == "unique" then
      prefix = args[2]
      if prefix == nil or prefix == "" then
         error("sessions.lua: unique needs a prefix")
      end
      next_index = 0
   else
      error("sessions.lua: unknown mode " .. tostring(mode) .. ", expected random, sequential or unique")
   end
end

function request()
   if mode == "random" then
      return requests[math.random(count)]
   end
   if mode == "sequential" then
      local index = next_index
      next_index = (next_index + 1) % count
      return requests[index + 1]
   end
   next_index = next_index + 1
   return request_for(string.format("session=%s-t%d-%d.%032d",
      prefix, thread_number or 1, next_index, next_index))
end
