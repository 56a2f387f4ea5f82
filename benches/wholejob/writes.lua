-- wrk sends each request of a prepared file once over its connections, then ends the run.
-- The file (named after `--`) holds lines `H<tab>name<tab>value` (headers of every request)
-- and `R<tab>method<tab>path<tab>body`. A connection that asks for more once every prepared
-- request is out gets a request to a path no API has: the sandbox answers it 404 after the
-- same latency, and it is not counted.
local prepared = {}
local probe
local sent, answered = 0, 0
-- wrk calls request() once before the run to check what it returns (in its first thread:
-- run this script with -t1).
local checked = false

function init(args)
  local headers, requests = {}, {}
  for line in io.lines(args[1]) do
    local name, value = line:match("^H\t([^\t]*)\t(.*)$")
    if name then
      headers[name] = value
    else
      local method, path, body = line:match("^R\t([^\t]*)\t([^\t]*)\t(.*)$")
      if method then
        table.insert(requests, { method, path, body })
      end
    end
  end
  for _, r in ipairs(requests) do
    local body = r[3]
    if body == "" then
      body = nil
    end
    table.insert(prepared, wrk.format(r[1], r[2], headers, body))
  end
  probe = wrk.format("GET", "/bench-probe-not-an-api", {})
end

function request()
  if not checked then
    checked = true
    return prepared[1]
  end
  if sent < #prepared then
    sent = sent + 1
    return prepared[sent]
  end
  return probe
end

function response(status, headers, body)
  if status ~= 404 then
    answered = answered + 1
  end
  if answered == #prepared then
    io.write(string.format("wrk: %d prepared requests answered\n", answered))
    io.flush()
    -- wrk itself would sleep out its whole -d.
    os.exit(0)
  end
end
