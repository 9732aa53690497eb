"""Sphinx configuration for the skpatch documentation.

Build from the repository root (warnings are errors):

    sphinx-build -W -b html docs docs/_build/html

Faster builds (see docs/README.md):

    # execute only the examples whose path matches a regex
    SKPATCH_DOCS_EXAMPLES='plot_(reconstruction_tour|seed_snippet)' \
        sphinx-build -W -b html docs docs/_build/html
    # execute no example at all (the gallery pages show code only)
    sphinx-build -W -b html -D plot_gallery=0 docs docs/_build/html
"""

import os
import re
import sys
from pathlib import Path

# Document (and run the examples against) this checkout, even when another copy of
# skpatch is installed; docs/sphinxext/ holds this site's own Sphinx helpers.
_docs_dir = Path(__file__).resolve().parent
sys.path.insert(0, str(_docs_dir.parent))
sys.path.insert(0, str(_docs_dir / "sphinxext"))

import skpatch  # noqa: E402 (after the sys.path lines above)

# -- Project -----------------------------------------------------------------

project = "skpatch"
author = "the skpatch developers"
copyright = "2026, the skpatch developers"
version = skpatch.__version__
release = skpatch.__version__

# -- General -----------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
    "executed_code",
]

templates_path = ["_templates"]
exclude_patterns = ["_build"]
default_role = "code"

# -- API reference -------------------------------------------------------------

autosummary_generate = True
autodoc_typehints = "none"
# numpydoc renders the Attributes section itself; listing members again would
# document dataclass fields and properties twice.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Links to numpy, scikit-learn, ... need their inventories from the network, so
# they are opt-in: an offline -W build must not fail on an unreachable site.
intersphinx_mapping = {}
if os.environ.get("SKPATCH_DOCS_INTERSPHINX"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "scipy": ("https://docs.scipy.org/doc/scipy/", None),
        "sklearn": ("https://scikit-learn.org/stable/", None),
        "skimage": ("https://scikit-image.org/docs/stable/", None),
        "matplotlib": ("https://matplotlib.org/stable/", None),
    }
    intersphinx_timeout = 10


def _skip_metadata_request_methods(app, what, name, obj, skip, options):
    """Skip scikit-learn's generated ``set_<method>_request`` methods.

    Their docstrings point at scikit-learn's own user guide labels, which do not
    exist here, and they document scikit-learn rather than skpatch.
    """
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


_PARAMETER_LINE = re.compile(r"^(?P<name>[\w*][\w*, ]*) : (?P<type>.*)$")
# "*" (opens emphasis) and a word's trailing "_" (makes a link) mean something in
# reST; unescaped, they are errors in a type such as
# "ndarray of shape (n_images * n_patches_per_image_, *patch_size)".
_RST_MARKUP_IN_TYPE = re.compile(r"(?<!\\)\*|(?<=\w)_(?!\w)")


def _escape_markup_in_types(app, what, name, obj, options, lines):
    """Escape reST markup in numpydoc type descriptions before numpydoc renders them.

    Types are shapes written as in Python, but numpydoc emits them as reST. Runs
    before numpydoc (priority < 500).
    """
    for i, line in enumerate(lines):
        match = _PARAMETER_LINE.match(line)
        if match:
            escaped = _RST_MARKUP_IN_TYPE.sub(lambda m: "\\" + m[0], match["type"])
            lines[i] = f"{match['name']} : {escaped}"


# Cross-references in the docstrings of methods inherited from scikit-learn
# (set_output, get_metadata_routing, ...) point at labels of scikit-learn's own
# documentation. Without its intersphinx inventory, a :ref: becomes a link to the
# page below (scikit-learn's home page for other labels), a :term: plain text.
_SKLEARN_LABEL_URLS = {
    "metadata_routing": "https://scikit-learn.org/stable/metadata_routing.html",
    "sphx_glr_auto_examples_miscellaneous_plot_set_output.py": (
        "https://scikit-learn.org/stable/auto_examples/miscellaneous/"
        "plot_set_output.html"
    ),
}
_SKLEARN_REFERENCE = re.compile(
    r":(?P<role>ref|term):`(?:(?P<text>[^`<]*?)\s*<(?P<label>[^`>]+)>|(?P<bare>[^`]+))`"
)


