"""Chumpy-free reading of the official MANO pickles, and conversion to clean pickles.

The released MANO_RIGHT.pkl / MANO_LEFT.pkl were written with Python 2 and hold some arrays as
`chumpy.ch.Ch` objects (and J_regressor as a scipy sparse matrix). chumpy does not install on
Python 3.11 with numpy 2, so `pickle.load` fails with "No module named 'chumpy'". Our unpickler
maps every chumpy class to a stand-in that keeps the pickled state and yields its numpy array
(`x`), maps old scipy.sparse module paths to today's classes, and refuses any other class that is
not a plain numpy/builtin type (a pickle can run code; a model file has no reason to).
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MANO_FILES", "load_mano_pickle", "convert_mano_dir", "clean_mano_dict"]

MANO_FILES = ("MANO_RIGHT.pkl", "MANO_LEFT.pkl")
_SAFE_BUILTINS = {"object", "set", "frozenset", "slice", "complex", "list", "dict", "tuple", "bytearray", "int", "float"}


class _ChumpyStandIn:
    """Whatever chumpy class was pickled: keeps its state; `array()` gives the numpy value."""

    def __init__(self, *args, **kwargs):
        self.__dict__["_state"] = {"_args": args}

    def __setstate__(self, state):
        self.__dict__["_state"] = state

    def array(self, where: str) -> np.ndarray:
        state = self.__dict__["_state"]
        x = state.get("x") if isinstance(state, dict) else None
        if x is None:
            raise ValueError(
                f"{where}: a chumpy expression ({type(self).__name__} without a stored array 'x') cannot be "
                "evaluated without chumpy; only plain chumpy.Ch arrays are supported"
            )
        return np.asarray(x.array(where) if isinstance(x, _ChumpyStandIn) else x)


class _MANOUnpickler(pickle.Unpickler):
    def __init__(self, file, where: str):
        super().__init__(file, encoding="latin1")
        self.where = where

    def find_class(self, module: str, name: str):
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyStandIn,), {})
        if module.startswith("scipy.sparse"):
            import scipy.sparse

            if hasattr(scipy.sparse, name):
                return getattr(scipy.sparse, name)
        if module.split(".")[0] in ("numpy", "copy_reg", "copyreg", "_codecs") or (
            module in ("__builtin__", "builtins") and name in _SAFE_BUILTINS
        ):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{self.where}: refusing to load class {module}.{name} from a MANO file")


def _plain(value: Any, where: str) -> Any:
    """Stand-ins -> numpy; sparse matrices rebuilt with today's scipy (old pickled internals)."""
    if isinstance(value, _ChumpyStandIn):
        return value.array(where)
    d = getattr(value, "__dict__", {})
    if type(value).__module__.startswith("scipy.sparse") and {"data", "indices", "indptr"} <= d.keys():
        return type(value)((d["data"], d["indices"], d["indptr"]), shape=d.get("_shape") or d.get("shape"))
    return value


def load_mano_pickle(path: str | Path) -> dict:
    """Read a MANO pickle (official with chumpy, or clean) into a dict of numpy/scipy values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MANO model file not found: {path}")
    with open(path, "rb") as f:
        try:
            data = _MANOUnpickler(f, str(path)).load()
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise ValueError(f"{path}: not a readable MANO pickle ({e})") from e
    if not isinstance(data, dict) or "v_template" not in data:
        raise ValueError(f"{path}: not a MANO model (expected a dict with 'v_template')")
    return {k: _plain(v, f"{path}:{k}") for k, v in data.items()}


def clean_mano_dict(data: dict) -> dict:
    """Plain numpy only (J_regressor densified), ready for any pickle reader and for smplx."""
    out = {}
    for k, v in data.items():
        if hasattr(v, "toarray"):
            v = np.asarray(v.toarray())
        out[k] = v
    return out


def convert_mano_dir(src: str | Path, dst: str | Path) -> list[Path]:
    """Write clean copies of MANO_RIGHT.pkl / MANO_LEFT.pkl found in `src` into `dst`.

    Returns the written paths. Raises FileNotFoundError when `src` holds neither file.
    Files are written to a temporary name and renamed, so `dst` never holds a partial model.
    """
    src, dst = Path(src), Path(dst)
    found = [src / n for n in MANO_FILES if (src / n).is_file()]
    if not found:
        raise FileNotFoundError(f"{src}: no {' or '.join(MANO_FILES)} found")
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for path in found:
        data = clean_mano_dict(load_mano_pickle(path))
        tmp = dst / (path.name + ".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(data, f, protocol=4)
        tmp.replace(dst / path.name)
        written.append(dst / path.name)
    return written
