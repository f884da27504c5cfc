"""The public ways to a `Config` from outside Python: `load_config` (a TOML file) and
`config_from_dict` (plain data; the same as `Config.from_dict`).

The work is in `_config_data`, which takes the class to build as a parameter; this module
passes `Config`. Imports go one way: `_loading` -> `_config` -> `_config_data`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from . import _config_data
from ._config import Config
from ._config_data import ENV_VARIABLES
from ._validate import StrPath

__all__ = ["ENV_VARIABLES", "config_from_dict", "load_config"]


def config_from_dict(
    data: Mapping[str, object],
    *,
    env: Mapping[str, str] | None = None,
    base_dir: StrPath | None = None,
) -> Config:
    """Build and validate a `Config` from plain data (parsed TOML or JSON, or a literal dict).

    `env`: apply the `ASYNCLOG_*` overrides found in it (they win over `data`); None: none.
    `base_dir`: resolve relative paths (and `~`) in path fields against it; None: keep them.
    """
    return _config_data.build(Config, data, env=env, base_dir=base_dir)


def load_config(path: StrPath, *, env: Mapping[str, str] | None = os.environ) -> Config:
    """Read a TOML file and build a validated `Config` from it.

    The settings are the `[tool.asynclog]` table (pyproject.toml), else the `[asynclog]` table,
    else the whole file. Relative paths in it are relative to the file's directory. The
    `ASYNCLOG_*` variables of `env` (default: the process environment) win over the file;
    `env=None` ignores the environment.
    """
    return _config_data.load(Config, path, env=env)
