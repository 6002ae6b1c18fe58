"""mkdocs hooks for the docs site.

A pipe inside a code span in a table row is written `\\|` so that GitHub keeps the cell whole;
Python-Markdown already keeps code spans whole and would show the backslash, so it is dropped here.
"""

import re

CODE = re.compile(r"`[^`]*`")


def on_page_markdown(markdown: str, **kwargs) -> str:
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("|") and "\\|" in line:
            lines[i] = CODE.sub(lambda m: m.group(0).replace("\\|", "|"), line)
    return "\n".join(lines)
