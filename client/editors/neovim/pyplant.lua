-- :PyplantRun [REACTOR ...]: run the pipeline in the pyplantd daemon (`pyplant run`) and put its
-- failures (`path:line:column: error: message`) in the quickfix list.
local M = {}

M.errorformat = "%f:%l:%c: error: %m,%-G%.%#"

function M.run(reactors)
  local dir = vim.fn.expand("%:p:h")
  if dir == "" then
    dir = vim.fn.getcwd()
  end
  local cmd = { "pyplant", "run", "--dir", dir }
  vim.list_extend(cmd, reactors or {})
  local lines = {}
  local function collect(_, data)
    for _, line in ipairs(data or {}) do
      if line ~= "" then
        table.insert(lines, line)
      end
    end
  end
  vim.fn.jobstart(cmd, {
    stdout_buffered = true,
    stderr_buffered = true,
    on_stdout = collect,
    on_stderr = collect,
    on_exit = function(_, code)
      vim.schedule(function()
        vim.fn.setqflist({}, " ", { title = "pyplant run", lines = lines, efm = M.errorformat })
        if code == 1 then
          vim.cmd("copen")
        elseif code == 0 then
          vim.cmd("cclose")
          vim.notify(lines[#lines] or "pyplant run: ok")
        else
          vim.notify(table.concat(lines, "\n"), vim.log.levels.ERROR)
        end
      end)
    end,
  })
end

function M.setup()
  vim.api.nvim_create_user_command("PyplantRun", function(opts)
    M.run(opts.fargs)
  end, { nargs = "*", desc = "Run the pipeline in pyplantd; failures to the quickfix list" })
end

return M
