# Sphinx configuration for lockmgr's documentation.
#
#   sphinx-build -W --keep-going -b html docs OUT     # what `make docs` runs
#
# Sphinx from Debian's python3-sphinx is enough: no extensions, the
# default theme. The command reference is generated from the command tree
# at every build (below), so that it cannot drift from `lockmgr --help`.

import os
import shutil
import subprocess

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)

project = "lockmgr"
author = "The lockmgr authors"
copyright = "The lockmgr authors; MIT License"
# `make docs` passes VERSION; a plain sphinx-build says dev.
release = os.environ.get("LOCKMGR_VERSION", "dev")
version = release
language = "en"

master_doc = "index"
exclude_patterns = ["_build", "man"]
# Plain literal blocks are shell sessions, output and files, not Python.
highlight_language = "none"
html_theme = "alabaster"
html_theme_options = {"description": "Advisory file locks for shell scripts and programs", "fixed_sidebar": True}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}


def generate_cli_reference():
    """Write one page per command into _generated/cli (not checked in),
    with the hidden `rst` command of a lockmgr built with the mangen tag,
    the same tree the man pages come from."""
    out = os.path.join(here, "_generated", "cli")
    shutil.rmtree(out, ignore_errors=True)
    go = os.environ.get("GO", "go")
    cmd = [go, "run", "-tags", "mangen", "./cli", "rst", out]
    try:
        subprocess.run(cmd, cwd=root, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError("generating the command reference with `%s` failed: %s" % (" ".join(cmd), e))


generate_cli_reference()
