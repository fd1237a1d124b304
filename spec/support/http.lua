-- A small HTTP client over curl for the nginx spec and bench.
--
--   local http = require "support.http"
--   local res = http.request("POST", url, { body = "...", headers = { Cookie = "sid=1" } })
--   res.status (number), res.headers (lower-case names), res.body
--   http.parallel(urls) -> their bodies and statuses as text, all in flight at once

local M = {}

local shell = require "support.shell"
local quote, run = shell.quote, shell.run

--- One request; raises when curl gets no answer at all.
function M.request(method, url, options)
  options = options or {}
  local args = { "curl -sS -i --max-time 10 -X", quote(method) }
  for name, value in pairs(options.headers or {}) do
    args[#args + 1] = "-H " .. quote(name .. ": " .. value)
  end
  if options.body then args[#args + 1] = "--data-binary " .. quote(options.body) end
  args[#args + 1] = quote(url)
  local out = run(table.concat(args, " ") .. " 2>&1")
  local head, body = out:match("^(HTTP/.-)\r\n\r\n(.*)$")
  if not head then error(("%s %s: no HTTP answer: %s"):format(method, url, out), 2) end
  local status = tonumber(head:match("^HTTP/[%d.]+ (%d+)"))
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do headers[name:lower()] = value end
  return { status = status, headers = headers, body = body }
end

function M.get(url, options) return M.request("GET", url, options) end

--- GETs every url at once (curl --parallel); returns the bodies and a line
-- "status <code>" per request (lines of different requests may interleave).
function M.parallel(urls)
  local args = { "curl -sS --max-time 20 --parallel --parallel-immediate --parallel-max", #urls,
    "-w", quote("\\nstatus %{http_code}\\n") }
  for _, url in ipairs(urls) do args[#args + 1] = quote(url) end
  return run(table.concat(args, " ") .. " 2>&1")
end

return M
