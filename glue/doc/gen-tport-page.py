#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the API reference page of the Sofia-SIP side (sofia-ws-tport.h), which is not
introspected, from the doc comments of the header (WSTAG_* tags) and of the sources
(sofia_ws_tport_* functions), so that the page cannot drift from the code.

    gen-tport-page.py OUTPUT.md HEADER SOURCE...

Fails when a tag or function declared in the header has no doc comment.
"""
import re
import sys

COMMENT = re.compile(r"/\*\*\n(.*?)\*/", re.S)


def comments(text):
    """Yields (name, params, body) for each gi-docgen comment block."""
    for match in COMMENT.finditer(text):
        lines = [re.sub(r"^\s*\* ?", "", line) for line in match.group(1).splitlines()]
        while lines and not lines[0].strip():
            lines.pop(0)
        if not lines or not (lines[0].rstrip().endswith(":") or lines[0].startswith("SECTION:")):
            continue
        name = lines[0].strip().rstrip(":")
        params, body, current = [], [], None
        for line in lines[1:]:
            param = re.match(r"@(\w+):\s*(.*)", line)
            if param and not body:
                current = [param.group(1), param.group(2)]
                params.append(current)
            elif current is not None and line.startswith(" ") and not body and line.strip():
                current[1] += " " + line.strip()
            else:
                current = None
                body.append(line)
        yield name, params, "\n".join(body).strip(), match.end()


def annotations_off(text):
    """Drops gi annotations such as (type utf8): or (transfer none) (nullable):."""
    return re.sub(r"^(\([\w\s.=-]+\)\s*)+:?\s*", "", text)


def prose(text):
    """gi-docgen style references made into code spans."""
    text = re.sub(r"^Returns: (\([\w\s.=-]+\)\s*)*:?\s*", "Returns: ", text, flags=re.M)
    text = re.sub(r"%(\w+)", r"`\1`", text)
    text = re.sub(r"@(\w+)", r"`\1`", text)
    text = re.sub(r"#(\w+)", r"`\1`", text)
    text = re.sub(r"(?<![`\w])(\w+\(\))", r"`\1`", text)
    return text


def prototype(source, end):
    """The C declaration that follows a comment, up to its opening brace."""
    rest = source[end:]
    stop = rest.find("{")
    decl = " ".join(rest[:stop].split()).replace("( ", "(").replace(" )", ")")
    head, _, args = decl.partition("(")
    args = [a.strip() for a in args.rstrip(")").split(",")]
    indent = " " * (len(head) + 1)
    return head + "(" + (",\n" + indent).join(args) + ")"


def main():
    output, header, sources = sys.argv[1], sys.argv[2], sys.argv[3:]
    header_text = open(header, encoding="utf-8").read()
    declared_tags = re.findall(r"^#define (WSTAG_\w+)\(x\)", header_text, re.M)
    declared_tags = [t for t in declared_tags if not t.endswith("_REF")]
    declared_functions = re.findall(r"^\w[\w\s]*?\**\s*(sofia_ws_tport_\w+)\s*\(",
                                    header_text, re.M)

    tags = {name: (params, body) for name, params, body, _ in comments(header_text)
            if name.startswith("WSTAG_")}
    functions, section = {}, ""
    for path in sources:
        text = open(path, encoding="utf-8").read()
        for name, params, body, end in comments(text):
            if name.startswith("SECTION:"):
                section = body
            elif name.startswith("sofia_ws_tport_"):
                functions[name] = (params, body, prototype(text, end))

    missing = [t for t in declared_tags if t not in tags]
    missing += [f for f in declared_functions if f not in functions]
    if missing:
        sys.exit("gen-tport-page.py: no doc comment for " + ", ".join(missing))

    out = ["Title: Sofia-SIP transports (sofia-ws-tport.h)", "",
           "# Sofia-SIP transports", "",
           "`#include <sofia-ws/sofia-ws-tport.h>` (not in the umbrella header, and not",
           "introspected: it speaks Sofia-SIP's C types). Link `sofia-ws-1.0` and",
           "`sofia-sip-ua`; the transports themselves live in the `sofia-ws-plugin` package.", "",
           prose(section), "", "## Functions", ""]
    for name in declared_functions:
        params, body, decl = functions[name]
        out += [f"### {name}()", "", "```c", decl, "```", ""]
        for param, text in params:
            out.append(f"- `{param}`: {prose(annotations_off(text))}")
        out += ["", prose(body), ""]
    out += ["## Tags", "",
            "Sofia tag-list items (`tag_typedef_t` in the `ws` namespace), given to the functions",
            "above; each has a `_REF` form for `tl_gets()`.", ""]
    for name in declared_tags:
        params, body = tags[name]
        text = " ".join(annotations_off(t) for _, t in params)
        out += [f"### {name}()", "", prose(text), ""]
        if body:
            out += [prose(body), ""]
    with open(output, "w", encoding="utf-8") as f:
        f.write("\n".join(out).rstrip() + "\n")


main()
