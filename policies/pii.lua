-- pii.lua: personal data in prompts and answers.
--
--   policies: [ { path: policies/pii.lua } ]                          # redact (default)
--   policies: [ { path: policies/pii.lua, pseudonymize: true } ]      # <EMAIL_1>, restored in answers
--   policies: [ { path: policies/pii.lua, settings: { action: block } } ]
--
-- Every rule is declarative: it compiles into the engine's RE2::Set, so this file costs no Lua
-- time per request. Validators confirm a match (Luhn, mod-97, SSN ranges, IP ranges, calendar).
local action = moat.settings.action or "redact"

local function rule(t)
  t.action = t.action or action
  moat.rule(t)
end

rule{ name = "email",
      pattern = [[\b[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b]] }

-- North American numbers: (415) 555-2671, 415-555-2671, +1 415 555 2671. A separator before the
-- last four digits is required, so bare 10-digit ids are left alone.
rule{ name = "phone", label = "PHONE", validate = "nanp_phone",
      pattern = [[(?:\+1[ .-]?)?(?:\(\d{3}\)|\b\d{3})[ .-]?\d{3}[ .-]\d{4}\b]] }

-- International numbers in E.164 style: a leading +, 8 to 15 digits in all. (The 00 prefix is
-- left out: "0044 0532 ..." is as often a run of account digits as a UK number.)
rule{ name = "phone_intl", label = "PHONE", replace = "[PHONE]", validate = "intl_phone",
      pattern = [[\+[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,4}){2,6}\b]] }

rule{ name = "us_ssn", label = "SSN", replace = "[SSN]", validate = "us_ssn",
      pattern = [[\b\d{3}[- ]\d{2}[- ]\d{4}\b]] }

-- Cards as they are written: 4-4-4-4 (up to 19 digits), 4-6-5 (Amex) or 4-6-4 (Diners), with
-- spaces, dashes or nothing between the groups. Arbitrary digit runs are not cards even when
-- they happen to pass Luhn (one in ten does).
rule{ name = "card", label = "CARD", replace = "[CARD]", validate = "luhn",
      pattern = [[\b(?:\d{4}[ -]?){3}\d{1,4}(?:[ -]?\d{3})?\b|\b\d{4}[ -]?\d{6}[ -]?\d{4,5}\b]] }

rule{ name = "iban", label = "IBAN", replace = "[IBAN]", validate = "iban",
      pattern = [[\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b]] }

rule{ name = "ipv4", label = "IP", replace = "[IP]", validate = "ipv4",
      pattern = [[\b(?:\d{1,3}\.){3}\d{1,3}\b]] }

rule{ name = "ipv6", label = "IP", replace = "[IP]", validate = "ipv6",
      pattern = [[(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}]] }

-- A date counts as a date of birth only next to words that say so; the phrase is replaced whole.
rule{ name = "date_of_birth", label = "DOB", replace = "[DATE_OF_BIRTH]", validate = "date",
      pattern = [[(?i)\b(?:born(?: on)?|date of birth|d\.o\.b\.?|dob|birth ?date|birthday)\s*(?:is|was|:|-)?\s*(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{4})\b]] }
