"""Order of the examples within a section of the gallery: simple to advanced.

``sphinx_gallery_conf["within_subsection_order"]`` names :class:`ExampleOrder`. The
examples listed in :data:`EXAMPLE_ORDER` come first, in that order; an example that
is not listed comes after them in its section, by file name. So a new example needs
no entry here unless it should not come last.
"""

from pathlib import Path

# File names (not paths): each section keeps the relative order of its own files.
EXAMPLE_ORDER = [
    # basics
    "plot_seed_snippet.py",
    "plot_reconstruction_tour.py",
    # denoising
    "plot_dictionary_denoising.py",
    "plot_gmm_denoising.py",
    "plot_nonlocal_denoising.py",
    # model selection
    "plot_grid_search_patch_size.py",
]


class ExampleOrder:
    """Sort key of sphinx-gallery for the files of one section (``src_dir``)."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = Path(filename).name
        if name in EXAMPLE_ORDER:
            return (0, EXAMPLE_ORDER.index(name), name)
        return (1, 0, name)

    def __repr__(self):
        return f"<{type(self).__name__}>"
