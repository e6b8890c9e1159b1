-- prompt_injection.lua: instruction-override and system-prompt-extraction attempts in what the
-- user sends. By default the request goes through with an audit tag; with `action: block` it is
-- refused with 403 policy_violation.
--
--   policies: [ { path: policies/prompt_injection.lua, settings: { action: block } } ]
--
-- Only user and tool messages are checked: system and developer messages are the operator's own.
local block = moat.settings.action == "block"

local kinds = {
  { "instruction_override",
    [[(?i)\b(?:ignore|disregard|forget|override|bypass|skip)\b[^.\n]{0,40}?\b(?:previous|prior|above|earlier|preceding|all|any|your|the|system|developer)\b[^.\n]{0,20}?\b(?:instructions?|prompts?|rules|directions|guidelines|constraints|guardrails)\b]] },
  { "system_prompt_extraction",
    [[(?i)\b(?:reveal|show|print|repeat|output|tell me|what (?:is|are|was|were)|display|leak|dump|give me|copy)\b[^.\n]{0,40}?\b(?:system|initial|hidden|original|developer|secret)\s+(?:prompt|instructions?|message|rules)]] },
  { "role_hijack",
    [[(?i)(?:\byou are now\b[^.\n]{0,40}?\b(?:DAN|jailbroken|unfiltered|unrestricted|evil)\b|\b(?:enable|enter|activate|switch to)\s+(?:developer|god|jailbreak|DAN|unrestricted)\s+mode\b|\bdo anything now\b)]] },
  { "delimiter_injection",
    [[(?i)(?:<\|(?:im_start|im_end|system|endoftext|start_header_id)\|>|\[/?INST\]|<</?SYS>>|(?m:^)\s*#{2,}\s*(?:system|instruction)s?\s*:)]] },
}

-- One combined pattern answers "anything at all?" in one pass; the kinds are only tried after.
local parts = {}
for i, k in ipairs(kinds) do parts[i] = "(?:" .. (moat.re.gsub(k[2], [[^\(\?i\)]], "")) .. ")" end
local any = "(?i)" .. table.concat(parts, "|")

function on_request(ctx)
  local texts = {}
  for _, m in ipairs(ctx.messages) do
    if m.role == "user" or m.role == "tool" then texts[#texts + 1] = m.content end
  end
  if ctx.prompt then texts[#texts + 1] = ctx.prompt end
  for _, t in ipairs(texts) do
    if moat.re.find(t, any) then
      for _, k in ipairs(kinds) do
        if moat.re.find(t, k[2]) then
          ctx:tag("prompt_injection", k[1])
          if block then ctx:block("prompt injection (" .. k[1] .. ")") end
          return
        end
      end
    end
  end
end
