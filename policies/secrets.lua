-- secrets.lua: credentials that must not reach a model or come back out of one.
--
--   policies: [ { path: policies/secrets.lua } ]                          # redact (default)
--   policies: [ { path: policies/secrets.lua, settings: { action: block } } ]
--
-- Provider formats are exact prefixes and lengths; the generic rule needs `key=`-style context
-- and a value that looks random (the entropy validator), so ordinary words are left alone.
local action = moat.settings.action or "redact"

local function rule(t)
  t.action = t.action or action
  t.label = t.label or "SECRET"
  moat.rule(t)
end

rule{ name = "aws_access_key", pattern = [[\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b]] }
rule{ name = "aws_secret_key",
      pattern = [[(?i)aws_?secret_?(?:access_?)?key["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}]] }
rule{ name = "gcp_api_key", pattern = [[\bAIza[0-9A-Za-z_-]{35}]] }
rule{ name = "azure_storage_key", pattern = [[AccountKey=[A-Za-z0-9+/]{86}==]] }
rule{ name = "github_token", pattern = [[\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b]] }
rule{ name = "github_pat", pattern = [[\bgithub_pat_[A-Za-z0-9_]{82}\b]] }
rule{ name = "gitlab_token", pattern = [[\bglpat-[A-Za-z0-9_-]{20}]] }
rule{ name = "slack_token", pattern = [[\bxox[abposr]-[A-Za-z0-9-]{10,72}]] }
rule{ name = "slack_webhook", pattern = [[https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{16,}]] }
rule{ name = "openai_key", pattern = [[\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{32,}]] }
rule{ name = "stripe_key", pattern = [[\b[rs]k_live_[0-9A-Za-z]{24,}]] }
rule{ name = "jwt", pattern = [[\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}]] }
rule{ name = "private_key",
      pattern = [[-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?s:.*?)-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----]] }
rule{ name = "url_password", pattern = [[\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:[^\s/@]+@[^\s/@]+]] }
rule{ name = "generic_secret", validate = "entropy",
      pattern = [[(?i)\b(?:api[_-]?key|apikey|secret|secret[_-]?key|token|access[_-]?key|auth[_-]?token|client[_-]?secret|password|passwd|pwd)["']?\s*[:=]\s*["']?[A-Za-z0-9_+/=.-]{16,}["']?]] }
