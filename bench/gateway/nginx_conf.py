#!/usr/bin/env python3
"""Fills nginx.conf.in for bench/gateway/run.sh: the answers are moat's own bytes, inlined.

    python3 nginx_conf.py nginx.conf.in TMPDIR PORT THREADS chat.resp stream.resp > nginx.conf
"""

import sys


def quoted(path: str) -> str:
    """The file's text as the inside of an nginx '...' string."""
    text = open(path, encoding="utf-8").read()
    if "$" in text:  # nginx would expand it as a variable
        raise SystemExit(f"{path}: contains '$', which nginx cannot return verbatim")
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")


def main() -> None:
    template, tmp, port, threads, json_path, sse_path = sys.argv[1:]
    conf = open(template, encoding="utf-8").read()
    for key, value in {"@DIR@": tmp, "@PORT@": port, "@THREADS@": threads,
                       "@JSON_BODY@": quoted(json_path), "@SSE_BODY@": quoted(sse_path)}.items():
        conf = conf.replace(key, value)
    sys.stdout.write(conf)


if __name__ == "__main__":
    main()