def _sklearn_reference_as_link(match):
    label = match["label"] or match["bare"]
    if match["role"] == "term":
        return match["text"] or label
    text = match["text"] or "scikit-learn's documentation"
    url = _SKLEARN_LABEL_URLS.get(label, "https://scikit-learn.org/stable/")
    return f"`{text} <{url}>`__"


def _unlink_sklearn_references(app, what, name, obj, options, lines):
    """Resolve references in inherited scikit-learn docstrings, without intersphinx."""
    if intersphinx_mapping or not getattr(obj, "__module__", "").startswith("sklearn"):
        return
    for i, line in enumerate(lines):
        lines[i] = _SKLEARN_REFERENCE.sub(_sklearn_reference_as_link, line)


def _drop_empty_section_navigation(app, pagename, templatename, context, doctree):
    """Show no primary sidebar on a page whose section has no sub-pages.

    The theme drops an empty "Section Navigation" only when it does not look into
    hidden toctrees, and the gallery's toctrees are hidden. Runs after the theme has
    added its toctree functions to the context (priority > 500).
    """
    suppress = context.get("suppress_sidebar_toctree")
    if suppress is None or suppress(includehidden=True):
        return  # no section at all (search page, ...): the theme drops it
    navigation = context["generate_toctree_html"](
        "sidebar", includehidden=True, titles_only=True
    )
    if not str(navigation).strip():
        context["sidebars"] = [
            name for name in context["sidebars"] if name != "sidebar-nav-bs.html"
        ]


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_request_methods)
    app.connect("autodoc-process-docstring", _escape_markup_in_types, priority=400)
    app.connect("autodoc-process-docstring", _unlink_sklearn_references, priority=400)
    app.connect("html-page-context", _drop_empty_section_navigation, priority=600)


# -- Gallery -----------------------------------------------------------------

# Which examples are executed (a regex on their path). Examples that do not match
# are still rendered, with their code but without output. The default runs all.
_examples_to_run = os.environ.get("SKPATCH_DOCS_EXAMPLES", r"/plot_")

# Sections of the gallery, simple to advanced: one folder of ../examples/ each, with
# a GALLERY_HEADER.rst. A folder listed here that does not exist yet is skipped; an
# existing folder that is not listed is an error. Within a section, the order is
# gallery_order.EXAMPLE_ORDER, then file names (see docs/README.md).
_gallery_sections = ["basics", "denoising", "model_selection", "large_data"]

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": _examples_to_run,
    "subsection_order": [f"../examples/{name}" for name in _gallery_sections],
    "within_subsection_order": "gallery_order.ExampleOrder",
    "download_all_examples": False,
    "remove_config_comments": True,
    "doc_module": ("skpatch",),
    "backreferences_dir": os.path.join("generated", "backreferences"),
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "capture_repr": (),
    "show_memory": False,
    "min_reported_time": 1,
}

# Figures of the gallery and of the plot directive are drawn without a screen.
os.environ.setdefault("MPLBACKEND", "Agg")

# -- Figures made at build time (user guide) -----------------------------------

plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
plot_rcparams = {"figure.autolayout": True}
plot_pre_code = "import numpy as np\nimport matplotlib.pyplot as plt\n"
plot_basedir = str(Path(__file__).parent)

# -- HTML --------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skpatch {release}"
html_static_path = ["_static"]
html_css_files = ["skpatch.css"]
# Placeholders until the project has a public home (the same as pyproject.toml's
# [project.urls]).
_source_url = "https://github.com/skpatch/skpatch"
html_theme_options = {
    "logo": {"text": "skpatch"},
    "navbar_start": ["navbar-logo", "navbar-version"],
    # The links, the search button and the icons fit on one row from about 970 px
    # (_static/skpatch.css).
    "header_links_before_dropdown": 6,
    "navbar_persistent": ["search-button"],
    "icon_links": [
        {"name": "Source code", "url": _source_url, "icon": "fa-brands fa-github"}
    ],
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# The section navigation, only on pages whose section has sub-pages (the API
# reference, the gallery): see _drop_empty_section_navigation.
html_sidebars = {"**": ["sidebar-nav-bs.html"]}
html_show_sourcelink = False
