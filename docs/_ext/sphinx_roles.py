"""Griffe extension for the docs site: Sphinx roles in docstrings (:func:`x`, :class:`~a.B`) shown as code.

The package's docstrings are prose with reST roles; mkdocstrings renders Markdown, where a role would
show as ":func:" before the name. This keeps the name as inline code and drops the role.
"""

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const):`~?([^`]+)`")


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(r"`\1`", obj.docstring.value)
