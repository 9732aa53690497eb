"""The ``executed-code`` directive: code run at build time, shown with its output.

The quick start shows shapes and PSNR values; written by hand next to the code they
drift as soon as the code or the library changes. This directive runs its content
when the page is built and shows what it printed, so they cannot::

    .. executed-code::

       import numpy as np
       print(np.zeros((3, 4)).shape)

renders the code, then an output block with ``(3, 4)``. Blocks of one page share a
namespace and run in page order. An exception, or a warning raised by the code, is
reported as a Sphinx error (so ``sphinx-build -W`` fails) with the traceback. Pages
that use the directive are read again on every build, so an incremental build shows
the output of the installed skpatch, not of the one that built the page first.
"""

import contextlib
import io
import traceback
import warnings

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

# One namespace per page being read, emptied when the page is read again.
_namespaces = {}


class ExecutedCode(SphinxDirective):
    """Show a block of Python code and the standard output of running it."""

    has_content = True

    def run(self):
        code = "\n".join(self.content)
        docname = self.env.docname
        self.env.executed_code_docs = getattr(self.env, "executed_code_docs", set())
        self.env.executed_code_docs.add(docname)
        namespace = _namespaces.setdefault(docname, {"__name__": "__main__"})

        stdout = io.StringIO()
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stdout(stdout),
        ):
            warnings.simplefilter("always")
            try:
                source = compile(code, f"<{docname}, line {self.lineno}>", "exec")
                exec(source, namespace)
            except Exception:
                message = traceback.format_exc(limit=-3)
                raise self.error(f"executed-code raised:\n{message}") from None
        if caught:
            listed = "\n".join(f"{w.category.__name__}: {w.message}" for w in caught)
            raise self.error(f"executed-code raised warnings:\n{listed}")

        shown = nodes.literal_block(code, code, language="python")
        self.set_source_info(shown)
        container = nodes.container(classes=["executed-code"])
        container += shown
        output = stdout.getvalue().rstrip("\n")
        if output:
            container += nodes.literal_block(
                output, output, language="none", classes=["executed-output"]
            )
        return [container]


def _reset_namespace(app, docname, source):
    _namespaces[docname] = {"__name__": "__main__"}


def _purge(app, env, docname):
    getattr(env, "executed_code_docs", set()).discard(docname)


def _merge(app, env, docnames, other):
    env.executed_code_docs = getattr(env, "executed_code_docs", set()) | (
        getattr(other, "executed_code_docs", set()) & set(docnames)
    )


def _always_outdated(app, env, added, changed, removed):
    return sorted(getattr(env, "executed_code_docs", set()) - set(removed))


def setup(app):
    app.add_directive("executed-code", ExecutedCode)
    app.connect("source-read", _reset_namespace)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("env-get-outdated", _always_outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
